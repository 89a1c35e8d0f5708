package align

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// PairLogps holds the per-sequence log-probabilities of one preference pair: the sums of the
// completion tokens' log-probs (prompt tokens excluded) under the policy and under the reference
// model, and the number of completion tokens of each side (used by the length-normalized losses
// SimPO, ORPO and the NLL term of RPO).
type PairLogps struct {
	PolicyChosen   float64 // log pi(y_w|x), summed over the chosen completion tokens
	PolicyRejected float64 // log pi(y_l|x)
	RefChosen      float64 // log ref(y_w|x); ignored by reference-free losses
	RefRejected    float64 // log ref(y_l|x)
	ChosenTokens   int     // number of chosen completion tokens
	RejectedTokens int     // number of rejected completion tokens
	// PolicyPrompt is log π of the prompt's tokens after the first (BOS), each given the ones before,
	// and PromptTokens their count; filled only for losses that ask for them (ORPO's include_prompt).
	PolicyPrompt float64
	PromptTokens int
	// The *Shared fields are the log-probs of the first min(|y_w|, |y_l|) tokens of each completion
	// (LD-DPO's shared part); filled only for a loss with length desensitization.
	PolicyChosenShared, PolicyRejectedShared float64
	RefChosenShared, RefRejectedShared       float64
}

// PairGrad is the gradient of the batch loss (the mean over the pairs of a batch) with respect to
// one pair's policy log-probs. The training graph back-propagates
// Chosen·logp_chosen + Rejected·logp_rejected to the trainable tensors.
type PairGrad struct {
	Chosen   float64 // dL/d PolicyChosen
	Rejected float64 // dL/d PolicyRejected
	Prompt   float64 // dL/d PolicyPrompt (0 unless the loss reads the prompt's log-probs)
	// dL/d PolicyChosenShared and dL/d PolicyRejectedShared (0 without length desensitization).
	ChosenShared, RejectedShared float64
}

// Loss is a preference loss. Compute returns the batch loss, the mean of the per-pair losses
// (Cal-DPO's squared terms are batch means as well), and its exact gradient with respect to each
// pair's policy log-probs. It fails on an empty batch and on non-finite or inconsistent inputs.
type Loss interface {
	// Name is the registry name ("dpo", "bpo", ...).
	Name() string
	// Params returns the hyper-parameters in use.
	Params() LossParams
	// NeedsReference reports whether the loss reads RefChosen/RefRejected (false for SimPO and ORPO).
	NeedsReference() bool
	// Compute returns the mean loss over the batch and dL/dlogp per pair.
	Compute(batch []PairLogps) (loss float64, grads []PairGrad, err error)
	// Rewards returns the implicit rewards of one pair as TRL reports them: beta·(policy - ref)
	// for reference-based losses, beta·(policy logp / tokens) for SimPO and ORPO.
	Rewards(p PairLogps) (chosen, rejected float64)
}

// LossParams are the hyper-parameters of every loss, named as users know them. Start from
// DefaultLossParams(name) and override; NewLoss rejects a parameter set to a non-zero value for a
// loss that does not use it.
type LossParams struct {
	Beta           float64 // temperature beta (all losses but sft; ORPO's lambda is called beta as in TRL)
	LabelSmoothing float64 // DPO/RPO/robust/aot label smoothing eps in [0, 0.5); EXO's eps in (0, 0.5)
	Alpha          float64 // BPO gap adaptor in (0, 1]; RPO weight of the chosen NLL (>= 0)
	F              string  // BPO loss family: logistic, hinge, square, exponential, truncated-quadratic, savage
	Lambda         float64 // DPOP penalty weight (>= 0)
	Gamma          float64 // SimPO target reward margin gamma
	Tau            float64 // DiscoPOP temperature of the mixing coefficient (> 0)
	// Divergence is the f-divergence of the score-based losses (f-DPO): reverse_kl (the default, ""),
	// forward_kl, js_divergence or alpha_divergence; DivergenceAlpha is the alpha of alpha_divergence.
	Divergence      string
	DivergenceAlpha float64
	// IncludePrompt makes ORPO's NLL term cover the prompt tokens as well as the chosen completion,
	// as TRL and the ORPO authors' code do; off by default (completion tokens only).
	IncludePrompt bool
}

