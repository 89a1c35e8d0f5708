package ipnn

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

func TestToyBitsData(t *testing.T) {
	tr, te, err := ToyBits(4, 3, false)
	if err != nil {
		t.Fatal(err)
	}
	if te.Len() != 16 || tr.Len() != 48 || te.Dim != 4 {
		t.Fatalf("sizes %d %d %d", te.Len(), tr.Len(), te.Dim)
	}
	// 11 = 1011b, MSB first
	want := []float32{1, 0, 1, 1}
	for j, v := range te.X[11*4 : 12*4] {
		if v != want[j] {
			t.Fatalf("bits of 11: %v", te.X[11*4:12*4])
		}
	}
	_, ts, err := ToyBits(4, 1, true)
	if err != nil {
		t.Fatal(err)
	}
	wantSigned := []float32{1, -1, 1, 1}
	for j, v := range ts.X[11*4 : 12*4] {
		if v != wantSigned[j] {
			t.Fatalf("signed bits of 11: %v", ts.X[11*4:12*4])
		}
	}
	sets := BitLabelSets(4)
	if sets[0].Label(11) != 1 || sets[1].Label(11) != 0 || sets[3].Label(11) != 1 {
		t.Fatalf("bit labels of 11: %d %d %d", sets[0].Label(11), sets[1].Label(11), sets[3].Label(11))
	}
	if _, _, err := ToyBits(0, 1, false); err == nil {
		t.Fatal("k=0 accepted")
	}
}

// TestToyBitsTrain learns the 8-bit toy task (256 classes from 16 output nodes) with
// per-bit labels (multi-degree classification).
func TestToyBitsTrain(t *testing.T) {
	const k = 8
	split := make([]int, k)
	for i := range split {
		split[i] = 2
	}
	e := Experiment{Dataset: DatasetToyBits, Kind: KindIPNN, Split: split, Hidden: []int{64, 128}, Init: InitUniform03,
		Forget: 5, Eps: 1e-6, Epochs: 4, Batch: 512, LR: 3e-3, Seed: 9, Runs: 1, Bits: k, Repeat: 100, BitLabels: true, Out: t.TempDir(), SaveModels: true}
	res, err := e.Run(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("accuracy %.4f in %.1fs", res[0].Accuracy, res[0].Stats.TrainSeconds)
	if res[0].Accuracy < 0.95 {
		t.Fatalf("toy accuracy %.4f < 0.95", res[0].Accuracy)
	}
	runs, err := ReadRuns(e.Out)
	if err != nil || len(runs) != 1 || runs[0].Accuracy != res[0].Accuracy || len(runs[0].LabelSets) != k+1 {
		t.Fatalf("run JSON: %v %+v", err, runs)
	}
	// every bit is held by the group tied to it (group j carries bit k-1-j).
	for g, gb := range res[0].GroupBits {
		if gb.Bit != k-1-g || gb.Agreement < 0.99 {
			t.Fatalf("group %d follows bit %d on %.3f of the numbers, want bit %d", g, gb.Bit, gb.Agreement, k-1-g)
		}
	}
	// a dead group (constant state, as in a stalled run) is reported as such.
	m, err := LoadModel(e.Out + "/run-01.model")
	if err != nil {
		t.Fatal(err)
	}
	last := &m.Net.Layers[len(m.Net.Layers)-1]
	for i := 0; i < last.In; i++ {
		last.W[i*last.Out], last.W[i*last.Out+1] = 0, 0
	}
	last.B[0], last.B[1] = 30, -30
	_, test, _, _ := e.loadData(nil)
	states, err := GroupStates(m, test, 0)
	if err != nil {
		t.Fatal(err)
	}
	gb := groupBits(states, m.Head.Split().Sizes, test.Y, k)
	if gb[0].Agreement > 0.6 || bitsEncoded(gb) != k-1 {
		t.Fatalf("dead group 0: %+v, %d bits encoded", gb[0], bitsEncoded(gb))
	}
	var buf bytes.Buffer
	if err := WriteReport(&buf, []string{e.Out}); err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("input bits 0/1; %d steps/run; worst run %.2f; runs with all %d bits held by a group: 1/1", res[0].Stats.Steps, 100*res[0].Accuracy, k)
	if !strings.Contains(buf.String(), want) {
		t.Fatalf("report lacks %q:\n%s", want, buf.String())
	}
}

// TestNumberTask builds 5-digit numbers (100,000 classes) from real MNIST digits, checks
// that test numbers are unseen in training, and trains the tiled IPNN with a shared
// per-digit observation (split [2,3,5] per image) to well above chance (1e-5).
func TestNumberTask(t *testing.T) {
	trAll, _ := splitMNIST(t, 20000, 1)
	d := mnistTest(t)
	teImg := &Dataset{Name: d.Name, Dim: d.Dim, Classes: 10, X: d.X[8000*d.Dim:], Y: d.Y[8000:]}
	rng := rand.New(rand.NewPCG(1, 1))
	nt, err := NewNumberTask(trAll, teImg, 5, 1, rng)
	if err != nil {
		t.Fatal(err)
	}
	if nt.Test.Len() != 400 || nt.Train.Len() != 4000 || nt.UnseenTest != nt.Test.Len() || nt.Train.Classes != 100000 {
		t.Fatalf("task: train %d test %d unseen %d classes %d", nt.Train.Len(), nt.Test.Len(), nt.UnseenTest, nt.Train.Classes)
	}
	seen := map[int64]bool{}
	for _, y := range nt.Train.Y {
		seen[y] = true
	}
	for i, y := range nt.Test.Y {
		if seen[y] {
			t.Fatalf("test number %d (%05d) occurs in training", i, y)
		}
		if want := number(teImg, nt.Test.Parts[i*5:(i+1)*5]); want != y {
			t.Fatalf("test number %d is %d, images show %d", i, y, want)
		}
	}
	cases := []struct {
		name          string
		tie           bool
		epochs        int
		minDig, minNb float64
	}{
		{"tied [2,3,5]", true, 2, 0.85, 0.4},
		// one observation per position: only a smoke test of the wiring (few steps).
		{"per-position [2,3,5]", false, 1, 0.3, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := Experiment{Dataset: DatasetNumbers, Kind: KindIPNN, Split: []int{2, 3, 5}, Hidden: []int{128, 36}, Forget: 5, Eps: 1e-6, Digits: 5, Tie: tc.tie}
			cfg, err := e.modelConfig(nt.Train.Classes)
			if err != nil {
				t.Fatal(err)
			}
			m, err := NewModel(cfg, nt.Train.Dim, rng)
			if err != nil {
				t.Fatal(err)
			}
			if got := m.Net.Layers[len(m.Net.Layers)-1].Out * 5; got != 50 {
				t.Fatalf("%d output nodes, want 50", got)
			}
			if _, err := Train(context.Background(), m, nt.Train, nil, TrainOptions{Epochs: tc.epochs, Batch: 8, LR: 1e-3}, rng); err != nil {
				t.Fatal(err)
			}
			acc, pred := Evaluate(m, nt.Test, 0)
			dacc := digitAccuracy(pred, nt.Test.Y, 5)
			t.Logf("5-digit numbers: accuracy %.3f, digit accuracy %.3f", acc, dacc)
			if dacc < tc.minDig || acc < tc.minNb {
				t.Fatalf("number accuracy %.3f (digits %.3f) too low", acc, dacc)
			}
		})
	}
}

