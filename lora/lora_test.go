package lora

import (
	"strings"
	"testing"
)

func TestParseBase(t *testing.T) {
	tests := []struct {
		name   string
		layer  int
		module string
		ok     bool
	}{
		{"blk.0.attn_q.weight", 0, "attn_q", true},
		{"blk.31.ffn_down.weight", 31, "ffn_down", true},
		{"blk.2.attn_norm.weight", 2, "attn_norm", true},
		{"blk.03.attn_q.weight", 0, "", false},
		{"blk.-1.attn_q.weight", 0, "", false},
		{"blk.x.attn_q.weight", 0, "", false},
		{"blk.0.attn_q.bias", 0, "", false},
		{"blk.0.attn_q.lora_a.weight", 0, "", false},
		{"blk.0..weight", 0, "", false},
		{"token_embd.weight", 0, "", false},
		{"output.weight", 0, "", false},
	}
	for _, tc := range tests {
		layer, module, ok := ParseBase(tc.name)
		if layer != tc.layer || module != tc.module || ok != tc.ok {
			t.Errorf("ParseBase(%q) = %d, %q, %v; want %d, %q, %v", tc.name, layer, module, ok, tc.layer, tc.module, tc.ok)
		}
		if ok && BaseName(layer, module) != tc.name {
			t.Errorf("BaseName(%d, %q) = %q, want %q", layer, module, BaseName(layer, module), tc.name)
		}
	}
}

func TestTargets(t *testing.T) {
	for i, m := range Targets() {
		if TargetIndex(m) != i || !IsTarget(BaseName(i, m)) {
			t.Errorf("target %q at %d: index %d, IsTarget %v", m, i, TargetIndex(m), IsTarget(BaseName(i, m)))
		}
	}
	for _, name := range []string{"blk.0.attn_norm.weight", "blk.0.ffn_gate_inp.weight", "output.weight"} {
		if IsTarget(name) {
			t.Errorf("IsTarget(%q) = true", name)
		}
	}
	Targets()[0] = "changed"
	if Targets()[0] != "attn_q" {
		t.Error("Targets returns the package's own slice")
	}
}

func TestValidateAndApply(t *testing.T) {
	// A = [[1,2,3],[0,1,0]] (2x3), B = [[1,0],[0,2]] (2x2); x = (1,1,1): A x = (6, 1), B A x = (6, 2).
	pair := Tensor{Base: "blk.0.attn_q.weight", Rank: 2, NIn: 3, NOut: 2, A: []float32{1, 2, 3, 0, 1, 0}, B: []float32{1, 0, 0, 2}}
	y, err := pair.Apply([]float32{1, 1, 1}, 2)
	if err != nil || len(y) != 2 || y[0] != 12 || y[1] != 4 {
		t.Fatalf("Apply = %v, %v; want [12 4]", y, err)
	}
	if _, err := pair.Apply([]float32{1}, 1); err == nil || !strings.Contains(err.Error(), "input has 1 values, want 3") {
		t.Errorf("short input: %v", err)
	}
	bad := []struct {
		name string
		edit func(*Tensor)
		want string
	}{
		{"zero rank", func(p *Tensor) { p.Rank = 0 }, "rank 0, n_in 3, n_out 2 must be > 0"},
		{"short A", func(p *Tensor) { p.A = p.A[:5] }, "A has 5 values (want 6)"},
		{"short B", func(p *Tensor) { p.B = p.B[:3] }, "B has 3 (want 4)"},
	}
	for _, tc := range bad {
		p := pair
		tc.edit(&p)
		if err := p.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Validate = %v, want %q", tc.name, err, tc.want)
		}
	}
}

// FuzzParseBase: ParseBase never panics, and what it accepts BaseName writes back exactly.
func FuzzParseBase(f *testing.F) {
	for _, s := range []string{"blk.0.attn_q.weight", "blk.12.ffn_up.weight", "blk..weight", "blk.1.a.b.weight", "blk.9999999999999999999999.x.weight"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		layer, module, ok := ParseBase(name)
		if ok && BaseName(layer, module) != name {
			t.Fatalf("ParseBase(%q) = %d, %q, but BaseName gives %q", name, layer, module, BaseName(layer, module))
		}
	})
}
