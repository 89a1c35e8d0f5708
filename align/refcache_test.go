package align

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/bpo-dev/bpo/internal/fixture"
)

func TestRefCacheRoundTrip(t *testing.T) {
	model, err := FileFingerprint(fixture.File(t, testStories))
	if err != nil {
		t.Fatal(err)
	}
	gsm8kTrain := fixture.EvalSet(t, "gsm8k/train")
	data, err := FileHash(gsm8kTrain)
	if err != nil {
		t.Fatal(err)
	}
	key := RefCacheKey(model, data, "template=chatml", "max_length=1024")
	if key == RefCacheKey(model, data, "template=chatml", "max_length=512") || key == RefCacheKey(model+data, "template=chatml", "max_length=1024") {
		t.Fatal("key does not separate its inputs")
	}
	refs := []RefLogps{{Chosen: -12.5, Rejected: -30.25}, {Chosen: -1e-3, Rejected: -700}, {Chosen: -0.5, Rejected: -0.75}}
	path := filepath.Join(t.TempDir(), "ref.bin")
	if err := SaveRefCache(path, key, refs); err != nil {
		t.Fatal(err)
	}
	got, err := LoadRefCache(path, key, 3)
	if err != nil {
		t.Fatal(err)
	}
	for i := range refs {
		if got[i] != refs[i] {
			t.Errorf("pair %d: %v, want %v", i, got[i], refs[i])
		}
	}
	raw, _ := os.ReadFile(path)
	flipped := append([]byte(nil), raw...)
	flipped[len(flipped)-20] ^= 0x10
	os.WriteFile(filepath.Join(filepath.Dir(path), "bad.bin"), flipped, 0o644)
	tests := []struct {
		name      string
		path, key string
		n         int
		wantErr   string
		stale     bool
	}{
		{"other key", path, RefCacheKey("other"), 3, "computed for other inputs", true},
		{"other count", path, key, 4, "holds 3 pairs, want 4", true},
		{"corrupt", filepath.Join(filepath.Dir(path), "bad.bin"), key, 3, "checksum mismatch", false},
		{"not a cache", gsm8kTrain, key, 3, "not a bpo reference cache", false},
		{"missing", filepath.Join(filepath.Dir(path), "none.bin"), key, 3, "no such file", false},
	}
	for _, tc := range tests {
		_, err := LoadRefCache(tc.path, tc.key, tc.n)
		if err == nil || !strings.Contains(err.Error(), tc.wantErr) || errors.Is(err, ErrRefCacheStale) != tc.stale {
			t.Errorf("%s: error %v, want %q (stale %v)", tc.name, err, tc.wantErr, tc.stale)
		}
	}
	if _, err := LoadRefCache(filepath.Join(filepath.Dir(path), "none.bin"), key, 3); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing cache does not wrap os.ErrNotExist: %v", err)
	}
}

func TestTruncation(t *testing.T) {
	pair := TokenizedPair{Line: 7, Prompt: []int32{1, 10, 11, 12, 13, 14}, Chosen: []int32{20, 21, 22, 23, 2}, Rejected: []int32{30, 31, 2}}
	tests := []struct {
		name                     string
		tr                       Truncation
		prompt, chosen, rejected []int32
		cut                      bool
		wantErr                  string
	}{
		{"no limits", Truncation{}, pair.Prompt, pair.Chosen, pair.Rejected, false, ""},
		{"fits", Truncation{MaxLength: 11, MaxPromptLength: 6}, pair.Prompt, pair.Chosen, pair.Rejected, false, ""},
		{"prompt keep_end with BOS", Truncation{MaxPromptLength: 4, KeepLeading: 1}, []int32{1, 12, 13, 14}, pair.Chosen, pair.Rejected, true, ""},
		{"prompt keep_end", Truncation{MaxPromptLength: 3}, []int32{12, 13, 14}, pair.Chosen, pair.Rejected, true, ""},
		{"prompt keep_start", Truncation{MaxPromptLength: 3, Mode: "keep_start"}, []int32{1, 10, 11}, pair.Chosen, pair.Rejected, true, ""},
		{"completions", Truncation{MaxLength: 8, MaxPromptLength: 4, KeepLeading: 1}, []int32{1, 12, 13, 14}, []int32{20, 21, 22, 23}, pair.Rejected, true, ""},
		{"both completions", Truncation{MaxLength: 8}, pair.Prompt, []int32{20, 21}, []int32{30, 31}, true, ""},
		{"no room", Truncation{MaxLength: 6}, nil, nil, nil, false, "line 7: max_length 6 leaves no room for the completion after a 6-token prompt"},
		{"error mode prompt", Truncation{MaxPromptLength: 5, Mode: "error"}, nil, nil, nil, false, "line 7: prompt has 6 tokens, max_prompt_length is 5"},
		{"error mode total", Truncation{MaxLength: 10, Mode: "error"}, nil, nil, nil, false, "line 7: prompt + completion is 11 tokens, max_length is 10"},
		{"error mode fits", Truncation{MaxLength: 11, Mode: "error"}, pair.Prompt, pair.Chosen, pair.Rejected, false, ""},
		{"mode", Truncation{Mode: "middle"}, nil, nil, nil, false, `unknown truncation mode "middle"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, cut, err := tc.tr.Apply(pair)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cut != tc.cut || !slices.Equal(got.Prompt, tc.prompt) || !slices.Equal(got.Chosen, tc.chosen) || !slices.Equal(got.Rejected, tc.rejected) {
				t.Fatalf("got %v/%v/%v cut %v", got.Prompt, got.Chosen, got.Rejected, cut)
			}
		})
	}
	same := TokenizedPair{Line: 3, Prompt: []int32{1}, Chosen: []int32{5, 6, 7}, Rejected: []int32{5, 6, 8}}
	if _, _, err := (Truncation{MaxLength: 3}).Apply(same); err == nil || !strings.Contains(err.Error(), "identical once truncated to 2 tokens") {
		t.Errorf("identical after truncation: %v", err)
	}
	if pair.Prompt[1] != 10 || len(pair.Chosen) != 5 {
		t.Error("Apply modified its input")
	}
}
