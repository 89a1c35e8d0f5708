package ipnn

import (
	"math"
	"testing"
)

func TestAdjustedRand(t *testing.T) {
	cases := []struct {
		name string
		a, b []int
		want float64
	}{
		{"identical", []int{0, 0, 1, 1, 2, 2}, []int{0, 0, 1, 1, 2, 2}, 1},
		{"relabelled", []int{0, 0, 1, 1, 2, 2}, []int{5, 5, 3, 3, 9, 9}, 1},
		// by hand: index 1, expected 2*1/6, max 1.5: (1-1/3)/(1.5-1/3) = 4/7
		{"split cluster", []int{0, 0, 1, 1}, []int{0, 0, 1, 2}, 4.0 / 7},
		// by hand: index 2, expected 6*6/15 = 2.4, max 6: (2-2.4)/(6-2.4) = -1/9
		{"crossed", []int{0, 0, 0, 1, 1, 1}, []int{0, 1, 0, 1, 0, 1}, -1.0 / 9},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := AdjustedRand(tc.a, tc.b)
			if err != nil {
				t.Fatal(err)
			}
			if math.Abs(got-tc.want) > 1e-12 {
				t.Fatalf("ARI = %v, want %v", got, tc.want)
			}
		})
	}
	if _, err := AdjustedRand([]int{1}, []int{1, 2}); err == nil {
		t.Fatal("length mismatch accepted")
	}
}
