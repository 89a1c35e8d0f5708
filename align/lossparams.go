package align

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// lossParam is one row of the loss-parameter table: a hyper-parameter, where LossParams keeps it,
// and, per group of losses that use it, the default and the valid values.
type lossParam struct {
	name  string
	usage string                 // what it is, for the CLI flag
	field func(*LossParams) any  // *float64, *string or *bool
	uses  []paramUse             // the losses that use it; a loss appears in one use at most
	check func(LossParams) error // words and rules across parameters, for every loss that uses it
}

// paramUse is a group of losses that share a parameter's default and valid values.
type paramUse struct {
	losses []string
	def    string   // the default as written by users ("" for the zero value)
	valid  numRange // numbers: the valid values (the zero numRange accepts any finite number)
	note   string   // what the parameter means for these losses, in errors and docs ("gap adaptor")
}

// numRange is an interval of valid values; an infinite end is open and never printed.
type numRange struct {
	lo, hi         float64
	loOpen, hiOpen bool
	set            bool
}

// finiteFrom is [lo, ∞) or (lo, ∞).
func finiteFrom(lo float64, open bool) numRange {
	return numRange{lo: lo, hi: math.Inf(1), loOpen: open, hiOpen: true, set: true}
}

// interval is lo..hi with the given open ends.
func interval(lo, hi float64, loOpen, hiOpen bool) numRange {
	return numRange{lo: lo, hi: hi, loOpen: loOpen, hiOpen: hiOpen, set: true}
}

// contains reports whether v is finite and inside the range.
func (r numRange) contains(v float64) bool {
	if !isFinite(v) {
		return false
	}
	if !r.set {
		return true
	}
	return (v > r.lo || (!r.loOpen && v == r.lo)) && (v < r.hi || (!r.hiOpen && v == r.hi))
}

// bounded reports whether both ends are finite (then the docs print the interval).
func (r numRange) bounded() bool { return r.set && isFinite(r.lo) && isFinite(r.hi) }

// String is the interval as written in the docs, e.g. "(0, 1]".
func (r numRange) String() string {
	open, shut := "[", "]"
	if r.loOpen {
		open = "("
	}
	if r.hiOpen {
		shut = ")"
	}
	return open + strconv.FormatFloat(r.lo, 'g', -1, 64) + ", " + strconv.FormatFloat(r.hi, 'g', -1, 64) + shut
}

// requirement says what a value outside the range violates: "must be in (0, 1]", "must be a finite
// number > 0", "must be finite".
func (r numRange) requirement() string {
	switch {
	case !r.set || (math.IsInf(r.lo, -1) && math.IsInf(r.hi, 1)):
		return "must be finite"
	case r.bounded():
		return "must be in " + r.String()
	}
	op := ">="
	if r.loOpen {
		op = ">"
	}
	return "must be a finite number " + op + " " + strconv.FormatFloat(r.lo, 'g', -1, 64)
}

