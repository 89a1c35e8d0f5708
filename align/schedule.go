package align

import (
	"fmt"
	"math"
	"strings"
)

// Schedule is a learning-rate schedule with linear warmup, following Hugging Face transformers'
// get_{constant,linear,cosine}_schedule_with_warmup exactly: LR(s) is the rate used for the update
// that follows s completed updates (s = 0 for the first one, so the first warmup step has rate 0).
type Schedule struct {
	Kind        string  // "constant", "linear" or "cosine"
	BaseLR      float64 // peak learning rate
	WarmupSteps int     // linear ramp from 0 over this many steps
	TotalSteps  int     // total optimizer steps (decay reaches 0 here); unused by constant
}

// ScheduleKinds lists the accepted schedule kinds.
func ScheduleKinds() []string { return []string{"constant", "linear", "cosine"} }

// NewSchedule validates and returns a schedule.
func NewSchedule(kind string, baseLR float64, warmupSteps, totalSteps int) (Schedule, error) {
	s := Schedule{Kind: strings.ToLower(kind), BaseLR: baseLR, WarmupSteps: warmupSteps, TotalSteps: totalSteps}
	switch s.Kind {
	case "constant", "linear", "cosine":
	default:
		return Schedule{}, fmt.Errorf(
			"unknown lr schedule %q: expected one of %s",
			kind,
			strings.Join(ScheduleKinds(), ", "),
		)
	}
	if !isFinite(baseLR) || baseLR <= 0 {
		return Schedule{}, fmt.Errorf("learning rate must be a finite number > 0, got %v", baseLR)
	}
	if warmupSteps < 0 {
		return Schedule{}, fmt.Errorf("warmup steps must be >= 0, got %d", warmupSteps)
	}
	if s.Kind != "constant" && totalSteps <= 0 {
		return Schedule{}, fmt.Errorf("%s schedule needs total steps > 0, got %d", s.Kind, totalSteps)
	}
	if s.Kind != "constant" && warmupSteps > totalSteps {
		return Schedule{}, fmt.Errorf("warmup steps (%d) exceed total steps (%d)", warmupSteps, totalSteps)
	}
	return s, nil
}

// WarmupStepsFromRatio converts a warmup ratio (e.g. 0.03) into steps as transformers does:
// ceil(ratio · total).
func WarmupStepsFromRatio(ratio float64, totalSteps int) (int, error) {
	if !isFinite(ratio) || ratio < 0 || ratio > 1 {
		return 0, fmt.Errorf("warmup ratio must be in [0, 1], got %v", ratio)
	}
	return int(math.Ceil(ratio * float64(totalSteps))), nil
}

// LR returns the learning rate for the update that follows `step` completed updates.
func (s Schedule) LR(step int) float64 {
	if step < s.WarmupSteps {
		return s.BaseLR * float64(step) / float64(max(1, s.WarmupSteps))
	}
	decay := max(1, s.TotalSteps-s.WarmupSteps)
	progress := float64(step-s.WarmupSteps) / float64(decay)
	switch s.Kind {
	case "linear":
		return s.BaseLR * math.Max(0, float64(s.TotalSteps-step)/float64(decay))
	case "cosine":
		return s.BaseLR * math.Max(0, 0.5*(1+math.Cos(math.Pi*progress)))
	default:
		return s.BaseLR
	}
}
