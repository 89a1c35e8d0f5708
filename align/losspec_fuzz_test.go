package align

import (
	"math"
	"testing"
)

// FuzzLossSpec: any spec string either builds a loss whose Compute works on a real batch or is
// refused with an error; nothing panics. The refresh and alarm settings parse the same way.
func FuzzLossSpec(f *testing.F) {
	for _, s := range []string{"bpo:1,sft:0.2", "dpo(beta=0.2,label_smoothing=0.1):0.5,sft:0.5", "aot", "dpo(divergence=alpha,divergence_alpha=0.5)",
		"bpo:-1", "x(", "dpo((", "orpo(include_prompt=true):2", ",", "hard:5", "soft:0.5:3", "0.5:2:stop"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, spec string) {
		if l, err := NewLossFromSpec(spec, nil, false); err == nil {
			v, g, err := l.Compute([]PairLogps{pairP1, pairP2, pairTIE})
			if err == nil && (math.IsNaN(v) || len(g) != 3) {
				t.Fatalf("%q: loss %v, %d grads", spec, v, len(g))
			}
			if LossSpec(l) == "" {
				t.Fatalf("%q: empty description", spec)
			}
		}
		if r, err := ParseRefRefresh(spec); err == nil && r.Enabled() && (r.Every <= 0 || !(r.Mix > 0 && r.Mix <= 1)) {
			t.Fatalf("%q: accepted %+v", spec, r)
		}
		if a, err := ParseDCRAlarm(spec); err == nil && a.Rate != 0 && (!(a.Rate > 0 && a.Rate < 1) || a.Steps < 1) {
			t.Fatalf("%q: accepted %+v", spec, a)
		}
	})
}
