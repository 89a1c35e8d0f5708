package align

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// RefRefresh configures TR-DPO's reference updates: every Every optimizer steps the reference
// becomes ref ← Mix·policy + (1 − Mix)·ref, mixed tensor by tensor in the trainable parameters
// (the LoRA factors; the frozen base is shared), and the reference log-probs of every training and
// eval pair are recomputed with it. Mix 1 is TR-DPO's hard update (the reference is the current
// policy); 0 < Mix < 1 its soft update, starting from the run's initial parameters.
type RefRefresh struct {
	Every int     // steps between refreshes; 0 disables
	Mix   float64 // TR-DPO's alpha in (0, 1]
}

// Enabled reports whether the reference is refreshed at all.
func (r RefRefresh) Enabled() bool { return r.Every > 0 }

// String writes the setting as ParseRefRefresh reads it ("" when disabled).
func (r RefRefresh) String() string {
	switch {
	case !r.Enabled():
		return ""
	case r.Mix == 1:
		return "hard:" + strconv.Itoa(r.Every)
	default:
		return "soft:" + strconv.FormatFloat(r.Mix, 'g', -1, 64) + ":" + strconv.Itoa(r.Every)
	}
}

// ParseRefRefresh reads "hard:N" (the reference becomes the policy every N steps) or
// "soft:ALPHA:N" (ref ← ALPHA·policy + (1−ALPHA)·ref every N steps); "" disables.
func ParseRefRefresh(s string) (RefRefresh, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return RefRefresh{}, nil
	}
	fail := func(msg string) (RefRefresh, error) {
		return RefRefresh{}, fmt.Errorf("reference refresh %q: %s (expected hard:STEPS or soft:ALPHA:STEPS)", s, msg)
	}
	parts := strings.Split(s, ":")
	var r RefRefresh
	var every string
	switch {
	case strings.EqualFold(parts[0], "hard") && len(parts) == 2:
		r.Mix, every = 1, parts[1]
	case strings.EqualFold(parts[0], "soft") && len(parts) == 3:
		m, err := strconv.ParseFloat(parts[1], 64)
		if err != nil || !isFinite(m) || m <= 0 || m > 1 {
			return fail("ALPHA must be a number in (0, 1], got " + strconv.Quote(parts[1]))
		}
		r.Mix, every = m, parts[2]
	default:
		return fail("unknown form")
	}
	n, err := strconv.Atoi(every)
	if err != nil || n <= 0 {
		return fail("STEPS must be an integer > 0, got " + strconv.Quote(every))
	}
	r.Every = n
	return r, nil
}

// DCRAlarm watches the share of degraded chosen responses (dcr_rate) of the training steps: when
// it exceeds Rate for Steps consecutive steps the step's metrics line gets the event "dcr_alarm"
// and, with Stop, the run saves a checkpoint and ends with an error wrapping ErrDCRAlarm.
type DCRAlarm struct {
	Rate  float64 // alarm when dcr_rate > Rate; 0 disables
	Steps int     // consecutive steps over Rate before the alarm (0 means 1)
	Stop  bool    // stop the run instead of only logging
}

// ErrDCRAlarm is wrapped by the error of a run that a DCRAlarm with Stop ended.
var ErrDCRAlarm = errors.New("DCR alarm")

// ParseDCRAlarm reads "RATE[:STEPS][:warn|stop]", e.g. "0.5", "0.5:3:stop"; "" disables.
func ParseDCRAlarm(s string) (DCRAlarm, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return DCRAlarm{}, nil
	}
	fail := func(msg string) (DCRAlarm, error) {
		return DCRAlarm{}, fmt.Errorf("DCR alarm %q: %s (expected RATE[:STEPS][:warn|stop])", s, msg)
	}
	parts := strings.Split(s, ":")
	if len(parts) > 3 {
		return fail("too many parts")
	}
	rate, err := strconv.ParseFloat(parts[0], 64)
	if err != nil || !isFinite(rate) || rate <= 0 || rate >= 1 {
		return fail("RATE must be a number in (0, 1), got " + strconv.Quote(parts[0]))
	}
	a := DCRAlarm{Rate: rate, Steps: 1}
	for _, p := range parts[1:] {
		switch strings.ToLower(p) {
		case "warn":
			a.Stop = false
		case "stop":
			a.Stop = true
		default:
			n, err := strconv.Atoi(p)
			if err != nil || n <= 0 {
				return fail("STEPS must be an integer > 0, got " + strconv.Quote(p))
			}
			a.Steps = n
		}
	}
	return a, nil
}

