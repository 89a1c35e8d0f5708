package ipnn

import (
	"context"
	"math"
	"math/rand/v2"
	"testing"
)

// splitMNIST returns the first n samples of the real MNIST training split and the last
// m samples of the real test split.
func splitMNIST(t *testing.T, n, m int) (*Dataset, *Dataset) {
	tr, err := LoadImages("mnist", mnistDataDir(t), true)
	if err != nil {
		t.Fatal(err)
	}
	d := mnistTest(t)
	te := &Dataset{Name: d.Name, Dim: d.Dim, Classes: d.Classes, X: d.X[(d.Len()-m)*d.Dim:], Y: d.Y[d.Len()-m:]}
	return tr.Subset(n), te
}

// TestTrainMNISTSubset trains for a few hundred steps on real MNIST images and checks
// held-out accuracy far above chance (10%), for IPNN splits and the softmax baseline.
func TestTrainMNISTSubset(t *testing.T) {
	tr, te := splitMNIST(t, 20000, 2000)
	cases := []struct {
		name   string
		kind   Kind
		split  []int
		minAcc float64
	}{
		{"ipnn [2,2,5]", KindIPNN, []int{2, 2, 5}, 0.80},
		{"ipnn [2,2,2,2] multi-state", KindIPNN, []int{2, 2, 2, 2}, 0.80},
		{"softmax", KindSoftmax, nil, 0.85},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(3, 4))
			cfg := ModelConfig{Kind: tc.kind, Hidden: []int{128, 36}, Classes: 10}
			if tc.kind == KindIPNN {
				s, _ := NewSplit(tc.split)
				cfg.Head = HeadConfig{Split: tc.split, LabelSets: []LabelSet{AllGroups(s, 10)}, Forget: 5, Eps: 1e-6}
			}
			m, err := NewModel(cfg, tr.Dim, rng)
			if err != nil {
				t.Fatal(err)
			}
			st, err := Train(context.Background(), m, tr, te, TrainOptions{Epochs: 3, Batch: 64, LR: 1e-3}, rng)
			if err != nil {
				t.Fatal(err)
			}
			if st.Steps != 3*((20000+63)/64) {
				t.Fatalf("steps = %d", st.Steps)
			}
			if st.EpochLoss[2] >= st.EpochLoss[0] {
				t.Errorf("loss did not decrease: %v", st.EpochLoss)
			}
			acc, _ := Evaluate(m, te, 0)
			t.Logf("held-out accuracy %.4f, losses %v, %.1fs", acc, st.EpochLoss, st.TrainSeconds)
			if acc < tc.minAcc {
				t.Fatalf("accuracy %.4f < %.2f", acc, tc.minAcc)
			}
			if tc.kind != KindIPNN {
				return
			}
			// Inference is a distribution over labels: rows of P(y|x) sum to 1.
			x := Mat{Rows: 200, Cols: te.Dim, Data: te.X[:200*te.Dim]}
			post := m.Head.Posterior(m.Logits(x), 0)
			for b := 0; b < post.Rows; b++ {
				sum := 0.0
				for _, v := range post.Row(b) {
					if v < 0 {
						t.Fatalf("negative posterior %v", v)
					}
					sum += float64(v)
				}
				if math.Abs(sum-1) > 1e-3 {
					t.Fatalf("sample %d: sum_y P(y|x) = %v", b, sum)
				}
			}
		})
	}
}
