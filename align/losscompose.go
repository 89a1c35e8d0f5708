package align

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// perPairLoss is a loss that can report every pair's value (all registry losses can); a composed
// loss needs it to apply per-pair weights.
type perPairLoss interface {
	Loss
	perPair(batch []PairLogps) ([]float64, []PairGrad, error)
	isRegularizer() bool
}

// WeightedLoss is one component of a ComposedLoss.
type WeightedLoss struct {
	Loss   Loss
	Weight float64
}

// ComposedLoss is a weighted sum of registry losses, TRL's loss_type=[...] with loss_weights=[...]:
// L = Σ_k w_k·L_k, each L_k the batch mean of its per-pair values. With WPO weighting every pair's
// terms are multiplied by its (gradient-free) weight exp(p̄(y_w) + p̄(y_l)). The rewards and the
// balanced-margin statistics logged are those of the first component that is not sft.
type ComposedLoss struct {
	terms   []WeightedLoss
	wpo     bool
	ldAlpha float64 // LD-DPO's alpha in (0, 1); 0: no length desensitization
	primary int
}

// LossOptions are the settings that apply to a whole (possibly composed) loss, as in TRL.
type LossOptions struct {
	WPO     bool    // WPO weighting (TRL's use_weighting)
	LDAlpha float64 // LD-DPO length desensitization (TRL's ld_alpha) in (0, 1); 0 disables
}

// NewComposedLoss checks the components (registry losses, each at most once, weights finite and
// >= 0 with a positive sum) and returns their weighted sum.
func NewComposedLoss(terms []WeightedLoss, wpo bool) (*ComposedLoss, error) {
	if len(terms) == 0 {
		return nil, errors.New("composed loss: no components")
	}
	seen := map[string]bool{}
	var sum float64
	primary := -1
	for i, t := range terms {
		if _, ok := t.Loss.(perPairLoss); !ok || t.Loss == nil {
			return nil, fmt.Errorf("composed loss: component %d is not a registry loss", i+1)
		}
		if seen[t.Loss.Name()] {
			return nil, fmt.Errorf("composed loss: %s is listed twice", t.Loss.Name())
		}
		seen[t.Loss.Name()] = true
		if !isFinite(t.Weight) || t.Weight < 0 {
			return nil, fmt.Errorf(
				"composed loss: %s: weight must be a finite number >= 0, got %v",
				t.Loss.Name(),
				t.Weight,
			)
		}
		sum += t.Weight
		if primary < 0 && !t.Loss.(perPairLoss).isRegularizer() {
			primary = i
		}
	}
	if sum <= 0 {
		return nil, errors.New("composed loss: the weights sum to 0")
	}
	if primary < 0 {
		primary = 0
	}
	return &ComposedLoss{terms: append([]WeightedLoss(nil), terms...), wpo: wpo, primary: primary}, nil
}

// Name is the spec, e.g. "bpo:1,sft:0.2" (prefixed "wpo:" with WPO weighting).
func (c *ComposedLoss) Name() string {
	parts := make([]string, len(c.terms))
	for i, t := range c.terms {
		parts[i] = t.Loss.Name() + ":" + strconv.FormatFloat(t.Weight, 'g', -1, 64)
	}
	return c.decorate(strings.Join(parts, ","))
}

// decorate prefixes the loss-wide options: "wpo:", "ld0.5:".
func (c *ComposedLoss) decorate(s string) string {
	if c.ldAlpha != 0 {
		s = "ld" + strconv.FormatFloat(c.ldAlpha, 'g', -1, 64) + ":" + s
	}
	if c.wpo {
		s = "wpo:" + s
	}
	return s
}

// Spec describes every component with its parameters, e.g.
// "bpo(beta=0.1 alpha=0.3 f=logistic):1,sft:0.2"; resumed runs must match it.
func (c *ComposedLoss) Spec() string {
	parts := make([]string, len(c.terms))
	for i, t := range c.terms {
		p := t.Loss.Params().String()
		if p != "" {
			p = "(" + p + ")"
		}
		parts[i] = t.Loss.Name() + p + ":" + strconv.FormatFloat(t.Weight, 'g', -1, 64)
	}
	return c.decorate(strings.Join(parts, ","))
}

