package ipnn

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"time"

	"github.com/bpo-dev/bpo/internal/atomicfile"
)

// Dataset names accepted by Experiment.
const (
	DatasetMNIST   = "mnist"
	DatasetFashion = "fashion-mnist"
	DatasetToyBits = "toy-bits"
	DatasetNumbers = "mnist-numbers"
)

// Experiment is one training setting, run Runs times with seeds Seed, Seed+1, ...
type Experiment struct {
	Dataset string   `json:"dataset"`
	DataDir string   `json:"-"`
	Kind    Kind     `json:"kind"`
	Split   []int    `json:"split,omitempty"`
	Hidden  []int    `json:"hidden"`
	Init    InitKind `json:"init"`
	Forget  int      `json:"forget"`
	Eps     float64  `json:"eps"`
	Epochs  int      `json:"epochs"`
	Batch   int      `json:"batch"`
	LR      float64  `json:"lr"`
	Seed    uint64   `json:"seed"`
	Runs    int      `json:"runs"`
	// FirstRun numbers the first run (files run-NN.json); runs FirstRun.. use seeds
	// Seed, Seed+1, ... so that a setting can be extended later (default 1).
	FirstRun int `json:"-"`
	// Independence adds the mutual-independence term over all split groups.
	Independence bool `json:"independence,omitempty"`
	// RefClamp stores the observation sums clamped at eps, as the reference code does.
	RefClamp bool `json:"ref_clamp,omitempty"`
	// Toy task: Bits-bit numbers, training repeats, per-bit label sets.
	Bits      int  `json:"bits,omitempty"`
	Repeat    int  `json:"repeat,omitempty"`
	BitLabels bool `json:"bit_labels,omitempty"`
	// SignedBits codes the toy task's input bits as -1/+1 instead of the paper's 0/1.
	SignedBits bool `json:"signed_bits,omitempty"`
	// WeightDecay is Adam's L2 weight decay (PyTorch weight_decay semantics).
	WeightDecay float64 `json:"weight_decay,omitempty"`
	// Number task: Digits images per number, Passes over the training images; Tie shares
	// one observation (P(digit | a)) between all positions instead of one per position.
	Digits int  `json:"digits,omitempty"`
	Passes int  `json:"passes,omitempty"`
	Tie    bool `json:"tie,omitempty"`
	// TrainLimit > 0 trains on the first TrainLimit samples only.
	TrainLimit int `json:"train_limit,omitempty"`
	// Out is the directory for run-NN.json and run-NN.model files.
	Out        string `json:"-"`
	SaveModels bool   `json:"-"`
}

// RunResult is the per-run JSON record.
type RunResult struct {
	Experiment
	Run           int        `json:"run"`
	RunSeed       uint64     `json:"run_seed"`
	LabelSets     []string   `json:"label_sets,omitempty"`
	TrainSize     int        `json:"train_size"`
	TestSize      int        `json:"test_size"`
	Accuracy      float64    `json:"accuracy"`
	Stats         TrainStats `json:"stats"`
	EvalSeconds   float64    `json:"eval_seconds"`
	PeakRSSMiB    float64    `json:"peak_rss_mib"`
	ModelFile     string     `json:"model_file,omitempty"`
	States        [][]byte   `json:"states,omitempty"`         // per group: argmax state of each test sample
	TestLabels    []byte     `json:"test_labels,omitempty"`    // test classes when < 256 classes
	DigitAcc      float64    `json:"digit_accuracy,omitempty"` // number task: per-digit accuracy
	UnseenTest    int        `json:"unseen_test,omitempty"`    // number task: test numbers unseen in training
	DistinctTrain int        `json:"distinct_train,omitempty"`
	// GroupBits (toy task, two-state groups): per split group, the input bit its most
	// probable state follows best on the test set, and the share of test numbers where it does.
	GroupBits []GroupBit `json:"group_bits,omitempty"`
	Classes   int64      `json:"classes"`
	Finished  string     `json:"finished"`
}

