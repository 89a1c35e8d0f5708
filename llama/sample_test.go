package llama

import (
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"strconv"
	"testing"
)

// referenceKept is the kept set of the straightforward sampler: sort the whole row (descending
// logit, ties by token id), cut to top-k, drop weights below min-p, keep the smallest prefix whose
// weight reaches top-p of the rest.
func referenceKept(row []float32, cfg Sampling) []int32 {
	idx := make([]int32, len(row))
	for i := range idx {
		idx[i] = int32(i)
	}
	sort.SliceStable(idx, func(a, b int) bool { return row[idx[a]] > row[idx[b]] })
	if cfg.TopK > 0 && cfg.TopK < len(idx) {
		idx = idx[:cfg.TopK]
	}
	w := make([]float64, len(idx))
	for i, t := range idx {
		w[i] = math.Exp(float64(row[t]-row[idx[0]]) / cfg.Temperature)
	}
	n := len(idx)
	for cfg.MinP > 0 && n > 1 && w[n-1] < cfg.MinP {
		n--
	}
	if p := cfg.TopP; p > 0 && p < 1 {
		total := 0.0
		for _, v := range w[:n] {
			total += v
		}
		acc := 0.0
		for i := range n {
			acc += w[i]
			if acc >= p*total {
				n = i + 1
				break
			}
		}
	}
	return idx[:n]
}

// TestSamplerKeepsTheSameCandidates: the bucketed sampler keeps exactly the candidates a full sort
// keeps, for every combination of temperature, top-k, min-p and top-p, on flat, peaked and tied rows.
func TestSamplerKeepsTheSameCandidates(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	rows := map[string][]float32{}
	for _, n := range []int{1, 7, 1000, 151936} {
		flat, peaked, tied := make([]float32, n), make([]float32, n), make([]float32, n)
		for i := range flat {
			flat[i] = float32(rng.NormFloat64())
			peaked[i] = float32(rng.NormFloat64() * 8)
			tied[i] = float32(rng.IntN(5))
		}
		rows[fmtInt("flat", n)], rows[fmtInt("peaked", n)], rows[fmtInt("tied", n)] = flat, peaked, tied
	}
	configs := []Sampling{
		{Temperature: 1}, {Temperature: 1, TopP: 0.95}, {Temperature: 0.7, TopK: 40}, {Temperature: 1.2, TopP: 0.95, MinP: 0.01},
		{Temperature: 1, TopK: 1}, {Temperature: 0.3, TopP: 0.5, TopK: 100}, {Temperature: 2, MinP: 0.2}, {Temperature: 1, MinP: 1e-40},
		{Temperature: 0.05, TopP: 0.99}, {Temperature: 1, TopK: 5, MinP: 0.5, TopP: 0.3},
	}
	for name, row := range rows {
		for _, cfg := range configs {
			want := referenceKept(row, cfg)
			got, total := newSampler(cfg).keep(row)
			g, w := slices.Clone(got), slices.Clone(want)
			slices.Sort(g)
			slices.Sort(w)
			if !slices.Equal(g, w) {
				t.Errorf("%s %+v: kept %d candidates, full sort keeps %d", name, cfg, len(got), len(want))
				continue
			}
			if !(total > 0) || math.IsInf(total, 0) {
				t.Errorf("%s %+v: total weight %v", name, cfg, total)
			}
		}
	}
}

func fmtInt(s string, n int) string { return s + "-" + strconv.Itoa(n) }

// TestSamplerFrequencies: draws follow softmax(logits / T) over the kept candidates.
func TestSamplerFrequencies(t *testing.T) {
	row := []float32{2, 1.5, 1, 0.2, -1, -3}
	cfg := Sampling{Temperature: 0.8, TopP: 0.9, Seed: 5}
	kept := referenceKept(row, cfg)
	p := make([]float64, len(row))
	z := 0.0
	for _, i := range kept {
		p[i] = math.Exp(float64(row[i]) / cfg.Temperature)
		z += p[i]
	}
	s := newSampler(cfg)
	const draws = 200000
	count := make([]int, len(row))
	for range draws {
		count[s.sample(row)]++
	}
	for i := range row {
		want := p[i] / z * draws
		if math.Abs(float64(count[i])-want) > 5*math.Sqrt(want+1) {
			t.Errorf("token %d drawn %d times, want about %.0f", i, count[i], want)
		}
	}
}

// BenchmarkSampler152k times one sampled token (temperature 1, top-p 0.95) over a qwen2-sized row.
func BenchmarkSampler152k(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 2))
	row := make([]float32, 151936)
	for i := range row {
		row[i] = float32(rng.NormFloat64() * 2)
	}
	s := newSampler(Sampling{Temperature: 1, TopP: 0.95, Seed: 1})
	for b.Loop() {
		s.sample(row)
	}
}