// lossSpec describes one registered loss; its parameters, their defaults and valid values are in
// lossParamTable.
type lossSpec struct {
	needsRef bool
	lens     tokenCounts // which token counts must be > 0
	// regularizer marks a term that is not a preference loss (sft): in a composed loss the rewards
	// and balanced-margin statistics of the first term that is not a regularizer are logged.
	regularizer bool
	// gapAdaptor returns the alpha of the balanced margin min(a, -alpha·b) logged as
	// bpo/balanced_margin; nil: 1.
	gapAdaptor func(q LossParams) float64
	// Exactly one of pair, score and batch is set. score losses are functions of the (f-divergence
	// transformed) log-ratios a and b and accept the divergence parameters; batch losses couple the
	// pairs of a batch (AOT sorts them).
	pair    pairFunc
	score   scoreFunc
	batch   batchFunc
	rewards func(p PairLogps, q LossParams) (float64, float64)
}

// tokenCounts says which completion token counts a loss divides by.
type tokenCounts int

const (
	anyCounts   tokenCounts = iota // the loss reads no token count
	chosenCount                    // the chosen completion's count must be > 0
	bothCounts                     // both completions' counts must be > 0
)

// pairFunc returns one pair's loss contribution and its derivatives with respect to the pair's
// policy log-probs. Batch-level terms that are batch means decompose into per-pair terms.
type pairFunc func(p PairLogps, q LossParams) (l, dChosen, dRejected float64, err error)

// scoreFunc returns one pair's loss and its derivatives with respect to the pair's scores sa = φ(a)
// and sb = φ(b), φ being the f-divergence's transform of the log-ratios (the identity for reverse KL).
type scoreFunc func(sa, sb float64, q LossParams) (l, dsa, dsb float64)

// batchFunc returns every pair's loss and the derivatives of that loss with respect to all pairs'
// policy log-probs, summed per pair (not divided by the batch size).
type batchFunc func(batch []PairLogps, q LossParams) (l []float64, grads []PairGrad, err error)

// lossAliases maps accepted alternative names to registry names.
var lossAliases = map[string]string{
	"sigmoid":  "dpo",
	"slic":     "hinge",
	"caldpo":   "cal-dpo",
	"cal_dpo":  "cal-dpo",
	"aot_pair": "aot_unpaired", // TRL's name before it was renamed
}

// lossSpecs returns the registry. It is a function, not a package variable, so that no global
// mutable state exists.
func lossSpecs() map[string]lossSpec {
	ref := func(score scoreFunc) lossSpec {
		return lossSpec{needsRef: true, score: score, rewards: refRewards}
	}
	return map[string]lossSpec{
		"dpo":     ref(dpoScore),
		"hinge":   ref(hingeScore),
		"ipo":     {needsRef: true, pair: ipoPair, rewards: refRewards},
		"cal-dpo": {needsRef: true, pair: calDPOPair, rewards: refRewards},
		"dpop":    {needsRef: true, pair: dpopPair, rewards: refRewards},
		"bpo": {needsRef: true, pair: bpoPair, rewards: refRewards,
			gapAdaptor: func(q LossParams) float64 { return q.Alpha }},
		"simpo":        {lens: bothCounts, pair: simpoPair, rewards: lengthNormRewards},
		"orpo":         {lens: bothCounts, pair: orpoPair, rewards: lengthNormRewards},
		"rpo":          {needsRef: true, lens: chosenCount, pair: rpoPair, rewards: refRewards},
		"robust":       ref(robustScore),
		"exo_pair":     ref(exoScore),
		"nca_pair":     ref(ncaScore),
		"bco_pair":     ref(bcoScore),
		"sppo_hard":    ref(sppoHardScore),
		"apo_zero":     ref(apoZeroScore),
		"apo_down":     ref(apoDownScore),
		"discopop":     ref(discopopScore),
		"sigmoid_norm": {needsRef: true, lens: bothCounts, pair: sigmoidNormPair, rewards: refRewards},
		"aot":          {needsRef: true, batch: aotBatch, rewards: refRewards},
		"aot_unpaired": {needsRef: true, batch: aotUnpairedBatch, rewards: refRewards},
		"sft":          {regularizer: true, lens: chosenCount, pair: sftPair, rewards: meanLogpRewards},
	}
}

// LossNames returns the registered loss names, sorted.
func LossNames() []string {
	return slices.Sorted(maps.Keys(lossSpecs()))
}

