package nn

import (
	"errors"
	"strings"
	"testing"

	"github.com/bpo-dev/bpo/ggml"
)

// TestArchitectureTable: names and recipe names are unique, lookups find every entry, and unknown
// names are ErrUnsupportedArch errors listing what exists.
func TestArchitectureTable(t *testing.T) {
	seen := map[string]bool{}
	for _, a := range architectures {
		if got, err := archByName(a.name); err != nil || got != a {
			t.Errorf("archByName(%q) = %v, %v", a.name, got, err)
		}
		for _, r := range a.random {
			if seen[r.name] {
				t.Errorf("random recipe %q listed twice", r.name)
			}
			seen[r.name] = true
			if got, rr, err := randomRecipeByName(r.name); err != nil || got != a || rr != r {
				t.Errorf("randomRecipeByName(%q) = %v, %v, %v", r.name, got, rr, err)
			}
		}
	}
	tests := []struct {
		err  error
		want string
	}{
		{func() error { _, err := archByName("gpt2"); return err }(), `training graphs exist for llama, qwen2, qwen3 and gemma3, not "gpt2"`},
		{func() error { _, _, err := randomRecipeByName("gpt2"); return err }(), `random model arch "gpt2", want llama, llama3, qwen2, qwen3 or gemma3`},
	}
	for _, tc := range tests {
		if !errors.Is(tc.err, ggml.ErrUnsupportedArch) || !strings.Contains(tc.err.Error(), tc.want) {
			t.Errorf("error %v, want ErrUnsupportedArch with %q", tc.err, tc.want)
		}
	}
}
