package main

import (
	"fmt"
	"math"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/bpo-dev/bpo/align"
)

// lossParamFlags are the flags that set a loss hyper-parameter for every component that uses it,
// one per row of align's parameter table: --beta, --label-smoothing, ..., --include-prompt.
func lossParamFlags() []cli.Flag {
	var flags []cli.Flag
	for _, p := range align.LossParamInfos() {
		name := lossParamFlag(p.Name)
		if p.Switch {
			flags = append(flags, &cli.BoolFlag{Name: name, Usage: p.Usage})
		} else {
			flags = append(flags, &cli.StringFlag{Name: name, Usage: p.Usage})
		}
	}
	return flags
}

// lossParamFlag is the flag name of a loss parameter: label_smoothing is --label-smoothing.
func lossParamFlag(param string) string { return strings.ReplaceAll(param, "_", "-") }

// trainOptions are the preference-specific settings of `bpo train`, all checked before any work.
type trainOptions struct {
	loss         align.Loss
	ldAlpha      float64
	dcrThreshold float64
	alarm        align.DCRAlarm
	refresh      align.RefRefresh
}

// trainOptionsFromFlags builds the loss from --loss and the parameter flags and reads the DCR and
// reference-refresh settings; every error names the flag and the offending part.
func trainOptionsFromFlags(c *cli.Context) (trainOptions, error) {
	var o trainOptions
	var global [][2]string
	for _, p := range align.LossParamInfos() {
		name := lossParamFlag(p.Name)
		v := c.String(name)
		if p.Switch {
			v = map[bool]string{true: "true"}[c.Bool(name)]
		}
		if v == "" {
			continue
		}
		var probe align.LossParams
		if err := probe.Set(name, v); err != nil {
			return o, fmt.Errorf("--%s: %w", name, err)
		}
		global = append(global, [2]string{name, v})
	}
	if _, err := align.ParseLossSpec(c.String("loss")); err != nil {
		return o, fmt.Errorf("--loss: %w", err)
	}
	o.ldAlpha = c.Float64("ld-alpha")
	if o.ldAlpha != 0 && !(o.ldAlpha > 0 && o.ldAlpha < 1) {
		return o, fmt.Errorf("--ld-alpha must be in (0, 1) (0 turns it off), got %v", o.ldAlpha)
	}
	loss, err := align.NewLossFromSpecWith(
		c.String("loss"),
		global,
		align.LossOptions{WPO: c.Bool("use-weighting"), LDAlpha: o.ldAlpha},
	)
	if err != nil {
		// "parameter label_smoothing: no loss in ... uses it" names a flag.
		if rest, ok := strings.CutPrefix(err.Error(), "parameter "); ok {
			name, why, _ := strings.Cut(rest, ":")
			return o, fmt.Errorf("--%s:%s", strings.ReplaceAll(name, "_", "-"), why)
		}
		return o, fmt.Errorf("--loss: %w", err)
	}
	o.loss = loss
	o.dcrThreshold = c.Float64("dcr-threshold")
	if math.IsNaN(o.dcrThreshold) || math.IsInf(o.dcrThreshold, 0) || o.dcrThreshold < 0 {
		return o, fmt.Errorf("--dcr-threshold must be a finite number >= 0, got %v", o.dcrThreshold)
	}
	if o.dcrThreshold == 0 {
		o.dcrThreshold = math.SmallestNonzeroFloat64 // "strictly below zero"; 0 would mean the default
	}
	if o.alarm, err = align.ParseDCRAlarm(c.String("dcr-alarm")); err != nil {
		return o, fmt.Errorf("--dcr-alarm: %w", err)
	}
	if o.refresh, err = align.ParseRefRefresh(c.String("ref-refresh")); err != nil {
		return o, fmt.Errorf("--ref-refresh: %w", err)
	}
	if o.refresh.Enabled() {
		if !loss.NeedsReference() {
			return o, fmt.Errorf("--ref-refresh: loss %s uses no reference model", loss.Name())
		}
		if o.refresh.Mix < 1 && c.String("init-adapter") != "" {
			return o, fmt.Errorf(
				"--ref-refresh soft: the first reference is the base model, which --init-adapter's weights do not represent; use hard:N",
			)
		}
	}
	return o, nil
}

// eventText explains a metrics event for the terminal.
func eventText(e string) string {
	parts := strings.Split(e, ",")
	for i, p := range parts {
		switch p {
		case "ref_refresh":
			parts[i] = "reference refreshed (TR-DPO)"
		case "dcr_alarm":
			parts[i] = "DCR alarm: the share of degraded chosen responses is high"
		}
	}
	return strings.Join(parts, "; ")
}