// canonicalLossName resolves aliases, case, and dashes written for underscores (or the reverse).
func canonicalLossName(name string) string {
	n := strings.ToLower(strings.TrimSpace(name))
	if a, ok := lossAliases[n]; ok {
		return a
	}
	specs := lossSpecs()
	for _, c := range []string{n, strings.ReplaceAll(n, "-", "_"), strings.ReplaceAll(n, "_", "-")} {
		if _, ok := specs[c]; ok {
			return c
		}
		if a, ok := lossAliases[c]; ok {
			return a
		}
	}
	return n
}

// DefaultLossParams returns the default hyper-parameters of the named loss.
func DefaultLossParams(name string) (LossParams, error) {
	canon := canonicalLossName(name)
	if _, ok := lossSpecs()[canon]; !ok {
		return LossParams{}, unknownLossError(name)
	}
	return defaultLossParamsOf(canon), nil
}

// LossUsesParam reports whether the named loss accepts the named hyper-parameter (as in
// LossParamNames); false for an unknown loss or parameter.
func LossUsesParam(loss, param string) bool {
	canon := canonicalLossName(loss)
	if _, ok := lossSpecs()[canon]; !ok {
		return false
	}
	return lossUses(canon)[paramKey(param)]
}

func unknownLossError(name string) error {
	return fmt.Errorf("unknown loss %q: expected one of %s", name, strings.Join(LossNames(), ", "))
}

// NewLoss returns the named loss with the given hyper-parameters after validating them.
func NewLoss(name string, params LossParams) (Loss, error) {
	canon := canonicalLossName(name)
	spec, ok := lossSpecs()[canon]
	if !ok {
		return nil, unknownLossError(name)
	}
	if err := validateParamsFor(canon, params); err != nil {
		return nil, fmt.Errorf("loss %s: %w", canon, err)
	}
	if lossUses(canon)["f"] {
		params.F = strings.ToLower(params.F)
	}
	if spec.score != nil {
		params.Divergence = canonicalDivergence(params.Divergence)
	}
	return &pairLoss{name: canon, spec: spec, params: params}, nil
}

// pairLoss implements Loss for every registered loss: the batch loss is the mean of per-pair terms.
type pairLoss struct {
	name   string
	spec   lossSpec
	params LossParams
}

func (l *pairLoss) Name() string         { return l.name }
func (l *pairLoss) Params() LossParams   { return l.params }
func (l *pairLoss) NeedsReference() bool { return l.spec.needsRef }

// NeedsPromptLogps reports whether Compute reads PolicyPrompt (ORPO with include_prompt).
func (l *pairLoss) NeedsPromptLogps() bool { return l.params.IncludePrompt }

// isRegularizer reports whether the loss is a regularizer term such as sft, not a preference loss.
func (l *pairLoss) isRegularizer() bool { return l.spec.regularizer }

// GapAdaptor returns BPO's alpha, or 1 for the other losses (the plain balanced margin min(a, -b)).
func (l *pairLoss) GapAdaptor() float64 {
	if l.spec.gapAdaptor != nil {
		return l.spec.gapAdaptor(l.params)
	}
	return 1
}

func (l *pairLoss) Rewards(p PairLogps) (chosen, rejected float64) {
	return l.spec.rewards(p, l.params)
}

func (l *pairLoss) Compute(batch []PairLogps) (float64, []PairGrad, error) {
	vals, grads, err := l.perPair(batch)
	if err != nil {
		return 0, nil, err
	}
	n := float64(len(batch))
	var total float64
	for i, v := range vals {
		total += v
		grads[i].Chosen /= n
		grads[i].Rejected /= n
		grads[i].Prompt /= n
	}
	loss := total / n
	if !isFinite(loss) {
		return 0, nil, fmt.Errorf("%s: loss is not finite (%v)", l.name, loss)
	}
	return loss, grads, nil
}