// NeedsSharedLogps reports whether Compute reads the shared-prefix log-probs (LD-DPO).
func (c *ComposedLoss) NeedsSharedLogps() bool { return c.ldAlpha != 0 }

// needsSharedLogps reports whether a loss reads the *Shared fields of PairLogps.
func needsSharedLogps(l Loss) bool {
	c, ok := l.(*ComposedLoss)
	return ok && c.NeedsSharedLogps()
}

// Components returns the components and their weights.
func (c *ComposedLoss) Components() []WeightedLoss { return append([]WeightedLoss(nil), c.terms...) }

// Params returns the parameters of the component whose rewards are logged.
func (c *ComposedLoss) Params() LossParams { return c.terms[c.primary].Loss.Params() }

// NeedsReference reports whether any component reads the reference log-probs.
func (c *ComposedLoss) NeedsReference() bool {
	for _, t := range c.terms {
		if t.Loss.NeedsReference() {
			return true
		}
	}
	return false
}

// NeedsPromptLogps reports whether any component reads the prompt's log-probs.
func (c *ComposedLoss) NeedsPromptLogps() bool {
	for _, t := range c.terms {
		if needsPromptLogps(t.Loss) {
			return true
		}
	}
	return false
}

// needsPromptLogps reports whether a loss reads PairLogps.PolicyPrompt.
func needsPromptLogps(l Loss) bool {
	p, ok := l.(interface{ NeedsPromptLogps() bool })
	return ok && p.NeedsPromptLogps()
}

// Rewards returns the rewards of the first component that is not sft.
func (c *ComposedLoss) Rewards(p PairLogps) (float64, float64) {
	if c.ldAlpha != 0 {
		if q, err := ldTransform([]PairLogps{p}, c.ldAlpha); err == nil {
			p = q[0]
		}
	}
	return c.terms[c.primary].Loss.Rewards(p)
}

// prepare applies the loss-wide transforms (LD-DPO) to a batch.
func (c *ComposedLoss) prepare(batch []PairLogps) ([]PairLogps, error) {
	if c.ldAlpha == 0 {
		return batch, nil
	}
	return ldTransform(batch, c.ldAlpha)
}

// GapAdaptor returns the logged component's BPO alpha (1 for the other losses).
func (c *ComposedLoss) GapAdaptor() float64 {
	if g, ok := c.terms[c.primary].Loss.(interface{ GapAdaptor() float64 }); ok {
		return g.GapAdaptor()
	}
	return 1
}

// WPOWeight returns WPO's weight of a pair, exp(p̄(y_w) + p̄(y_l)) with p̄ the policy's mean token
// log-prob of a completion; it is at most 1 and carries no gradient.
func WPOWeight(p PairLogps) (float64, error) {
	if p.ChosenTokens <= 0 || p.RejectedTokens <= 0 {
		return 0, fmt.Errorf("WPO weighting needs token counts > 0, got %d and %d", p.ChosenTokens, p.RejectedTokens)
	}
	return math.Min(1, math.Exp(p.PolicyChosen/float64(p.ChosenTokens)+p.PolicyRejected/float64(p.RejectedTokens))), nil
}