// loadData returns the train and test sets of the experiment.
func (e *Experiment) loadData(rng *rand.Rand) (train, test *Dataset, nt *NumberTask, err error) {
	switch e.Dataset {
	case DatasetMNIST, DatasetFashion:
		if train, err = LoadImages(e.Dataset, e.DataDir, true); err != nil {
			return nil, nil, nil, err
		}
		if test, err = LoadImages(e.Dataset, e.DataDir, false); err != nil {
			return nil, nil, nil, err
		}
	case DatasetToyBits:
		if train, test, err = ToyBits(e.Bits, e.Repeat, e.SignedBits); err != nil {
			return nil, nil, nil, err
		}
	case DatasetNumbers:
		tr, err := LoadImages(DatasetMNIST, e.DataDir, true)
		if err != nil {
			return nil, nil, nil, err
		}
		te, err := LoadImages(DatasetMNIST, e.DataDir, false)
		if err != nil {
			return nil, nil, nil, err
		}
		if nt, err = NewNumberTask(tr, te, e.Digits, e.Passes, rng); err != nil {
			return nil, nil, nil, err
		}
		train, test = nt.Train, nt.Test
	default:
		return nil, nil, nil, fmt.Errorf(
			"unknown dataset %q (want %s, %s, %s or %s)",
			e.Dataset,
			DatasetMNIST,
			DatasetFashion,
			DatasetToyBits,
			DatasetNumbers,
		)
	}
	return train.Subset(e.TrainLimit), test, nt, nil
}

// modelConfig derives the model configuration for data with the given class count.
func (e *Experiment) modelConfig(classes int) (ModelConfig, error) {
	cfg := ModelConfig{
		Kind:         e.Kind,
		Hidden:       e.Hidden,
		Init:         e.Init,
		Tiles:        1,
		Classes:      classes,
		SignedInputs: e.SignedBits,
	}
	if e.Kind != KindIPNN {
		return cfg, nil
	}
	split := e.Split
	var sets []LabelSet
	switch e.Dataset {
	case DatasetNumbers:
		// e.Split is the split of one digit image's outputs, repeated for every image.
		per := e.Split
		if len(per) == 0 {
			per = []int{10}
		}
		if _, err := NewSplit(per); err != nil {
			return cfg, err
		}
		cfg.Tiles = e.Digits
		if e.Tie {
			cfg.TieTiles = true
			s, _ := NewSplit(per)
			split = per
			sets = []LabelSet{AllGroups(s, 10)}
			sets[0].Name = "digit"
			break
		}
		split = nil
		for i := 0; i < e.Digits; i++ {
			split = append(split, per...)
		}
		sets = DigitLabelSets(e.Digits, len(per))
	default:
		s, err := NewSplit(split)
		if err != nil {
			return cfg, err
		}
		sets = []LabelSet{AllGroups(s, classes)}
		if e.Dataset == DatasetToyBits && e.BitLabels {
			if len(split) != e.Bits {
				return cfg, fmt.Errorf("per-bit labels need %d two-state groups, split is %v", e.Bits, split)
			}
			for _, m := range split {
				if m != 2 {
					return cfg, fmt.Errorf("per-bit labels need two-state groups, split is %v", split)
				}
			}
			sets = append(sets, BitLabelSets(e.Bits)...)
		}
	}
	cfg.Head = HeadConfig{Split: split, LabelSets: sets, Forget: e.Forget, Eps: e.Eps, RefClamp: e.RefClamp}
	if e.Independence {
		for g := range split {
			cfg.Head.Independence = append(cfg.Head.Independence, g)
		}
	}
	return cfg, nil
}

