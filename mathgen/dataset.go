package mathgen

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"

	"github.com/bpo-dev/bpo/internal/atomicfile"
)

// Config says what Generate makes.
type Config struct {
	Train, Test int    // number of problems in each split
	MinLevel    int    // lowest number of steps (>= 1)
	MaxLevel    int    // highest number of steps (<= 4); levels are drawn uniformly in between
	MaxValue    int    // every intermediate and final result is below this (0: DefaultMaxValue; >= 100)
	Seed        uint64 // same seed, same problems
}

// Validate checks the configuration.
func (c Config) Validate() error {
	if c.Train < 0 || c.Test < 0 {
		return fmt.Errorf("mathgen: split sizes must be >= 0 (train %d, test %d)", c.Train, c.Test)
	}
	if c.MinLevel < MinLevel || c.MaxLevel > MaxLevel || c.MinLevel > c.MaxLevel {
		return fmt.Errorf(
			"mathgen: levels %d-%d, want a range within %d-%d",
			c.MinLevel,
			c.MaxLevel,
			MinLevel,
			MaxLevel,
		)
	}
	if c.MaxValue != 0 && c.MaxValue < minMaxValue {
		return fmt.Errorf(
			"mathgen: max value %d, want 0 (default %d) or >= %d",
			c.MaxValue,
			DefaultMaxValue,
			minMaxValue,
		)
	}
	return nil
}

// Stream ids of the two splits: the test split does not depend on the train size, and a larger train
// split extends a smaller one.
const (
	testStream  = 0x6d61746874657374 // "mathtest"
	trainStream = 0x6d61746874726e20 // "mathtrn "
)

// Generate makes the test split and then the train split. Questions are unique within each split and no
// test question appears in train.
func Generate(c Config) (train, test []Problem, err error) {
	if err := c.Validate(); err != nil {
		return nil, nil, err
	}
	if c.MaxValue == 0 {
		c.MaxValue = DefaultMaxValue
	}
	seen := make(map[string]bool, c.Train+c.Test)
	test, err = split(c, "test", c.Test, rand.New(rand.NewPCG(c.Seed, testStream)), seen)
	if err != nil {
		return nil, nil, err
	}
	train, err = split(c, "train", c.Train, rand.New(rand.NewPCG(c.Seed, trainStream)), seen)
	if err != nil {
		return nil, nil, err
	}
	return train, test, nil
}

// split draws n new problems, skipping questions already in seen (and adding its own).
func split(c Config, name string, n int, rng *rand.Rand, seen map[string]bool) ([]Problem, error) {
	out := make([]Problem, 0, n)
	maxTries := 50*n + 1000
	for tries := 0; len(out) < n; tries++ {
		if tries >= maxTries {
			return nil, fmt.Errorf(
				"mathgen: only %d distinct %s problems of levels %d-%d after %d tries; ask for fewer or widen the levels",
				len(out),
				name,
				c.MinLevel,
				c.MaxLevel,
				tries,
			)
		}
		level := c.MinLevel + rng.IntN(c.MaxLevel-c.MinLevel+1)
		p, err := newProblem(rng, level, c.MaxValue)
		if err != nil {
			return nil, fmt.Errorf("mathgen: %s problem %d: %w", name, len(out), err)
		}
		if seen[p.Question] {
			continue
		}
		seen[p.Question] = true
		p.ID = fmt.Sprintf("%s-%05d", name, len(out))
		out = append(out, p)
	}
	return out, nil
}

// ParseLevels reads a level range such as "1-3" or a single level "2".
func ParseLevels(s string) (lo, hi int, err error) {
	a, b, isRange := strings.Cut(strings.TrimSpace(s), "-")
	if lo, err = strconv.Atoi(strings.TrimSpace(a)); err != nil {
		return 0, 0, fmt.Errorf("levels %q: expected N or LO-HI with integers in %d..%d", s, MinLevel, MaxLevel)
	}
	hi = lo
	if isRange {
		if hi, err = strconv.Atoi(strings.TrimSpace(b)); err != nil {
			return 0, 0, fmt.Errorf("levels %q: expected N or LO-HI with integers in %d..%d", s, MinLevel, MaxLevel)
		}
	}
	if lo < MinLevel || hi > MaxLevel || lo > hi {
		return 0, 0, fmt.Errorf("levels %q: expected N or LO-HI with %d <= LO <= HI <= %d", s, MinLevel, MaxLevel)
	}
	return lo, hi, nil
}

// MarshalJSONL encodes problems one JSON object per line.
func MarshalJSONL(ps []Problem) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	for i, p := range ps {
		if err := enc.Encode(p); err != nil {
			return nil, fmt.Errorf("problem %d (%s): %w", i, p.ID, err)
		}
	}
	return buf.Bytes(), nil
}

// WriteJSONL writes problems to path atomically (a temporary file in the same folder, then a rename).
func WriteJSONL(path string, ps []Problem) error {
	data, err := MarshalJSONL(ps)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return atomicfile.Write(path, data)
}