// String writes the setting as ParseDCRAlarm reads it ("" when disabled).
func (a DCRAlarm) String() string {
	if a.Rate == 0 {
		return ""
	}
	mode := "warn"
	if a.Stop {
		mode = "stop"
	}
	return strconv.FormatFloat(a.Rate, 'g', -1, 64) + ":" + strconv.Itoa(max(a.Steps, 1)) + ":" + mode
}

// forwardAll returns the current policy's log-prob sums of every pair, micro-batch by micro-batch,
// with the shared-prefix sums when the loss reads them (LD-DPO).
func (t *Trainer) forwardAll(ctx context.Context, pairs []TokenizedPair) ([]RefLogps, error) {
	out, err := t.forwardSums(ctx, pairs)
	if err != nil || !needsSharedLogps(t.cfg.Loss) {
		return out, err
	}
	shared, err := t.forwardSums(ctx, SharedPrefixPairs(pairs))
	if err != nil {
		return nil, fmt.Errorf("shared prefixes: %w", err)
	}
	for i := range out {
		out[i].ChosenShared, out[i].RejectedShared = shared[i].Chosen, shared[i].Rejected
	}
	return out, nil
}

// forwardSums returns the current policy's completion log-prob sums of every pair.
func (t *Trainer) forwardSums(ctx context.Context, pairs []TokenizedPair) ([]RefLogps, error) {
	out := make([]RefLogps, 0, len(pairs))
	for lo := 0; lo < len(pairs); lo += t.cfg.MicroBatch {
		hi := min(lo+t.cfg.MicroBatch, len(pairs))
		c, r, err := t.policy.Forward(ctx, pairs[lo:hi])
		if err != nil {
			return nil, err
		}
		if len(c) != hi-lo || len(r) != hi-lo {
			return nil, fmt.Errorf("policy returned %d/%d log-probs for %d pairs", len(c), len(r), hi-lo)
		}
		for i := range c {
			if !isFinite(c[i]) || !isFinite(r[i]) {
				return nil, fmt.Errorf("pair %d: log-probs are not finite (%v, %v)", lo+i, c[i], r[i])
			}
			out = append(out, RefLogps{Chosen: c[i], Rejected: r[i]})
		}
	}
	return out, nil
}

// refreshReference applies TR-DPO's update and recomputes the reference log-probs.
func (t *Trainer) refreshReference(ctx context.Context) error {
	params := t.policy.Params()
	mix := t.cfg.RefRefresh.Mix
	if mix < 1 {
		backup := make([][]float32, len(params))
		for i, p := range params {
			backup[i] = append([]float32(nil), p...)
			for j, v := range p {
				t.refParams[i][j] = float32(mix*float64(v) + (1-mix)*float64(t.refParams[i][j]))
			}
			copy(p, t.refParams[i])
		}
		defer func() {
			for i, p := range params {
				copy(p, backup[i])
			}
		}()
	}
	train, err := t.forwardAll(ctx, t.train)
	if err != nil {
		return fmt.Errorf("reference refresh after step %d: %w", t.step, err)
	}
	eval, err := t.forwardAll(ctx, t.eval)
	if err != nil {
		return fmt.Errorf("reference refresh after step %d: eval: %w", t.step, err)
	}
	t.trainRef, t.evalRef, t.refreshed = train, eval, true
	return nil
}

// Files a checkpoint holds once the reference was refreshed.
const (
	refreshTrainFile  = "reference-train.bin"
	refreshEvalFile   = "reference-eval.bin"
	refreshParamsFile = "reference-params.bin"
	// LD-DPO's shared-prefix sums, stored as the chosen and rejected values of a reference cache
	refreshTrainSharedFile = "reference-train-shared.bin"
	refreshEvalSharedFile  = "reference-eval-shared.bin"
	refreshCacheKey        = "tr-dpo reference refresh"
)