// lossParamTable is the one table of the loss hyper-parameters: names, the losses that use each, their
// defaults and valid values. The registry (lossSpecs), Set, String, validation, the CLI's flags and
// the docs' tables (checked by TestLossDocsMatchTable) all come from it. Its order is the order of
// LossParams.String.
func lossParamTable() []lossParam {
	positive := finiteFrom(0, true)
	// The losses whose temperature beta defaults to 0.1.
	withBeta := []string{"dpo", "ipo", "hinge", "cal-dpo", "dpop", "bpo", "rpo", "robust", "exo_pair", "nca_pair",
		"bco_pair", "sppo_hard", "apo_zero", "apo_down", "discopop", "sigmoid_norm", "aot", "aot_unpaired"}
	// The score-based losses, the ones that accept the f-divergence parameters.
	withDivergence := []string{"dpo", "hinge", "robust", "exo_pair", "nca_pair", "bco_pair", "sppo_hard",
		"apo_zero", "apo_down", "discopop"}
	return []lossParam{
		{name: "beta", usage: "temperature beta", field: func(p *LossParams) any { return &p.Beta }, uses: []paramUse{
			{losses: []string{"simpo"}, def: "2", valid: positive},
			{losses: []string{"orpo"}, def: "0.1", valid: positive, note: "λ in the ORPO paper"},
			{losses: withBeta, def: "0.1", valid: positive},
		}},
		{
			name:  "label_smoothing",
			usage: "label smoothing ε",
			field: func(p *LossParams) any { return &p.LabelSmoothing },
			uses: []paramUse{
				{losses: []string{"dpo", "rpo", "aot", "aot_unpaired"}, def: "0", valid: interval(0, 0.5, false, true)},
				{losses: []string{"robust"}, def: "0.1", valid: interval(0, 0.5, false, true)},
				{
					losses: []string{"exo_pair"},
					def:    "0.001",
					valid:  interval(0, 0.5, true, true),
					note:   "EXO's epsilon",
				},
			},
		},
		{name: "alpha", usage: "alpha", field: func(p *LossParams) any { return &p.Alpha }, uses: []paramUse{
			{losses: []string{"bpo"}, def: "0.3", valid: interval(0, 1, true, false), note: "gap adaptor"},
			{losses: []string{"rpo"}, def: "1", valid: finiteFrom(0, false), note: "NLL weight"},
		}},
		{
			name:  "f",
			usage: "BPO loss family: " + strings.Join(BPOFamilies(), ", "),
			field: func(p *LossParams) any { return &p.F },
			uses:  []paramUse{{losses: []string{"bpo"}, def: "logistic"}},
			check: func(q LossParams) error {
				if _, ok := bpoFamilies()[strings.ToLower(q.F)]; !ok {
					return fmt.Errorf("unknown f %q: expected one of %s", q.F, strings.Join(BPOFamilies(), ", "))
				}
				return nil
			},
		},
		{
			name:  "lambda",
			usage: "DPOP penalty weight",
			field: func(p *LossParams) any { return &p.Lambda },
			uses: []paramUse{
				{losses: []string{"dpop"}, def: "50", valid: finiteFrom(0, false)},
			},
		},
		{
			name:  "gamma",
			usage: "SimPO target reward margin",
			field: func(p *LossParams) any { return &p.Gamma },
			uses: []paramUse{
				{losses: []string{"simpo"}, def: "1"},
			},
		},
		{
			name:  "tau",
			usage: "DiscoPOP mixing temperature",
			field: func(p *LossParams) any { return &p.Tau },
			uses: []paramUse{
				{losses: []string{"discopop"}, def: "0.05", valid: positive},
			},
		},
		{name: "divergence", usage: "f-divergence of the score-based losses: " + strings.Join(Divergences(), ", "),
			field: func(p *LossParams) any { return &p.Divergence },
			uses:  []paramUse{{losses: withDivergence}}, check: validateDivergence},
		{
			name:  "divergence_alpha",
			usage: "alpha of divergence alpha_divergence",
			field: func(p *LossParams) any { return &p.DivergenceAlpha },
			uses:  []paramUse{{losses: withDivergence}},
		},
		{
			name: "include_prompt",
			usage: "ORPO's NLL term covers the prompt tokens too, as TRL and the ORPO authors' code " +
				"(false: the completion tokens only)",
			field: func(p *LossParams) any { return &p.IncludePrompt },
			uses:  []paramUse{{losses: []string{"orpo"}, def: "false"}},
		},
	}
}

// use returns the group of losses of loss that uses p, and whether there is one.
func (p lossParam) use(loss string) (paramUse, bool) {
	for _, u := range p.uses {
		for _, l := range u.losses {
			if l == loss {
				return u, true
			}
		}
	}
	return paramUse{}, false
}

// isSet reports whether q holds a value of p other than the zero value.
func (p lossParam) isSet(q LossParams) bool {
	switch v := p.field(&q).(type) {
	case *float64:
		return *v != 0
	case *string:
		return *v != ""
	case *bool:
		return *v
	}
	return false
}

// format returns q's value of p as Set reads it, "" when it is the zero value.
func (p lossParam) format(q LossParams) string {
	if !p.isSet(q) {
		return ""
	}
	switch v := p.field(&q).(type) {
	case *float64:
		return strconv.FormatFloat(*v, 'g', -1, 64)
	case *string:
		return *v
	case *bool:
		return strconv.FormatBool(*v)
	}
	return ""
}

// validate checks q's value of p for loss: a value set for a loss that does not use it, a number
// outside its range, and the parameter's own rule.
func (p lossParam) validate(loss string, q LossParams) error {
	u, used := p.use(loss)
	if !used {
		if p.isSet(q) {
			return fmt.Errorf("parameter %s does not apply to loss %s", p.name, loss)
		}
		return nil
	}
	if v, ok := p.field(&q).(*float64); ok && (u.valid.set || !isFinite(*v)) && !u.valid.contains(*v) {
		name := p.name
		if u.note != "" {
			name += " (" + u.note + ")"
		}
		return fmt.Errorf("%s %s, got %v", name, u.valid.requirement(), *v)
	}
	if p.check != nil {
		return p.check(q)
	}
	return nil
}

// lossParamByKey returns the table row of a normalized parameter name.
func lossParamByKey(key string) (lossParam, bool) {
	for _, p := range lossParamTable() {
		if p.name == key {
			return p, true
		}
	}
	return lossParam{}, false
}

// LossParamNames returns the user-facing names of the loss hyper-parameters, as accepted by Set.
// beta comes first.
func LossParamNames() []string {
	var names []string
	for _, p := range lossParamTable() {
		names = append(names, p.name)
	}
	return names
}

// LossParamInfo describes one loss hyper-parameter for a command line.
type LossParamInfo struct {
	Name   string // as in loss specs: beta, label_smoothing, ...
	Switch bool   // a true/false parameter: a flag without a value sets it
	Usage  string // what it is, which losses use it, their defaults and valid values
}

