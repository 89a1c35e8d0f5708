package align

import (
	"fmt"
	"strconv"
	"strings"
)

// LossParamNames returns the user-facing names of the loss hyper-parameters, as accepted by Set.
// beta comes first.
func LossParamNames() []string {
	return []string{"beta", "label_smoothing", "alpha", "f", "lambda", "gamma", "tau", "divergence", "divergence_alpha", "include_prompt"}
}

// paramKey normalizes a parameter name: lower case, dashes read as underscores.
func paramKey(name string) string {
	return strings.ReplaceAll(strings.ToLower(strings.TrimSpace(name)), "-", "_")
}

// Set assigns one hyper-parameter by its user-facing name (see LossParamNames; dashes are
// accepted for underscores). Range checks happen in NewLoss.
func (p *LossParams) Set(name, value string) error {
	key := paramKey(name)
	switch key {
	case "f":
		p.F = strings.TrimSpace(value)
		return nil
	case "divergence":
		p.Divergence = strings.TrimSpace(value)
		return nil
	case "include_prompt":
		b, err := strconv.ParseBool(strings.TrimSpace(value))
		if err != nil {
			return fmt.Errorf("loss parameter include_prompt: expected true or false, got %q", value)
		}
		p.IncludePrompt = b
		return nil
	}
	var dst *float64
	switch key {
	case "beta":
		dst = &p.Beta
	case "label_smoothing":
		dst = &p.LabelSmoothing
	case "alpha":
		dst = &p.Alpha
	case "lambda":
		dst = &p.Lambda
	case "gamma":
		dst = &p.Gamma
	case "tau":
		dst = &p.Tau
	case "divergence_alpha":
		dst = &p.DivergenceAlpha
	default:
		return fmt.Errorf("unknown loss parameter %q: expected one of %s", name, strings.Join(LossParamNames(), ", "))
	}
	v, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
	if err != nil {
		return fmt.Errorf("loss parameter %s: expected a number, got %q", key, value)
	}
	*dst = v
	return nil
}

// String lists the parameters that are set, e.g. "beta=0.1 alpha=0.3 f=hinge".
func (p LossParams) String() string {
	var parts []string
	add := func(name string, v float64) {
		if v != 0 {
			parts = append(parts, name+"="+strconv.FormatFloat(v, 'g', -1, 64))
		}
	}
	add("beta", p.Beta)
	add("label_smoothing", p.LabelSmoothing)
	add("alpha", p.Alpha)
	if p.F != "" {
		parts = append(parts, "f="+p.F)
	}
	add("lambda", p.Lambda)
	add("gamma", p.Gamma)
	add("tau", p.Tau)
	if p.Divergence != "" {
		parts = append(parts, "divergence="+p.Divergence)
	}
	add("divergence_alpha", p.DivergenceAlpha)
	if p.IncludePrompt {
		parts = append(parts, "include_prompt=true")
	}
	return strings.Join(parts, " ")
}
