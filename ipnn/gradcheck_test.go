package ipnn

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestGradientCheck compares the manual backprop (MLP + group softmax + observation +
// inference + multi-degree + independence) with central finite differences on real
// MNIST pixels, after a few committed steps so that the detached history is non-empty.
func TestGradientCheck(t *testing.T) {
	data := mnistTest(t)
	cases := []struct {
		name   string
		split  []int
		sets   func(Split) []LabelSet
		indep  []int
		forget int
		eps    float64
		ref    bool
	}{
		{"single set [2,2,3]", []int{2, 2, 3}, func(s Split) []LabelSet { return []LabelSet{AllGroups(s, 10)} }, nil, 3, 1e-6, false},
		{"no history T=1", []int{3, 4}, func(s Split) []LabelSet { return []LabelSet{AllGroups(s, 10)} }, nil, 1, 1e-6, false},
		{"multi-degree", []int{2, 2, 3}, func(s Split) []LabelSet {
			return []LabelSet{AllGroups(s, 10), {Name: "parity", Groups: []int{0}, Classes: 2, Base: 2}, {Name: "sub", Groups: []int{1, 2}, Classes: 10}}
		}, nil, 4, 1e-6, false},
		{"independence", []int{2, 3, 2}, func(s Split) []LabelSet { return []LabelSet{AllGroups(s, 10)} }, []int{0, 1, 2}, 3, 1e-6, false},
		{"7 bits, K=128 parallel path", []int{2, 2, 2, 2, 2, 2, 2}, func(s Split) []LabelSet { return []LabelSet{AllGroups(s, 10)} }, nil, 3, 1e-6, false},
		{"eps 2 clamps", []int{2, 5}, func(s Split) []LabelSet { return []LabelSet{AllGroups(s, 10)} }, nil, 2, 2, false},
		{"reference clamp, eps 2", []int{2, 5}, func(s Split) []LabelSet { return []LabelSet{AllGroups(s, 10)} }, nil, 2, 2, true},
		{"reference clamp, multi-degree", []int{2, 2, 3}, func(s Split) []LabelSet {
			return []LabelSet{AllGroups(s, 10), {Name: "parity", Groups: []int{0}, Classes: 2, Base: 2}}
		}, nil, 3, 1e-6, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(7, 11))
			s, err := NewSplit(tc.split)
			if err != nil {
				t.Fatal(err)
			}
			net, err := NewMLP([]int{data.Dim, 6, s.Nodes()}, InitTorch, rng)
			if err != nil {
				t.Fatal(err)
			}
			head, err := NewHead(HeadConfig{Split: tc.split, LabelSets: tc.sets(s), Forget: tc.forget, Eps: tc.eps, Independence: tc.indep, RefClamp: tc.ref})
			if err != nil {
				t.Fatal(err)
			}
			const B = 12
			batch := func(i int) (Mat, []int64) {
				x := Mat{Rows: B, Cols: data.Dim, Data: data.X[i*B*data.Dim : (i+1)*B*data.Dim]}
				return x, data.Y[i*B : (i+1)*B]
			}
			dl := NewMat(B, s.Nodes())
			for i := 0; i < 3; i++ { // fill the history
				x, y := batch(i)
				head.Step(net.Forward(x), y, dl)
			}
			x, y := batch(3)
			lossAt := func() float64 {
				l, _ := head.lossGrad(net.Forward(x), y, NewMat(B, s.Nodes()), false)
				return l
			}
			l0, _ := head.lossGrad(net.Forward(x), y, dl, false)
			net.Backward(dl)
			if math.IsNaN(l0) || l0 <= 0 {
				t.Fatalf("loss %v", l0)
			}
			params, grads := net.Params(), net.Grads()
			checked := 0
			for pi, p := range params {
				for trial := 0; trial < 12; trial++ {
					j := rng.IntN(len(p))
					if pi == 0 { // first layer: pick weights of non-zero pixels
						for x.Data[(j/p2cols(net, 0))%data.Dim] == 0 && trial < 200 {
							j = rng.IntN(len(p))
							trial++
						}
					}
					old := p[j]
					const h = 1e-2
					p[j] = old + h
					lp := lossAt()
					p[j] = old - h
					lm := lossAt()
					p[j] = old
					num := (lp - lm) / (2 * h)
					ana := float64(grads[pi][j])
					if math.Abs(num-ana) > 2e-3+0.03*math.Abs(num) {
						t.Errorf("param %d[%d]: analytic %.6g, finite difference %.6g", pi, j, ana, num)
					}
					checked++
				}
			}
			if checked < 30 {
				t.Fatalf("only %d parameters checked", checked)
			}
		})
	}
}

// p2cols returns the column count (output width) of layer i's weight matrix.
func p2cols(m *MLP, i int) int { return m.Layers[i].Out }
