package ipnn

import "math"

// softmaxLoss is the baseline: one softmax over Classes outputs with cross-entropy.
// It writes dL/dlogits and returns the mean loss.
func softmaxLoss(logits Mat, y []int64, dlogits Mat) float64 {
	B := logits.Rows
	loss := 0.0
	for b := 0; b < B; b++ {
		row, out := logits.Row(b), dlogits.Row(b)
		mx := math.Inf(-1)
		for _, v := range row {
			mx = math.Max(mx, float64(v))
		}
		sum := 0.0
		for _, v := range row {
			sum += math.Exp(float64(v) - mx)
		}
		for c, v := range row {
			p := math.Exp(float64(v)-mx) / sum
			t := 0.0
			if int64(c) == y[b] {
				t = 1
				loss -= math.Log(math.Max(p, 1e-300))
			}
			out[c] = float32((p - t) / float64(B))
		}
	}
	return loss / float64(B)
}

func softmaxPredict(logits Mat) []int64 {
	pred := make([]int64, logits.Rows)
	for b := range pred {
		pred[b] = int64(argmax(logits.Row(b)))
	}
	return pred
}
