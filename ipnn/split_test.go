package ipnn

import (
	"strings"
	"testing"
)

func TestParseSplit(t *testing.T) {
	cases := []struct {
		in      string
		nodes   int
		wantErr string
	}{
		{"2,2,5", 9, ""},
		{"10", 10, ""},
		{" 2, 10 ", 12, ""},
		{"2,x", 0, `field 2 ("x")`},
		{"2,1", 0, "group 2 has 1 states"},
		{"", 0, "field 1"},
	}
	for _, tc := range cases {
		t.Run(tc.in, func(t *testing.T) {
			s, err := ParseSplit(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if s.Nodes() != tc.nodes {
				t.Fatalf("nodes %d, want %d", s.Nodes(), tc.nodes)
			}
		})
	}
}

func FuzzParseSplit(f *testing.F) {
	f.Add("2,2,5")
	f.Add("3,,4")
	f.Fuzz(func(t *testing.T, in string) {
		s, err := ParseSplit(in)
		if err == nil && s.Nodes() < 2 {
			t.Fatalf("%q parsed to %v", in, s.Sizes)
		}
	})
}
