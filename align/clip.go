package align

import (
	"fmt"
	"math"
)

// GradNorm returns the global L2 norm of all gradients (accumulated in float64). It fails naming
// the tensor and index of the first NaN or Inf. names may be nil.
func GradNorm(grads [][]float32, names []string) (float64, error) {
	var sum float64
	for i, g := range grads {
		for j, x := range g {
			v := float64(x)
			if !isFinite(v) {
				return math.NaN(), fmt.Errorf("gradient of %s, element %d, is %v", tensorLabel(names, i), j, x)
			}
			sum += v * v
		}
	}
	return math.Sqrt(sum), nil
}

func tensorLabel(names []string, i int) string {
	if i < len(names) && names[i] != "" {
		return fmt.Sprintf("tensor %q", names[i])
	}
	return fmt.Sprintf("tensor %d", i)
}

// ClipGradNorm scales all gradients in place so that their global L2 norm is at most maxNorm
// (as torch.nn.utils.clip_grad_norm_: factor maxNorm/(norm+1e-6) when below 1) and returns the
// norm before clipping. maxNorm <= 0 only measures. Non-finite gradients are an error and leave
// the gradients untouched.
func ClipGradNorm(grads [][]float32, names []string, maxNorm float64) (float64, error) {
	norm, err := GradNorm(grads, names)
	if err != nil {
		return norm, err
	}
	if maxNorm > 0 {
		coef := maxNorm / (norm + 1e-6)
		if coef < 1 {
			for _, g := range grads {
				for j := range g {
					g[j] = float32(float64(g[j]) * coef)
				}
			}
		}
	}
	return norm, nil
}
