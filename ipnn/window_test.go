package ipnn

import (
	"math"
	"testing"
)

// TestWindowForgetting checks that the observation only counts the last T mini-batches:
// after T batches labelled 1, nothing of the earlier batches labelled 0 remains.
func TestWindowForgetting(t *testing.T) {
	data := mnistTest(t)
	for _, T := range []int{1, 2, 5} {
		t.Run("T="+string(rune('0'+T)), func(t *testing.T) {
			split := []int{2, 3}
			s, _ := NewSplit(split)
			h, err := NewHead(HeadConfig{Split: split, LabelSets: []LabelSet{AllGroups(s, 10)}, Forget: T, Eps: 1e-6})
			if err != nil {
				t.Fatal(err)
			}
			const B = 8
			logits := NewMat(B, s.Nodes())
			for i := range logits.Data { // real pixels as logits: varied, deterministic
				logits.Data[i] = 4 * data.X[200+i*7]
			}
			dl := NewMat(B, s.Nodes())
			label := func(c int64) []int64 {
				y := make([]int64, B)
				for i := range y {
					y[i] = c
				}
				return y
			}
			for i := 0; i < 3*T+2; i++ {
				h.Step(logits, label(0), dl)
			}
			tab := h.Tables()[0]
			K := 6
			for k := 0; k < K; k++ {
				if tab.Num[0*K+k] == 0 {
					t.Fatalf("label 0 not observed at joint point %d", k)
				}
			}
			for i := 0; i < T; i++ {
				h.Step(logits, label(1), dl)
				if got := len(h.sets[0].win.entries); got != min(T, i+1+T) {
					t.Fatalf("window holds %d batches, want %d", got, T)
				}
			}
			tab = h.Tables()[0]
			// den equals T batches of B samples: sum_k den[k] = T*B.
			sum := 0.0
			for _, v := range tab.Den {
				sum += v
			}
			if math.Abs(sum-float64(T*B)) > 1e-4 {
				t.Fatalf("sum of den = %v, want %d", sum, T*B)
			}
			for k := 0; k < K; k++ {
				if tab.Num[0*K+k] != 0 {
					t.Fatalf("label 0 still observed after %d newer batches: num[0,%d] = %v", T, k, tab.Num[k])
				}
				if math.Abs(float64(tab.Num[1*K+k])-tab.Den[k]) > 1e-4*math.Max(1, tab.Den[k]) {
					t.Fatalf("num[1,%d] = %v, den = %v: all recent samples have label 1", k, tab.Num[K+k], tab.Den[k])
				}
			}
			// P(y=1 | x) is then ~1 for any input.
			post := h.Posterior(logits, 0)
			if p := post.Row(0)[1]; p < 0.999 {
				t.Fatalf("P(y=1|x) = %v", p)
			}
		})
	}
}

// TestWindowReferenceClamp checks the reference-code accumulator: stored sums never fall
// below eps, and forgotten labels fall back to exactly eps.
func TestWindowReferenceClamp(t *testing.T) {
	const T, K, eps = 2, 3, 0.5
	w := newWindow(T, K, 2)
	w.setRefClamp(eps)
	entry := func(label int32, v float32) obsEntry {
		return obsEntry{den: []float64{float64(v), float64(v), float64(v)}, labels: []int32{label},
			rows: []float32{v, v, v}, index: map[int32]int{label: 0}}
	}
	for i := 0; i < 3; i++ {
		w.trimForStep()
		w.push(entry(0, 2))
	}
	num, den := w.sums()
	if num[0] != 4 || num[K] != eps || den[0] != 4 {
		t.Fatalf("after label-0 batches: num %v den %v", num, den)
	}
	for i := 0; i < T; i++ {
		w.trimForStep()
		w.push(entry(1, 0.1))
	}
	num, den = w.sums()
	if num[0] != eps {
		t.Fatalf("forgotten label: num %v, want eps %v", num[0], eps)
	}
	// den: 4 - 2 + 0.1 = 2.1, then 2.1 - 2 + 0.1 = 0.2 -> clamped to 0.5.
	// label 1 starts from the clamped eps: 0.5 + 0.1 + 0.1 = 0.7 (exact window sum: 0.2).
	if math.Abs(den[0]-eps) > 1e-6 || math.Abs(float64(num[K])-0.7) > 1e-6 {
		t.Fatalf("num %v den %v", num, den)
	}
}