// perPair returns each pair's loss and the derivatives of the summed loss with respect to each
// pair's policy log-probs (the batch mean is taken by Compute).
func (l *pairLoss) perPair(batch []PairLogps) ([]float64, []PairGrad, error) {
	if len(batch) == 0 {
		return nil, nil, errors.New(l.name + ": empty batch")
	}
	for i, p := range batch {
		if err := l.checkPair(p); err != nil {
			return nil, nil, fmt.Errorf("%s: pair %d: %w", l.name, i, err)
		}
	}
	if l.spec.batch != nil {
		vals, grads, err := l.spec.batch(batch, l.params)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", l.name, err)
		}
		return vals, grads, nil
	}
	vals := make([]float64, len(batch))
	grads := make([]PairGrad, len(batch))
	for i, p := range batch {
		var v, dc, dr float64
		if l.spec.score != nil {
			a, b := logRatios(p)
			sa, dsa := divergenceScore(a, l.params)
			sb, dsb := divergenceScore(b, l.params)
			var ga, gb float64
			v, ga, gb = l.spec.score(sa, sb, l.params)
			dc, dr = ga*dsa, gb*dsb
		} else {
			var err error
			if v, dc, dr, err = l.spec.pair(p, l.params); err != nil {
				return nil, nil, fmt.Errorf("%s: pair %d: %w", l.name, i, err)
			}
		}
		var dp float64
		if l.params.IncludePrompt {
			// ORPO's NLL over prompt and chosen tokens: -(prompt + chosen logp)/(their count)
			// replaces the completion-only -logp_w/|y_w| that orpoPair included.
			nc, all := float64(p.ChosenTokens), float64(p.ChosenTokens+p.PromptTokens)
			v += p.PolicyChosen/nc - (p.PolicyChosen+p.PolicyPrompt)/all
			dc += 1/nc - 1/all
			dp = -1 / all
		}
		if !isFinite(v) || !isFinite(dc) || !isFinite(dr) {
			return nil, nil, fmt.Errorf(
				"%s: pair %d: loss or gradient is not finite (%v, %v, %v)",
				l.name,
				i,
				v,
				dc,
				dr,
			)
		}
		vals[i], grads[i] = v, PairGrad{Chosen: dc, Rejected: dr, Prompt: dp}
	}
	return vals, grads, nil
}

func (l *pairLoss) checkPair(p PairLogps) error {
	fields := []struct {
		name string
		v    float64
		use  bool
	}{
		{"policy chosen logp", p.PolicyChosen, true},
		{"policy rejected logp", p.PolicyRejected, true},
		{"reference chosen logp", p.RefChosen, l.spec.needsRef},
		{"reference rejected logp", p.RefRejected, l.spec.needsRef},
	}
	for _, f := range fields {
		if f.use && !isFinite(f.v) {
			return fmt.Errorf("%s is not finite (%v)", f.name, f.v)
		}
	}
	if l.params.IncludePrompt {
		if !isFinite(p.PolicyPrompt) || p.PromptTokens < 0 || (p.PromptTokens == 0 && p.PolicyPrompt != 0) {
			return fmt.Errorf(
				"prompt log-probs %v over %d tokens: expected a finite sum over >= 0 tokens",
				p.PolicyPrompt,
				p.PromptTokens,
			)
		}
	}
	if l.spec.lens != anyCounts {
		if p.ChosenTokens <= 0 {
			return fmt.Errorf("chosen token count must be > 0 for %s, got %d", l.name, p.ChosenTokens)
		}
		if p.RejectedTokens <= 0 && l.spec.lens == bothCounts {
			return fmt.Errorf("rejected token count must be > 0 for %s, got %d", l.name, p.RejectedTokens)
		}
	}
	return nil
}

// refRewards returns beta·(policy - reference) for both sides.
func refRewards(p PairLogps, q LossParams) (float64, float64) {
	return q.Beta * (p.PolicyChosen - p.RefChosen), q.Beta * (p.PolicyRejected - p.RefRejected)
}

// lengthNormRewards returns beta·(policy logp / tokens) for both sides (0 when a count is 0).
func lengthNormRewards(p PairLogps, q LossParams) (float64, float64) {
	var c, r float64
	if p.ChosenTokens > 0 {
		c = q.Beta * p.PolicyChosen / float64(p.ChosenTokens)
	}
	if p.RejectedTokens > 0 {
		r = q.Beta * p.PolicyRejected / float64(p.RejectedTokens)
	}
	return c, r
}

// meanLogpRewards returns each side's mean token log-prob (0 when a count is 0): sft has no beta.
func meanLogpRewards(p PairLogps, _ LossParams) (float64, float64) {
	return lengthNormRewards(p, LossParams{Beta: 1})
}

// logRatios returns a = policy - ref on the chosen side and b on the rejected side.
func logRatios(p PairLogps) (a, b float64) {
	return p.PolicyChosen - p.RefChosen, p.PolicyRejected - p.RefRejected
}