// Compute returns Σ_k w_k·mean_pairs(L_k) and its gradient.
func (c *ComposedLoss) Compute(batch []PairLogps) (float64, []PairGrad, error) {
	if len(batch) == 0 {
		return 0, nil, fmt.Errorf("%s: empty batch", c.Name())
	}
	pairW := make([]float64, len(batch))
	for i, p := range batch {
		pairW[i] = 1
		if c.wpo {
			w, err := WPOWeight(p)
			if err != nil {
				return 0, nil, fmt.Errorf("%s: pair %d: %w", c.Name(), i, err)
			}
			pairW[i] = w
		}
	}
	batch, err := c.prepare(batch)
	if err != nil {
		return 0, nil, fmt.Errorf("%s: %w", c.Name(), err)
	}
	n := float64(len(batch))
	grads := make([]PairGrad, len(batch))
	var total float64
	for _, t := range c.terms {
		vals, g, err := t.Loss.(perPairLoss).perPair(batch)
		if err != nil {
			return 0, nil, err
		}
		for i := range batch {
			k := t.Weight * pairW[i] / n
			total += k * vals[i]
			grads[i].Chosen += k * g[i].Chosen
			grads[i].Rejected += k * g[i].Rejected
			grads[i].Prompt += k * g[i].Prompt
		}
	}
	if !isFinite(total) {
		return 0, nil, fmt.Errorf("%s: loss is not finite (%v)", c.Name(), total)
	}
	if c.ldAlpha != 0 {
		grads = ldGrads(grads, c.ldAlpha)
	}
	return total, grads, nil
}

// LossSpecTerm is one component of a loss spec: a registry loss, its weight, and parameters set
// for it alone.
type LossSpecTerm struct {
	Text   string      // the term as written, for messages
	Name   string      // loss name as written
	Weight float64     // 1 when not written
	Params [][2]string // (name, value) pairs in the order written
}

// ParseLossSpec parses a loss spec: comma-separated terms NAME[(PARAM=VALUE,...)][:WEIGHT], e.g.
// "bpo:1,sft:0.2" or "dpo(beta=0.2,label_smoothing=0.1):0.5,sft:0.5". It checks the syntax, that
// every weight is a finite number >= 0, and that names and parameters exist; NewLossFromSpec checks
// the rest.
func ParseLossSpec(spec string) ([]LossSpecTerm, error) {
	fail := func(format string, args ...any) error {
		return fmt.Errorf("loss spec %q: %s", spec, fmt.Sprintf(format, args...))
	}
	parts, err := splitTopLevel(spec)
	if err != nil {
		return nil, fail("%v", err)
	}
	var terms []LossSpecTerm
	for i, raw := range parts {
		text := strings.TrimSpace(raw)
		where := fmt.Sprintf("term %d %q", i+1, text)
		if text == "" {
			return nil, fail("term %d is empty (expected NAME[:WEIGHT])", i+1)
		}
		term := LossSpecTerm{Text: text, Weight: 1}
		body := text
		if j := strings.LastIndex(text, ":"); j >= 0 && j > strings.LastIndex(text, ")") {
			w, err := strconv.ParseFloat(strings.TrimSpace(text[j+1:]), 64)
			if err != nil {
				return nil, fail("%s: weight %q is not a number", where, strings.TrimSpace(text[j+1:]))
			}
			if !isFinite(w) || w < 0 {
				return nil, fail("%s: weight must be a finite number >= 0, got %v", where, w)
			}
			term.Weight, body = w, strings.TrimSpace(text[:j])
		}
		if k := strings.Index(body, "("); k >= 0 {
			if !strings.HasSuffix(body, ")") {
				return nil, fail("%s: expected NAME(PARAM=VALUE,...)", where)
			}
			for _, kv := range strings.Split(body[k+1:len(body)-1], ",") {
				name, value, ok := strings.Cut(kv, "=")
				if !ok || strings.TrimSpace(name) == "" || strings.TrimSpace(value) == "" {
					return nil, fail("%s: parameter %q: expected PARAM=VALUE", where, strings.TrimSpace(kv))
				}
				term.Params = append(term.Params, [2]string{strings.TrimSpace(name), strings.TrimSpace(value)})
			}
			body = strings.TrimSpace(body[:k])
		}
		term.Name = body
		if _, ok := lossSpecs()[canonicalLossName(body)]; !ok {
			return nil, fail("%s: %v", where, unknownLossError(body))
		}
		for _, p := range term.Params {
			var probe LossParams
			if err := probe.Set(p[0], p[1]); err != nil {
				return nil, fail("%s: %v", where, err)
			}
			if !LossUsesParam(body, p[0]) {
				return nil, fail(
					"%s: parameter %s does not apply to loss %s",
					where,
					paramKey(p[0]),
					canonicalLossName(body),
				)
			}
		}
		terms = append(terms, term)
	}
	return terms, nil
}

