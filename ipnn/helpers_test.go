package ipnn

import (
	"sync"
	"testing"
)

var (
	mnistOnce sync.Once
	mnistDir  string
	mnistErr  error
)

// mnistDataDir locates the MNIST idx files as bpo does (DataDir); make test fetches them first.
func mnistDataDir(t testing.TB) string {
	t.Helper()
	mnistOnce.Do(func() { mnistDir, mnistErr = DataDir(DatasetMNIST, "") })
	if mnistErr != nil {
		t.Fatal(mnistErr)
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
