package align

import (
	"fmt"
	"slices"
)

// Truncation limits the lengths of a tokenized pair, as TRL's max_prompt_length / max_length /
// truncation_mode do: the prompt is cut to MaxPromptLength first, then both completions to
// MaxLength - len(prompt) (keeping their starts).
type Truncation struct {
	MaxLength       int    // prompt + each completion, in tokens; 0 means no limit
	MaxPromptLength int    // prompt tokens; 0 means no limit
	Mode            string // "keep_end" (default: keep the prompt's end), "keep_start", or "error"
	KeepLeading     int    // leading prompt tokens never cut by keep_end (1 keeps BOS)
}

// TruncationModes lists the accepted modes.
func TruncationModes() []string { return []string{"keep_end", "keep_start", "error"} }

// Apply returns the truncated pair and whether anything was cut. In "error" mode an over-long pair
// is an error instead; so is a pair whose completions become identical once truncated.
func (t Truncation) Apply(p TokenizedPair) (TokenizedPair, bool, error) {
	mode := t.Mode
	if mode == "" {
		mode = "keep_end"
	}
	if !slices.Contains(TruncationModes(), mode) {
		return p, false, fmt.Errorf("unknown truncation mode %q: expected keep_end, keep_start or error", t.Mode)
	}
	if t.MaxLength < 0 || t.MaxPromptLength < 0 || t.KeepLeading < 0 {
		return p, false, fmt.Errorf(
			"truncation limits must be >= 0 (max_length %d, max_prompt_length %d)",
			t.MaxLength,
			t.MaxPromptLength,
		)
	}
	longer := max(len(p.Chosen), len(p.Rejected))
	promptOver := t.MaxPromptLength > 0 && len(p.Prompt) > t.MaxPromptLength
	if mode == "error" {
		if promptOver {
			return p, false, fmt.Errorf(
				"line %d: prompt has %d tokens, max_prompt_length is %d",
				p.Line,
				len(p.Prompt),
				t.MaxPromptLength,
			)
		}
		if t.MaxLength > 0 && len(p.Prompt)+longer > t.MaxLength {
			return p, false, fmt.Errorf(
				"line %d: prompt + completion is %d tokens, max_length is %d",
				p.Line,
				len(p.Prompt)+longer,
				t.MaxLength,
			)
		}
		return p, false, nil
	}
	out := p
	cut := false
	if promptOver {
		cut = true
		if mode == "keep_start" {
			out.Prompt = p.Prompt[:t.MaxPromptLength]
		} else {
			lead := min(t.KeepLeading, t.MaxPromptLength)
			out.Prompt = append(append([]int32(nil), p.Prompt[:lead]...), p.Prompt[len(p.Prompt)-(t.MaxPromptLength-lead):]...)
		}
	}
	if t.MaxLength > 0 && len(out.Prompt)+longer > t.MaxLength {
		room := t.MaxLength - len(out.Prompt)
		if room <= 0 {
			return p, false, fmt.Errorf(
				"line %d: max_length %d leaves no room for the completion after a %d-token prompt",
				p.Line,
				t.MaxLength,
				len(out.Prompt),
			)
		}
		cut = true
		out.Chosen = p.Chosen[:min(room, len(p.Chosen))]
		out.Rejected = p.Rejected[:min(room, len(p.Rejected))]
		if slices.Equal(out.Chosen, out.Rejected) {
			return p, false, fmt.Errorf(
				"line %d: chosen and rejected are identical once truncated to %d tokens (raise max_length)",
				p.Line,
				room,
			)
		}
	}
	return out, cut, nil
}
