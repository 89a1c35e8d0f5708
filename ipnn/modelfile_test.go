package ipnn

import (
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestModelSaveLoad round-trips trained models (weights and observation) and checks
// that broken files give clear errors.
func TestModelSaveLoad(t *testing.T) {
	data := mnistTest(t)
	tr, te := data.Subset(2000), &Dataset{Name: data.Name, Dim: data.Dim, Classes: 10, X: data.X[9000*data.Dim:], Y: data.Y[9000:]}
	s, _ := NewSplit([]int{2, 2, 5})
	cases := []struct {
		name string
		cfg  ModelConfig
	}{
		{"ipnn", ModelConfig{Kind: KindIPNN, Hidden: []int{32}, Head: HeadConfig{Split: s.Sizes, LabelSets: []LabelSet{AllGroups(s, 10)}, Forget: 5, Eps: 1e-6}}},
		{"ipnn multi-degree + independence", ModelConfig{Kind: KindIPNN, Hidden: []int{32}, Head: HeadConfig{Split: s.Sizes,
			LabelSets: []LabelSet{AllGroups(s, 10), {Name: "odd", Groups: []int{0}, Classes: 2, Base: 2}}, Forget: 3, Eps: 1e-6, Independence: []int{0, 1, 2}}}},
		{"softmax", ModelConfig{Kind: KindSoftmax, Hidden: []int{32}, Classes: 10}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(5, 6))
			m, err := NewModel(tc.cfg, data.Dim, rng)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := Train(context.Background(), m, tr, nil, TrainOptions{Epochs: 1, Batch: 64, LR: 1e-3}, rng); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(t.TempDir(), "m.model")
			if err := m.Save(path); err != nil {
				t.Fatal(err)
			}
			m2, err := LoadModel(path)
			if err != nil {
				t.Fatal(err)
			}
			acc1, p1 := Evaluate(m, te, 0)
			acc2, p2 := Evaluate(m2, te, 0)
			if acc1 != acc2 {
				t.Fatalf("accuracy %v after load, %v before", acc2, acc1)
			}
			for i := range p1 {
				if p1[i] != p2[i] {
					t.Fatalf("prediction %d differs after load", i)
				}
			}
			raw, _ := os.ReadFile(path)
			bad := []struct {
				name, want string
				data       []byte
			}{
				{"truncated", "unexpected EOF", raw[:len(raw)-3]},
				{"bad magic", "not a bpo IPNN model", append([]byte("XXXX"), raw[4:]...)},
				{"trailing", "trailing data", append(append([]byte(nil), raw...), 1, 2)},
				{"empty", "not a bpo IPNN model", nil},
			}
			for _, b := range bad {
				p := filepath.Join(t.TempDir(), b.name)
				os.WriteFile(p, b.data, 0o644)
				if _, err := LoadModel(p); err == nil || !strings.Contains(err.Error(), b.want) || !strings.Contains(err.Error(), p) && b.name != "empty" {
					t.Errorf("%s: error %v, want mention of %q and the file", b.name, err, b.want)
				}
			}
		})
	}
	if _, err := LoadModel(filepath.Join(t.TempDir(), "missing.model")); err == nil {
		t.Fatal("missing file accepted")
	}
}
