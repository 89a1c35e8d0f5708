package llama

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
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
//
// It never sorts the whole vocabulary (26 ms per token at 152k tokens): candidates are bucketed by
// their log-weight below the best one (bucketsPerNat buckets per nat), which orders them up to the
// bucket; only a bucket where top-k, min-p or top-p cuts is sorted exactly. The kept set is the same
// as with a full sort (descending logit, ties by token id); the draw walks it in bucket order.
type sampler struct {
	cfg    Sampling
	rng    *rand.Rand
	weight []float64 // exp((logit - max logit) / T): probability relative to the best token
	bucket []uint16
	order  []int32 // token ids grouped by bucket
}

const (
	sampleBuckets = 1024
	bucketsPerNat = 16 // buckets cover 64 nats; weights below e^-64 share the last bucket
)

func newSampler(cfg Sampling) *sampler {
	return &sampler{cfg: cfg, rng: rand.New(rand.NewPCG(cfg.Seed, 0x9e3779b97f4a7c15))}
}

// sample picks the next token from a logits row.
func (s *sampler) sample(row []float32) Token {
	if s.cfg.Temperature <= 0 {
		return argmax(row)
	}
	kept, total := s.keep(row)
	u := s.rng.Float64() * total
	for _, i := range kept {
		u -= s.weight[i]
		if u <= 0 {
			return Token(i)
		}
	}
	return Token(kept[len(kept)-1])
}

// keep returns the candidates that top-k, min-p and top-p keep (grouped by bucket, best first) and
// their total weight; s.weight holds each token's weight relative to the best one.
func (s *sampler) keep(row []float32) ([]int32, float64) {
	n := len(row)
	invT := 1 / s.cfg.Temperature
	best := row[argmax(row)]
	if cap(s.weight) < n {
		s.weight, s.bucket, s.order = make([]float64, n), make([]uint16, n), make([]int32, n)
	}
	w, bk, order := s.weight[:n], s.bucket[:n], s.order[:n]
	var start [sampleBuckets + 1]int
	var sum [sampleBuckets]float64
	for i, l := range row {
		d := float64(best-l) * invT
		b := sampleBuckets - 1
		if x := d * bucketsPerNat; x < sampleBuckets-1 { // also false for NaN
			b = int(x)
		}
		w[i] = math.Exp(-d)
		bk[i] = uint16(b)
		start[b+1]++
		sum[b] += w[i]
	}
	for b := 1; b <= sampleBuckets; b++ {
		start[b] += start[b-1]
	}
	next := start
	for i := range row {
		b := bk[i]
		order[next[b]] = int32(i)
		next[b]++
	}
	var sorted [sampleBuckets]bool
	byRank := func(a, b int32) int { // descending logit, then ascending token id
		if row[a] != row[b] {
			if row[a] > row[b] {
				return -1
			}
			return 1
		}
		return int(a - b)
	}
	sortBucket := func(b int) {
		if !sorted[b] {
			slices.SortFunc(order[start[b]:start[b+1]], byRank)
			sorted[b] = true
		}
	}
	// order[:end] are the kept candidates; a bucket that end cuts is sorted.
	end := n
	if k := s.cfg.TopK; k > 0 && k < end {
		sortBucket(int(bk[order[k-1]]))
		end = k
	}
	if p := s.cfg.MinP; p > 0 {
		// Keep weights >= MinP (the best token's weight is 1), at least one token. Buckets before
		// cut are all above the threshold, buckets after it all below.
		cut := sampleBuckets - 1
		if x := -math.Log(p) * bucketsPerNat; x < sampleBuckets-1 {
			cut = int(x)
		}
		sortBucket(cut)
		keep := start[cut]
		for keep < start[cut+1] && w[order[keep]] >= p {
			keep++
		}
		end = max(1, min(end, keep))
	}
	// keptSum is the weight of the kept candidates of bucket b.
	keptSum := func(b int) float64 {
		if start[b+1] <= end {
			return sum[b]
		}
		t := 0.0
		for _, i := range order[start[b]:max(start[b], end)] {
			t += w[i]
		}
		return t
	}
	total := func() float64 {
		t := 0.0
		for b := 0; b <= int(bk[order[end-1]]); b++ {
			t += keptSum(b)
		}
		return t
	}
	if p := s.cfg.TopP; p > 0 && p < 1 {
		target, acc := p*total(), 0.0
	buckets:
		for b := 0; b < sampleBuckets && start[b] < end; b++ {
			if bs := keptSum(b); acc+bs < target {
				acc += bs
				continue
			}
			sortBucket(b)
			for pos := start[b]; pos < min(start[b+1], end); pos++ {
				acc += w[order[pos]]
				if acc >= target {
					end = pos + 1
					break buckets
				}
			}
		}
	}
	return order[:end], total()
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