// splitTopLevel splits s at commas outside parentheses.
func splitTopLevel(s string) ([]string, error) {
	var parts []string
	depth, start := 0, 0
	for i, r := range s {
		switch r {
		case '(':
			depth++
		case ')':
			depth--
			if depth < 0 {
				return nil, fmt.Errorf("unbalanced ')' at byte %d", i)
			}
		case ',':
			if depth == 0 {
				parts = append(parts, s[start:i])
				start = i + 1
			}
		}
	}
	if depth != 0 {
		return nil, errors.New("unbalanced '('")
	}
	return append(parts, s[start:]), nil
}

// NewLossFromSpec builds the loss a spec describes (see ParseLossSpec). Each term starts from its
// loss's defaults; global parameters (the CLI's --beta, --alpha, ...) are applied to every term
// whose loss uses them, and one that no term uses is an error; then the term's own parameters.
// A spec of one term with weight 1 and no WPO weighting returns the plain loss.
func NewLossFromSpec(spec string, global [][2]string, wpo bool) (Loss, error) {
	return NewLossFromSpecWith(spec, global, LossOptions{WPO: wpo})
}

// NewLossFromSpecWith is NewLossFromSpec with every loss-wide option.
func NewLossFromSpecWith(spec string, global [][2]string, opts LossOptions) (Loss, error) {
	if opts.LDAlpha != 0 && !(opts.LDAlpha > 0 && opts.LDAlpha < 1) {
		return nil, fmt.Errorf("ld_alpha must be in (0, 1) (1 would change nothing), got %v", opts.LDAlpha)
	}
	wpo := opts.WPO
	terms, err := ParseLossSpec(spec)
	if err != nil {
		return nil, err
	}
	for _, g := range global {
		var probe LossParams
		if err := probe.Set(g[0], g[1]); err != nil {
			return nil, err
		}
		used := false
		for _, t := range terms {
			used = used || LossUsesParam(t.Name, g[0])
		}
		if !used {
			return nil, fmt.Errorf("parameter %s: no loss in %q uses it", paramKey(g[0]), spec)
		}
	}
	var built []WeightedLoss
	for i, t := range terms {
		params, _ := DefaultLossParams(t.Name)
		for _, g := range global {
			if LossUsesParam(t.Name, g[0]) {
				if err := params.Set(g[0], g[1]); err != nil {
					return nil, err
				}
			}
		}
		for _, p := range t.Params {
			if err := params.Set(p[0], p[1]); err != nil {
				return nil, err
			}
		}
		l, err := NewLoss(t.Name, params)
		if err != nil {
			return nil, fmt.Errorf("loss spec %q: term %d %q: %w", spec, i+1, t.Text, err)
		}
		built = append(built, WeightedLoss{Loss: l, Weight: t.Weight})
	}
	if len(built) == 1 && built[0].Weight == 1 && !wpo && opts.LDAlpha == 0 {
		return built[0].Loss, nil
	}
	c, err := NewComposedLoss(built, wpo)
	if err != nil {
		return nil, fmt.Errorf("loss spec %q: %w", spec, err)
	}
	c.ldAlpha = opts.LDAlpha
	return c, nil
}

// LossSpec returns the full description of a loss for checkpoints and logs: a ComposedLoss's Spec,
// or "NAME(PARAMS)" for a single loss.
func LossSpec(l Loss) string {
	if c, ok := l.(*ComposedLoss); ok {
		return c.Spec()
	}
	return l.Name() + "(" + l.Params().String() + ")"
}