// saveRefreshed writes the refreshed reference (log-probs, and the soft update's parameters) into
// a checkpoint directory.
func (t *Trainer) saveRefreshed(dir string) error {
	if !t.refreshed {
		return nil
	}
	if err := SaveRefCache(filepath.Join(dir, refreshTrainFile), refreshCacheKey, t.trainRef); err != nil {
		return err
	}
	if err := SaveRefCache(filepath.Join(dir, refreshEvalFile), refreshCacheKey, t.evalRef); err != nil {
		return err
	}
	if needsSharedLogps(t.cfg.Loss) {
		if err := SaveRefCache(filepath.Join(dir, refreshTrainSharedFile), refreshCacheKey, sharedOf(t.trainRef)); err != nil {
			return err
		}
		if err := SaveRefCache(filepath.Join(dir, refreshEvalSharedFile), refreshCacheKey, sharedOf(t.evalRef)); err != nil {
			return err
		}
	}
	if t.cfg.RefRefresh.Mix < 1 {
		return saveParamsFile(filepath.Join(dir, refreshParamsFile), t.refParams)
	}
	return nil
}

// loadRefreshed restores what saveRefreshed wrote, if the checkpoint has it.
func (t *Trainer) loadRefreshed(dir string) error {
	train, err := LoadRefCache(filepath.Join(dir, refreshTrainFile), refreshCacheKey, len(t.train))
	if errors.Is(err, os.ErrNotExist) {
		return nil // no refresh before this checkpoint
	}
	if err != nil {
		return err
	}
	eval, err := LoadRefCache(filepath.Join(dir, refreshEvalFile), refreshCacheKey, len(t.eval))
	if err != nil {
		return err
	}
	if needsSharedLogps(t.cfg.Loss) {
		for _, f := range []struct {
			file string
			refs []RefLogps
		}{{refreshTrainSharedFile, train}, {refreshEvalSharedFile, eval}} {
			shared, err := LoadRefCache(filepath.Join(dir, f.file), refreshCacheKey, len(f.refs))
			if err != nil {
				return err
			}
			for i := range f.refs {
				f.refs[i].ChosenShared, f.refs[i].RejectedShared = shared[i].Chosen, shared[i].Rejected
			}
		}
	}
	if t.cfg.RefRefresh.Mix < 1 {
		if err := loadParamsFile(filepath.Join(dir, refreshParamsFile), t.refParams); err != nil {
			return err
		}
	}
	t.trainRef, t.evalRef, t.refreshed = train, eval, true
	return nil
}

// Parameter file layout (little endian): magic "BPOPARM1" | n u32 | per tensor: size u64 |
// [size]f32 | payload length u64 | crc32c u32.
const paramsMagic = "BPOPARM1"

func saveParamsFile(path string, params [][]float32) error {
	return writeSummed(path, func(sw *stateWriter) {
		sw.bytes([]byte(paramsMagic))
		sw.u32(uint32(len(params)))
		for _, p := range params {
			sw.u64(uint64(len(p)))
			sw.f32s(p)
		}
	})
}

// loadParamsFile reads a file written by saveParamsFile into dst, whose shapes it must match.
func loadParamsFile(path string, dst [][]float32) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("reference parameters: %w", err)
	}
	fail := func(format string, args ...any) error {
		return fmt.Errorf("reference parameters %s: %s", path, fmt.Sprintf(format, args...))
	}
	if len(data) < len(paramsMagic)+stateTrailer || string(data[:len(paramsMagic)]) != paramsMagic {
		return fail("not a bpo parameter file (bad magic or too short)")
	}
	payload, err := summedPayload(data)
	if err != nil {
		return fail("%v", err)
	}
	r := &stateReader{b: payload, pos: len(paramsMagic)}
	if n := int(r.u32()); r.err == nil && n != len(dst) {
		return fail("%d tensors, the run trains %d", n, len(dst))
	}
	for i := range dst {
		n := r.u64()
		if r.err == nil && n != uint64(len(dst[i])) {
			return fail("tensor %d has %d values, want %d", i, n, len(dst[i]))
		}
		v := r.f32s(len(dst[i]))
		if r.err != nil {
			return fail("%v", r.err)
		}
		copy(dst[i], v)
	}
	if r.remaining() != 0 {
		return fail("%d trailing bytes", r.remaining())
	}
	return nil
}

// sharedOf returns the shared-prefix sums of refs as plain chosen/rejected values.
func sharedOf(refs []RefLogps) []RefLogps {
	out := make([]RefLogps, len(refs))
	for i, r := range refs {
		out[i] = RefLogps{Chosen: r.ChosenShared, Rejected: r.RejectedShared}
	}
	return out
}