// LossParamInfos describes every loss hyper-parameter, in the order of LossParamNames.
func LossParamInfos() []LossParamInfo {
	var infos []LossParamInfo
	for _, p := range lossParamTable() {
		_, isBool := p.field(&LossParams{}).(*bool)
		infos = append(infos, LossParamInfo{Name: p.name, Switch: isBool, Usage: p.usage + "; " + p.usesText()})
	}
	return infos
}

// usesText lists the losses that use p with their defaults and ranges, e.g.
// "simpo: 2; orpo: 0.1; the others: 0.1; not used by sft". A large group that is not the first is
// written as "the others", followed by the losses that do not use p.
func (p lossParam) usesText() string {
	var parts []string
	others := false
	for i, u := range p.uses {
		who := strings.Join(u.losses, ", ")
		if i > 0 && len(u.losses) > 6 {
			who, others = "the others", true
		}
		if d := u.docText(); d != "" {
			who += ": " + d
		} else {
			who = "used by " + who
		}
		parts = append(parts, who)
	}
	if others {
		var unused []string
		for _, l := range LossNames() {
			if _, ok := p.use(l); !ok {
				unused = append(unused, l)
			}
		}
		if len(unused) > 0 {
			parts = append(parts, "not used by "+strings.Join(unused, ", "))
		}
	}
	return strings.Join(parts, "; ")
}

// docText is the default, the valid interval and the note, e.g. "0.3 in (0, 1] (gap adaptor)".
func (u paramUse) docText() string {
	s := u.def
	if u.valid.bounded() {
		s += " in " + u.valid.String()
	}
	if u.note != "" {
		s += " (" + u.note + ")"
	}
	return strings.TrimSpace(s)
}

// lossParamsDoc is a loss's cell in the docs' loss tables: each parameter with a default, e.g.
// "`beta` 0.1, `alpha` 0.3 in (0, 1] (gap adaptor), `f` logistic", or "none".
func lossParamsDoc(loss string) string {
	var parts []string
	for _, p := range lossParamTable() {
		if u, ok := p.use(loss); ok && u.def != "" {
			parts = append(parts, "`"+p.name+"` "+u.docText())
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// lossUses returns the names of the parameters loss uses.
func lossUses(loss string) map[string]bool {
	uses := map[string]bool{}
	for _, p := range lossParamTable() {
		if _, ok := p.use(loss); ok {
			uses[p.name] = true
		}
	}
	return uses
}

// lossesUsing returns the losses that use the named parameter, in the table's order.
func lossesUsing(param string) []string {
	p, _ := lossParamByKey(param)
	var out []string
	for _, u := range p.uses {
		out = append(out, u.losses...)
	}
	return out
}

// defaultLossParamsOf returns the defaults of a registered loss from the table.
func defaultLossParamsOf(loss string) LossParams {
	var q LossParams
	for _, p := range lossParamTable() {
		if u, ok := p.use(loss); ok && u.def != "" {
			if err := q.Set(p.name, u.def); err != nil {
				panic(fmt.Sprintf("loss parameter table: default of %s for %s: %v", p.name, loss, err))
			}
		}
	}
	return q
}

// validateParamsFor checks every parameter of q for loss, in the table's order.
func validateParamsFor(loss string, q LossParams) error {
	for _, p := range lossParamTable() {
		if err := p.validate(loss, q); err != nil {
			return err
		}
	}
	return nil
}

// paramKey normalizes a parameter name: lower case, dashes read as underscores.
func paramKey(name string) string {
	return strings.ReplaceAll(strings.ToLower(strings.TrimSpace(name)), "-", "_")
}

// Set assigns one hyper-parameter by its user-facing name (see LossParamNames; dashes are
// accepted for underscores). Range checks happen in NewLoss.
func (p *LossParams) Set(name, value string) error {
	key := paramKey(name)
	row, ok := lossParamByKey(key)
	if !ok {
		return fmt.Errorf("unknown loss parameter %q: expected one of %s", name, strings.Join(LossParamNames(), ", "))
	}
	switch dst := row.field(p).(type) {
	case *string:
		*dst = strings.TrimSpace(value)
	case *bool:
		b, err := strconv.ParseBool(strings.TrimSpace(value))
		if err != nil {
			return fmt.Errorf("loss parameter %s: expected true or false, got %q", key, value)
		}
		*dst = b
	case *float64:
		v, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
		if err != nil {
			return fmt.Errorf("loss parameter %s: expected a number, got %q", key, value)
		}
		*dst = v
	}
	return nil
}

// String lists the parameters that are set, e.g. "beta=0.1 alpha=0.3 f=hinge".
func (p LossParams) String() string {
	var parts []string
	for _, row := range lossParamTable() {
		if v := row.format(p); v != "" {
			parts = append(parts, row.name+"="+v)
		}
	}
	return strings.Join(parts, " ")
}