// TestUninformativeGroupIsASaddle shows why IPNN needs a symmetry-breaking init and why a
// saturated group stays stuck: when a group's state does not depend on the input, the loss
// has exactly zero gradient there, yet moving the group towards its bit (either polarity)
// lowers the loss. Toy 4-bit numbers, split 2×4, class + per-bit label sets.
func TestUninformativeGroupIsASaddle(t *testing.T) {
	const k = 4
	_, test, err := ToyBits(k, 1, true)
	if err != nil {
		t.Fatal(err)
	}
	split := []int{2, 2, 2, 2}
	s, _ := NewSplit(split)
	head, err := NewHead(HeadConfig{Split: split, LabelSets: append([]LabelSet{AllGroups(s, 1<<k)}, BitLabelSets(k)...), Forget: 1, Eps: 1e-6})
	if err != nil {
		t.Fatal(err)
	}
	B := test.Len()
	// logits: groups 1..3 already follow their bits; group 0 is shifted by d·(±1 by its bit).
	logits := func(d float32) Mat {
		m := NewMat(B, s.Nodes())
		for b := 0; b < B; b++ {
			for g := 0; g < k; g++ {
				x := test.X[b*k+g] // ±1: bit k-1-g of the number
				v := 3 * x
				if g == 0 {
					v = d * x
				}
				m.Data[b*s.Nodes()+2*g+1] = v
			}
		}
		return m
	}
	dl := NewMat(B, s.Nodes())
	l0, _ := head.lossGrad(logits(0), test.Y, dl, false)
	for b := 0; b < B; b++ {
		for i := 0; i < 2; i++ {
			if g := dl.Data[b*s.Nodes()+i]; math.Abs(float64(g)) > 1e-9 {
				t.Fatalf("uninformative group 0 gets gradient %g at sample %d", g, b)
			}
		}
	}
	for _, d := range []float32{0.5, -0.5} {
		l, _ := head.lossGrad(logits(d), test.Y, dl, false)
		if !(l < l0-1e-3) {
			t.Fatalf("loss %.6f with group 0 shifted by %v, not below %.6f at the uninformative point", l, d, l0)
		}
		big := 0.0
		for b := 0; b < B; b++ {
			big = math.Max(big, math.Abs(float64(dl.Data[b*s.Nodes()])))
		}
		if big < 1e-4 {
			t.Fatalf("group 0 shifted by %v: gradient %g, want it to pull further", d, big)
		}
	}
}
