package ipnn

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDataDirOrder: --data, then $BPO_DATA_DIR/<dataset>, then the user cache folder; a missing
// folder is an error naming where it looked and the make target that fetches the data.
func TestDataDirOrder(t *testing.T) {
	cache, env, flag := t.TempDir(), t.TempDir(), t.TempDir()
	t.Setenv("XDG_CACHE_HOME", cache)
	for _, d := range []string{filepath.Join(cache, "bpo", "data", "mnist"), filepath.Join(env, "fashion-mnist")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	cases := []struct {
		name, dataset, flag, env string
		want, err                string
	}{
		{"flag first", DatasetMNIST, flag, env, flag, ""},
		{"env next", DatasetFashion, "", env, filepath.Join(env, "fashion-mnist"), ""},
		{"cache last", DatasetMNIST, "", "", filepath.Join(cache, "bpo", "data", "mnist"), ""},
		{"numbers use mnist", DatasetNumbers, "", "", filepath.Join(cache, "bpo", "data", "mnist"), ""},
		{"toy needs none", DatasetToyBits, "", "", "", ""},
		{"env without the dataset", DatasetMNIST, "", env, "", filepath.Join(env, "mnist") + " (from $BPO_DATA_DIR) is missing; run `make ipnn-data`"},
		{"cache without the dataset", DatasetFashion, "", "", "", "(from the user cache folder) is missing; run `make ipnn-data`"},
		{"flag missing", DatasetMNIST, filepath.Join(flag, "nope"), env, "", "(from --data) is missing"},
		{"unknown", "cifar", "", "", "", `unknown dataset "cifar"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Setenv(DataDirEnv, c.env)
			got, err := DataDir(c.dataset, c.flag)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("err = %v, want %q", err, c.err)
				}
				return
			}
			if err != nil || got != c.want {
				t.Fatalf("DataDir = %q, %v; want %q", got, err, c.want)
			}
		})
	}
}
