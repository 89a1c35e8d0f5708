package align

import (
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/bpo-dev/bpo/lora"
)

// llamaBase lists the 2-D projections of a llama-shaped model with dim 64, 4 KV heads of 8 and FFN
// 172 (stories260K's layout), plus tensors that LoRA never targets.
func llamaBase(layers int) []BaseTensor {
	base := []BaseTensor{{"token_embd.weight", 64, 512}, {"output_norm.weight", 64, 1}}
	for l := 0; l < layers; l++ {
		p := fmt.Sprintf("blk.%d.", l)
		base = append(base,
			BaseTensor{p + "attn_norm.weight", 64, 1},
			BaseTensor{p + "ffn_down.weight", 172, 64},
			BaseTensor{p + "attn_q.weight", 64, 64},
			BaseTensor{p + "attn_k.weight", 64, 32},
			BaseTensor{p + "attn_v.weight", 64, 32},
			BaseTensor{p + "attn_output.weight", 64, 64},
			BaseTensor{p + "ffn_gate.weight", 64, 172},
			BaseTensor{p + "ffn_up.weight", 64, 172},
		)
	}
	return base
}

func TestNewLoRA(t *testing.T) {
	tests := []struct {
		name      string
		cfg       LoRAConfig
		wantNames []string
		wantScale float64
	}{
		{"attention q,v", LoRAConfig{Rank: 4, Alpha: 8, Targets: []string{"attn_v", "attn_q"}, Seed: 1},
			[]string{"blk.0.attn_q.weight", "blk.0.attn_v.weight", "blk.1.attn_q.weight", "blk.1.attn_v.weight"}, 2},
		{"ffn_down", LoRAConfig{Rank: 16, Alpha: 16, Targets: []string{"ffn_down"}},
			[]string{"blk.0.ffn_down.weight", "blk.1.ffn_down.weight"}, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l, err := NewLoRA(tc.cfg, llamaBase(2))
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, tt := range l.Tensors {
				names = append(names, tt.Base)
				if len(tt.A) != tc.cfg.Rank*tt.NIn || len(tt.B) != tt.NOut*tc.cfg.Rank {
					t.Errorf("%s: A %d B %d values", tt.Base, len(tt.A), len(tt.B))
				}
				for _, b := range tt.B {
					if b != 0 {
						t.Fatalf("%s: B not zero", tt.Base)
					}
				}
				bound := 1 / math.Sqrt(float64(tt.NIn))
				var sumSq float64
				for _, a := range tt.A {
					if math.Abs(float64(a)) > bound {
						t.Fatalf("%s: A value %v outside ±%v", tt.Base, a, bound)
					}
					sumSq += float64(a) * float64(a)
				}
				// U(-c, c) has variance c²/3
				if v := sumSq / float64(len(tt.A)); math.Abs(v-bound*bound/3) > 0.25*bound*bound/3 {
					t.Errorf("%s: A variance %v, want about %v", tt.Base, v, bound*bound/3)
				}
			}
			if strings.Join(names, ",") != strings.Join(tc.wantNames, ",") {
				t.Errorf("tensors %v, want %v", names, tc.wantNames)
			}
			if l.Scale() != tc.wantScale {
				t.Errorf("Scale() = %v, want %v", l.Scale(), tc.wantScale)
			}
			shapes := l.ParamShapes()
			params := l.Params()
			if len(shapes) != 2*len(names) || shapes[0].Name != names[0]+".lora_a" || shapes[1].Name != names[0]+".lora_b" {
				t.Errorf("ParamShapes = %v", shapes)
			}
			total := 0
			for i, s := range shapes {
				if len(params[i]) != s.Size {
					t.Errorf("param %d has %d values, shape says %d", i, len(params[i]), s.Size)
				}
				total += s.Size
			}
			if total != l.NumParams() {
				t.Errorf("NumParams %d, shapes sum %d", l.NumParams(), total)
			}
			if err := l.Validate(); err != nil {
				t.Error(err)
			}
		})
	}
}