// Run executes every run of the experiment, writing one JSON (and model) per run into
// e.Out, and returns the results. progress may be nil.
func (e *Experiment) Run(
	ctx context.Context,
	progress func(run, epoch, step, steps int, loss float64),
) ([]RunResult, error) {
	if e.Runs < 1 {
		return nil, fmt.Errorf("runs = %d, want >= 1", e.Runs)
	}
	if e.Out == "" {
		return nil, fmt.Errorf("no output directory")
	}
	if err := os.MkdirAll(e.Out, 0o755); err != nil {
		return nil, fmt.Errorf("create output directory: %w", err)
	}
	train, test, nt, err := e.loadData(rand.New(rand.NewPCG(e.Seed, 0x5eed)))
	if err != nil {
		return nil, err
	}
	var results []RunResult
	first := max(e.FirstRun, 1)
	for r := 0; r < e.Runs; r++ {
		seed := e.Seed + uint64(r)
		rng := rand.New(rand.NewPCG(seed, 0x1bb))
		cfg, err := e.modelConfig(train.Classes)
		if err != nil {
			return results, err
		}
		m, err := NewModel(cfg, train.Dim, rng)
		if err != nil {
			return results, err
		}
		opt := TrainOptions{
			Epochs:        e.Epochs,
			Batch:         e.Batch,
			LR:            e.LR,
			WeightDecay:   e.WeightDecay,
			EvalEachEpoch: e.Dataset != DatasetToyBits,
		}
		if progress != nil {
			opt.Progress = func(ep, s, n int, l float64) { progress(r, ep, s, n, l) }
		}
		st, err := Train(ctx, m, train, test, opt, rng)
		if err != nil {
			return results, fmt.Errorf("run %d: %w", first+r, err)
		}
		t0 := time.Now()
		acc, pred := Evaluate(m, test, 0)
		res := RunResult{Experiment: *e, Run: first + r, RunSeed: seed, TrainSize: train.Len(), TestSize: test.Len(),
			Accuracy: acc, Stats: st, Classes: int64(train.Classes)}
		res.EvalSeconds = time.Since(t0).Seconds()
		for _, ls := range cfg.Head.LabelSets {
			res.LabelSets = append(res.LabelSets, ls.Name)
		}
		keepStates, toy := train.Classes <= 255, e.Dataset == DatasetToyBits
		if cfg.Kind == KindIPNN && (keepStates || toy) {
			states, err := GroupStates(m, test, 0)
			if err != nil {
				return results, err
			}
			if keepStates {
				res.States = states
				res.TestLabels = make([]byte, test.Len())
				for i, y := range test.Y {
					res.TestLabels[i] = byte(y)
				}
			}
			if toy {
				res.GroupBits = groupBits(states, m.Head.Split().Sizes, test.Y, e.Bits)
			}
		}
		if nt != nil {
			res.DigitAcc = digitAccuracy(pred, test.Y, e.Digits)
			res.UnseenTest = nt.UnseenTest
			res.DistinctTrain = nt.DistinctTrain
		}
		base := filepath.Join(e.Out, fmt.Sprintf("run-%02d", first+r))
		if e.SaveModels {
			if err := m.Save(base + ".model"); err != nil {
				return results, err
			}
			res.ModelFile = filepath.Base(base + ".model")
		}
		res.PeakRSSMiB = peakRSSMiB()
		res.Finished = time.Now().UTC().Format(time.RFC3339)
		js, err := json.MarshalIndent(res, "", " ")
		if err != nil {
			return results, fmt.Errorf("encode run %d: %w", first+r, err)
		}
		if err := atomicfile.Write(base+".json", append(js, '\n')); err != nil {
			return results, err
		}
		results = append(results, res)
	}
	return results, nil
}

// digitAccuracy is the fraction of correctly predicted decimal digits.
func digitAccuracy(pred, truth []int64, digits int) float64 {
	ok, n := 0, 0
	for i := range pred {
		a, b := pred[i], truth[i]
		for d := 0; d < digits; d++ {
			if a%10 == b%10 {
				ok++
			}
			a, b, n = a/10, b/10, n+1
		}
	}
	return float64(ok) / float64(max(n, 1))
}

// TestSet loads only the test split of the experiment's dataset (as Run builds it).
func (e *Experiment) TestSet() (*Dataset, error) {
	_, test, _, err := e.loadData(rand.New(rand.NewPCG(e.Seed, 0x5eed)))
	return test, err
}

// GroupBit says which input bit a two-state split group encodes.
type GroupBit struct {
	Bit       int     `json:"bit"`       // bit position, 0 = least significant
	Agreement float64 `json:"agreement"` // share of test numbers where state (or its flip) equals the bit
}

// groupBits finds, for every two-state group (states as from GroupStates, classes y), the
// bit of the class that its argmax state follows best (either polarity). Groups of other
// sizes get Bit -1.
func groupBits(states [][]byte, sizes []int, y []int64, bits int) []GroupBit {
	out := make([]GroupBit, len(states))
	for g, st := range states {
		out[g] = GroupBit{Bit: -1}
		if sizes[g] != 2 {
			continue
		}
		for b := 0; b < bits; b++ {
			same := 0
			for i, s := range st {
				if int64(s) == y[i]>>b&1 {
					same++
				}
			}
			a := float64(same) / float64(len(st))
			a = max(a, 1-a)
			if a > out[g].Agreement {
				out[g] = GroupBit{Bit: b, Agreement: a}
			}
		}
	}
	return out
}

// bitsEncoded counts the distinct bits that some group follows on >= 99% of test numbers.
func bitsEncoded(gb []GroupBit) int {
	seen := map[int]bool{}
	for _, g := range gb {
		if g.Bit >= 0 && g.Agreement >= 0.99 {
			seen[g.Bit] = true
		}
	}
	return len(seen)
}
