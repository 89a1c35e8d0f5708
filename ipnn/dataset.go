package ipnn

import (
	"fmt"
)

// Dataset is a labelled set of feature vectors.
type Dataset struct {
	Name    string
	Dim     int
	X       []float32 // N×Dim
	Y       []int64
	Classes int
	// Composite samples (X empty): sample i is the concatenation of Group rows of Base,
	// Parts[i*Group : (i+1)*Group].
	Base  *Dataset
	Parts []int32
	Group int
}

// Len is the number of samples.
func (d *Dataset) Len() int { return len(d.Y) }

// fill copies the features of sample i into dst (length Dim).
func (d *Dataset) fill(dst []float32, i int) {
	if d.Base == nil {
		copy(dst, d.X[i*d.Dim:(i+1)*d.Dim])
		return
	}
	w := d.Base.Dim
	for g, p := range d.Parts[i*d.Group : (i+1)*d.Group] {
		copy(dst[g*w:(g+1)*w], d.Base.X[int(p)*w:(int(p)+1)*w])
	}
}

// batch gathers samples idx into x (len(idx)×Dim) and their classes into y.
func (d *Dataset) batch(idx []int, x *Mat, y *[]int64) {
	*x = ensure(*x, len(idx), d.Dim)
	*y = (*y)[:0]
	for r, i := range idx {
		d.fill(x.Row(r), i)
		*y = append(*y, d.Y[i])
	}
}

// Subset returns the first n samples (all when n <= 0 or n >= Len).
func (d *Dataset) Subset(n int) *Dataset {
	if n <= 0 || n >= d.Len() {
		return d
	}
	c := *d
	c.Y = d.Y[:n]
	if d.Base == nil {
		c.X = d.X[:n*d.Dim]
	} else {
		c.Parts = d.Parts[:n*d.Group]
	}
	return &c
}

// LoadImages loads an MNIST-format image set (train or t10k) from dir: pixels are
// scaled to [0,1], labels must be 0..9.
func LoadImages(name, dir string, train bool) (*Dataset, error) {
	prefix := "t10k"
	if train {
		prefix = "train"
	}
	ip, err := findIDX(dir, prefix+"-images-idx3-ubyte")
	if err != nil {
		return nil, fmt.Errorf("load %s: %w (%s)", name, err, DataDirHint)
	}
	lp, err := findIDX(dir, prefix+"-labels-idx1-ubyte")
	if err != nil {
		return nil, fmt.Errorf("load %s: %w (%s)", name, err, DataDirHint)
	}
	idims, pix, err := readIDX(ip)
	if err != nil {
		return nil, fmt.Errorf("load %s images: %w", name, err)
	}
	ldims, lab, err := readIDX(lp)
	if err != nil {
		return nil, fmt.Errorf("load %s labels: %w", name, err)
	}
	if len(idims) != 3 {
		return nil, fmt.Errorf("load %s: %s has dims %v, want 3 (count, rows, cols)", name, ip, idims)
	}
	if len(ldims) != 1 || ldims[0] != idims[0] {
		return nil, fmt.Errorf("load %s: %s has dims %v, want [%d] to match %s", name, lp, ldims, idims[0], ip)
	}
	d := &Dataset{Name: name, Dim: idims[1] * idims[2], Classes: 10}
	d.X = make([]float32, len(pix))
	for i, v := range pix {
		d.X[i] = float32(v) / 255
	}
	d.Y = make([]int64, len(lab))
	for i, v := range lab {
		if v > 9 {
			return nil, fmt.Errorf("load %s: %s: label %d of sample %d, want 0..9", name, lp, v, i)
		}
		d.Y[i] = int64(v)
	}
	return d, nil
}