func TestLoRASeeding(t *testing.T) {
	cfg := LoRAConfig{Rank: 2, Alpha: 4, Targets: []string{"attn_q", "attn_k"}, Seed: 42}
	a, _ := NewLoRA(cfg, llamaBase(1))
	b, _ := NewLoRA(cfg, llamaBase(1))
	cfg.Seed = 43
	c, _ := NewLoRA(cfg, llamaBase(1))
	// A tensor's init depends only on seed and name, not on which other targets exist.
	only := LoRAConfig{Rank: 2, Alpha: 4, Targets: []string{"attn_k"}, Seed: 42}
	d, _ := NewLoRA(only, llamaBase(1))
	name := "blk.0.attn_k.weight"
	if fmt.Sprint(a.Tensor(name).A) != fmt.Sprint(b.Tensor(name).A) {
		t.Error("same seed gave different A")
	}
	if fmt.Sprint(a.Tensor(name).A) == fmt.Sprint(c.Tensor(name).A) {
		t.Error("different seeds gave the same A")
	}
	if fmt.Sprint(a.Tensor(name).A) != fmt.Sprint(d.Tensor(name).A) {
		t.Error("A depends on the other targets")
	}
	if fmt.Sprint(a.Tensor(name).A) == fmt.Sprint(a.Tensor("blk.0.attn_q.weight").A[:len(a.Tensor(name).A)]) {
		t.Error("two tensors share their init")
	}
}

func TestLoRAApply(t *testing.T) {
	// A = [[1,2,3],[0,1,0]] (2x3), B = [[1,0],[0,2]] (2x2), alpha 4, r 2 → scale 2.
	tt := &lora.Tensor{Base: "blk.0.attn_q.weight", Rank: 2, NIn: 3, NOut: 2, A: []float32{1, 2, 3, 0, 1, 0}, B: []float32{1, 0, 0, 2}}
	l, err := NewLoRAFromTensors(2, 4, []*lora.Tensor{tt})
	if err != nil {
		t.Fatal(err)
	}
	// x = (1,1,1): A x = (6, 1); B A x = (6, 2); ·2 = (12, 4)
	y, err := tt.Apply([]float32{1, 1, 1}, l.Scale())
	if err != nil {
		t.Fatal(err)
	}
	if y[0] != 12 || y[1] != 4 {
		t.Errorf("Apply = %v, want [12 4]", y)
	}
	if _, err := tt.Apply([]float32{1}, 1); err == nil {
		t.Error("wrong input length accepted")
	}
}

func TestLoRAErrors(t *testing.T) {
	base := llamaBase(1)
	tests := []struct {
		name    string
		cfg     LoRAConfig
		base    []BaseTensor
		wantErr string
	}{
		{"rank", LoRAConfig{Rank: 0, Alpha: 1, Targets: []string{"attn_q"}}, base, "rank must be > 0"},
		{"alpha", LoRAConfig{Rank: 1, Alpha: 0, Targets: []string{"attn_q"}}, base, "alpha must be a finite number > 0"},
		{"target", LoRAConfig{Rank: 1, Alpha: 1, Targets: []string{"q_proj"}}, base, `unknown target "q_proj"`},
		{"none", LoRAConfig{Rank: 1, Alpha: 1}, base, "no target modules"},
		{"no match", LoRAConfig{Rank: 1, Alpha: 1, Targets: []string{"attn_q"}}, base[:2], "no base tensor matches targets attn_q"},
		{"dup", LoRAConfig{Rank: 1, Alpha: 1, Targets: []string{"attn_q"}}, append(base, base[4]), `"blk.0.attn_q.weight" listed twice`},
		{"shape", LoRAConfig{Rank: 1, Alpha: 1, Targets: []string{"attn_q"}}, []BaseTensor{{"blk.0.attn_q.weight", 0, 4}}, "has shape 0x4"},
	}
	for _, tc := range tests {
		if _, err := NewLoRA(tc.cfg, tc.base); err == nil || !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("%s: error = %v, want %q", tc.name, err, tc.wantErr)
		}
	}
	bad := []struct {
		name    string
		tensor  *lora.Tensor
		wantErr string
	}{
		{"a size", &lora.Tensor{Base: "blk.0.attn_q.weight", Rank: 2, NIn: 3, NOut: 2, A: make([]float32, 5), B: make([]float32, 4)}, "lora_a has 5 values, want rank 2 x n_in 3"},
		{"b size", &lora.Tensor{Base: "blk.0.attn_q.weight", Rank: 2, NIn: 3, NOut: 2, A: make([]float32, 6), B: make([]float32, 3)}, "lora_b has 3 values"},
		{"name", &lora.Tensor{Base: "token_embd.weight", Rank: 2, NIn: 3, NOut: 2, A: make([]float32, 6), B: make([]float32, 4)}, "is not a blk.N.<target>.weight projection"},
		{"nan", &lora.Tensor{Base: "blk.0.attn_q.weight", Rank: 2, NIn: 3, NOut: 2, A: []float32{0, 0, float32(math.NaN()), 0, 0, 0}, B: make([]float32, 4)}, "non-finite value at 2"},
	}
	for _, tc := range bad {
		if _, err := NewLoRAFromTensors(2, 2, []*lora.Tensor{tc.tensor}); err == nil || !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("%s: error = %v, want %q", tc.name, err, tc.wantErr)
		}
	}
}
