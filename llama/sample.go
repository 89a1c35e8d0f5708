package llama

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
)

// Sampling configures token selection. The zero value is greedy decoding.
type Sampling struct {
	// Temperature <= 0 means greedy (argmax).
	Temperature float64 `json:"temperature"`
	// TopK keeps the K most likely tokens (0: all).
	TopK int `json:"top_k"`
	// TopP keeps the smallest set of tokens whose probability reaches P (0 or 1: all).
	TopP float64 `json:"top_p"`
	// MinP drops tokens whose probability is below MinP times the most likely one's (0: none).
	MinP float64 `json:"min_p"`
	// Seed seeds the request's random stream; the same seed gives the same sample.
	Seed uint64 `json:"seed"`
}

// Validate reports an out-of-range setting.
func (s Sampling) Validate() error {
	switch {
	case !(s.Temperature >= 0) || math.IsInf(s.Temperature, 0):
		return fmt.Errorf("%w: temperature %v, want a finite number >= 0", ErrInvalidArgument, s.Temperature)
	case s.TopK < 0:
		return fmt.Errorf("%w: top_k %d, want >= 0", ErrInvalidArgument, s.TopK)
	case !(s.TopP >= 0 && s.TopP <= 1): // also NaN
		return fmt.Errorf("%w: top_p %v, want in [0, 1]", ErrInvalidArgument, s.TopP)
	case !(s.MinP >= 0 && s.MinP <= 1):
		return fmt.Errorf("%w: min_p %v, want in [0, 1]", ErrInvalidArgument, s.MinP)
	}
	return nil
}

// sampler draws tokens from logits rows for one request.
type sampler struct {
	cfg  Sampling
	rng  *rand.Rand
	cand []candidate
}

type candidate struct {
	tok   Token
	logit float64
}

func newSampler(cfg Sampling) *sampler {
	return &sampler{cfg: cfg, rng: rand.New(rand.NewPCG(cfg.Seed, 0x9e3779b97f4a7c15))}
}

// sample picks the next token from a logits row.
func (s *sampler) sample(row []float32) Token {
	if s.cfg.Temperature <= 0 {
		return argmax(row)
	}
	cand := s.cand[:0]
	for i, l := range row {
		cand = append(cand, candidate{Token(i), float64(l) / s.cfg.Temperature})
	}
	s.cand = cand
	sort.Slice(cand, func(i, j int) bool {
		if cand[i].logit != cand[j].logit {
			return cand[i].logit > cand[j].logit
		}
		return cand[i].tok < cand[j].tok
	})
	if k := s.cfg.TopK; k > 0 && k < len(cand) {
		cand = cand[:k]
	}
	probs := make([]float64, len(cand))
	total := 0.0
	for i, c := range cand {
		probs[i] = math.Exp(c.logit - cand[0].logit)
		total += probs[i]
	}
	n := len(cand)
	if s.cfg.MinP > 0 {
		for n > 1 && probs[n-1] < s.cfg.MinP*probs[0] {
			n--
		}
	}
	if p := s.cfg.TopP; p > 0 && p < 1 {
		sum, target := 0.0, 0.0
		for i := 0; i < n; i++ {
			target += probs[i]
		}
		target *= p
		for i := 0; i < n; i++ {
			sum += probs[i]
			if sum >= target {
				n = i + 1
				break
			}
		}
	}
	total = 0
	for i := 0; i < n; i++ {
		total += probs[i]
	}
	u := s.rng.Float64() * total
	for i := 0; i < n; i++ {
		u -= probs[i]
		if u <= 0 {
			return cand[i].tok
		}
	}
	return cand[n-1].tok
}

// argmax returns the index of the largest logit (the lowest index on ties).
func argmax(row []float32) Token {
	best := 0
	for i, v := range row {
		if v > row[best] {
			best = i
		}
	}
	return Token(best)
}
