package peft

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/bpo-dev/bpo/ggml"
	"github.com/bpo-dev/bpo/internal/fixture"
	"github.com/bpo-dev/bpo/llama"
	"github.com/bpo-dev/bpo/lora"
	"github.com/bpo-dev/bpo/nn"
)

// Fixtures of testdata/ (see internal/fixture).
const (
	stories260K = "models/stories260K.gguf" // llama, 8 heads, 4 KV heads (GQA)
	vocabQwen2  = "models/ggml-vocab-qwen2.gguf"
)

// qwen2Model writes a small random qwen2 model with the real Qwen2 tokenizer.
func qwen2Model(t testing.TB) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "qwen2.gguf")
	spec := nn.RandomModelSpec{Arch: "qwen2", VocabFrom: fixture.File(t, vocabQwen2), Layers: 2, Embedding: 64, FeedForward: 128, Heads: 4, HeadsKV: 2, Type: ggml.TypeF32, TiedOutput: true, Seed: 3}
	if err := nn.WriteRandomModel(p, spec); err != nil {
		t.Fatal(err)
	}
	return p
}

// writeAdapter writes a GGUF adapter with random A and B for every projection of every layer of
// model (sorted by name, as training writes them) and returns its path and the base file.
func writeAdapter(t testing.TB, model string, rank int, alpha float32, meta map[string]string) (string, *ggml.GGUFFile) {
	t.Helper()
	f, err := ggml.ReadGGUF(model)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(9, 9))
	layers, _ := f.Uint(f.Arch() + ".block_count")
	var ts []lora.Tensor
	for l := 0; l < int(layers); l++ {
		for _, m := range modules {
			name := fmt.Sprintf("blk.%d.%s.weight", l, m.gguf)
			w, ok := f.Tensor(name)
			if !ok {
				t.Fatalf("%s has no %s", model, name)
			}
			lt := lora.Tensor{Base: name, Rank: rank, NIn: int(w.Shape[0]), NOut: int(w.Shape[1])}
			lt.A = make([]float32, rank*lt.NIn)
			lt.B = make([]float32, lt.NOut*rank)
			for _, v := range [][]float32{lt.A, lt.B} {
				for i := range v {
					v[i] = float32(rng.NormFloat64() * 0.05)
				}
			}
			ts = append(ts, lt)
		}
	}
	slices.SortFunc(ts, func(a, b lora.Tensor) int { return strings.Compare(a.Base, b.Base) })
	path := filepath.Join(t.TempDir(), "adapter.gguf")
	if err := llama.WriteAdapterFile(path, f.Arch(), alpha, ts, meta); err != nil {
		t.Fatal(err)
	}
	return path, f
}

func exportFor(t testing.TB, adapterPath string, base *ggml.GGUFFile, baseName string) string {
	t.Helper()
	ad, err := llama.ReadAdapterFile(adapterPath)
	if err != nil {
		t.Fatal(err)
	}
	heads, err := HeadsOf(base)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "peft")
	if err := Export(ad, dir, ExportOptions{BaseModel: baseName, Heads: heads}); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestRoundTripBitForBit: GGUF -> PEFT -> GGUF gives the same file, byte for byte.
func TestRoundTripBitForBit(t *testing.T) {
	for _, model := range []string{fixture.File(t, stories260K), qwen2Model(t)} {
		meta := map[string]string{"bpo.base_model": filepath.Base(model), "bpo.loss": "bpo", "bpo.base_model_fingerprint": "0123abcd"}
		orig, base := writeAdapter(t, model, 4, 8, meta)
		dir := exportFor(t, orig, base, "")
		back, err := Import(dir, base)
		if err != nil {
			t.Fatal(err)
		}
		again := filepath.Join(t.TempDir(), "again.gguf")
		if err := llama.WriteAdapterFile(again, back.Arch, back.Alpha, back.Tensors, back.Meta); err != nil {
			t.Fatal(err)
		}
		a, _ := os.ReadFile(orig)
		b, _ := os.ReadFile(again)
		if !bytes.Equal(a, b) {
			t.Fatalf("%s: round trip changed the adapter file (%d vs %d bytes)", base.Arch(), len(a), len(b))
		}
		t.Logf("%s: %d-byte adapter identical after PEFT export and import", base.Arch(), len(a))
	}
}

// safetensorsHeader parses a safetensors file's header with the standard library only, as an
// independent check of the writer: 8-byte little-endian length, then a JSON object.
type stEntry struct {
	DType   string   `json:"dtype"`
	Shape   []int    `json:"shape"`
	Offsets [2]int64 `json:"data_offsets"`
}

func readSafetensors(t *testing.T, path string) (map[string]stEntry, map[string]string, []byte) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	n := binary.LittleEndian.Uint64(raw[:8])
	var header map[string]json.RawMessage
	if err := json.Unmarshal(raw[8:8+n], &header); err != nil {
		t.Fatal(err)
	}
	entries := map[string]stEntry{}
	var meta map[string]string
	for k, v := range header {
		if k == "__metadata__" {
			if err := json.Unmarshal(v, &meta); err != nil {
				t.Fatal(err)
			}
			continue
		}
		var e stEntry
		if err := json.Unmarshal(v, &e); err != nil {
			t.Fatal(err)
		}
		entries[k] = e
	}
	return entries, meta, raw[8+n:]
}

func TestExportLayout(t *testing.T) {
	orig, base := writeAdapter(t, fixture.File(t, stories260K), 4, 8, map[string]string{"bpo.base_model": "stories260K.gguf"})
	dir := exportFor(t, orig, base, "karpathy/tinyllamas")
	ad, err := llama.ReadAdapterFile(orig)
	if err != nil {
		t.Fatal(err)
	}
	entries, meta, data := readSafetensors(t, filepath.Join(dir, WeightsFile))
	if meta["format"] != "pt" || meta["bpo.base_model"] != "stories260K.gguf" {
		t.Fatalf("__metadata__ = %v", meta)
	}
	if len(entries) != 2*len(ad.Tensors) {
		t.Fatalf("%d tensors, want %d", len(entries), 2*len(ad.Tensors))
	}
	// Offsets tile the data section exactly.
	var spans [][2]int64
	for _, e := range entries {
		spans = append(spans, e.Offsets)
	}
	slices.SortFunc(spans, func(a, b [2]int64) int { return int(a[0] - b[0]) })
	end := int64(0)
	for _, s := range spans {
		if s[0] != end {
			t.Fatalf("data offsets leave a gap or overlap at %d", end)
		}
		end = s[1]
	}
	if end != int64(len(data)) {
		t.Fatalf("data section has %d bytes, offsets end at %d", len(data), end)
	}
	floats := func(e stEntry) []float32 {
		b := data[e.Offsets[0]:e.Offsets[1]]
		v := make([]float32, len(b)/4)
		for i := range v {
			v[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
		}
		return v
	}
	hfNames := map[string]string{"attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj", "attn_output": "self_attn.o_proj", "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj", "ffn_down": "mlp.down_proj"}
	for _, lt := range ad.Tensors {
		var layer int
		var mod string
		parts := strings.Split(lt.Base, ".")
		fmt.Sscan(parts[1], &layer)
		mod = parts[2]
		prefix := fmt.Sprintf("base_model.model.model.layers.%d.%s", layer, hfNames[mod])
		a, okA := entries[prefix+".lora_A.weight"]
		b, okB := entries[prefix+".lora_B.weight"]
		if !okA || !okB {
			t.Fatalf("no %s.lora_A/lora_B.weight", prefix)
		}
		if a.DType != "F32" || b.DType != "F32" || !slices.Equal(a.Shape, []int{lt.Rank, lt.NIn}) || !slices.Equal(b.Shape, []int{lt.NOut, lt.Rank}) {
			t.Fatalf("%s: A %s %v, B %s %v; want F32 [%d %d] and [%d %d]", prefix, a.DType, a.Shape, b.DType, b.Shape, lt.Rank, lt.NIn, lt.NOut, lt.Rank)
		}
		if !slices.Equal(floats(a), lt.A) {
			t.Fatalf("%s.lora_A differs from the GGUF lora_a", prefix)
		}
		gotB := floats(b)
		if mod == "attn_q" || mod == "attn_k" {
			// Row r of the GGUF lora_b is HF row perm^-1(r): same rows, reordered within each head.
			if slices.Equal(gotB, lt.B) {
				t.Fatalf("%s.lora_B was not permuted", prefix)
			}
			slices.Sort(gotB)
			sorted := slices.Clone(lt.B)
			slices.Sort(sorted)
			if !slices.Equal(gotB, sorted) {
				t.Fatalf("%s.lora_B holds other values than the GGUF lora_b", prefix)
			}
		} else if !slices.Equal(gotB, lt.B) {
			t.Fatalf("%s.lora_B differs from the GGUF lora_b", prefix)
		}
	}
	var cfg map[string]any
	raw, err := os.ReadFile(filepath.Join(dir, ConfigFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &cfg); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"peft_type": "LORA", "task_type": "CAUSAL_LM", "r": 4.0, "lora_alpha": 8.0, "base_model_name_or_path": "karpathy/tinyllamas", "bias": "none", "use_dora": false, "use_rslora": false, "fan_in_fan_out": false}
	for k, v := range want {
		if cfg[k] != v {
			t.Errorf("adapter_config.json %s = %v, want %v", k, cfg[k], v)
		}
	}
	if got := fmt.Sprint(cfg["target_modules"]); got != "[q_proj k_proj v_proj o_proj gate_proj up_proj down_proj]" {
		t.Errorf("target_modules = %s", got)
	}
}

// TestPermutationMatchesRope checks the Q/K row permutation against what it is for: HF's
// rotate-half rope on HF rows must equal llama.cpp's interleaved (LLAMA_ROPE_TYPE_NORM) rope on
// the permuted rows, for every head and position.
func TestPermutationMatchesRope(t *testing.T) {
	const heads, headDim = 3, 8
	rng := rand.New(rand.NewPCG(1, 2))
	q := make([]float32, heads*headDim)
	for i := range q {
		q[i] = float32(rng.NormFloat64())
	}
	theta := func(pos, i int) float64 { return float64(pos) * math.Pow(10000, -2*float64(i)/headDim) }
	ropeHF := func(x []float32, pos int) []float32 {
		out := make([]float32, len(x))
		for h := 0; h < heads; h++ {
			v := x[h*headDim : (h+1)*headDim]
			for i := 0; i < headDim/2; i++ {
				s, c := math.Sincos(theta(pos, i))
				a, b := float64(v[i]), float64(v[i+headDim/2])
				out[h*headDim+i] = float32(a*c - b*s)
				out[h*headDim+i+headDim/2] = float32(b*c + a*s)
			}
		}
		return out
	}
	ropeGGUF := func(x []float32, pos int) []float32 {
		out := make([]float32, len(x))
		for h := 0; h < heads; h++ {
			v := x[h*headDim : (h+1)*headDim]
			for i := 0; i < headDim/2; i++ {
				s, c := math.Sincos(theta(pos, i))
				a, b := float64(v[2*i]), float64(v[2*i+1])
				out[h*headDim+2*i] = float32(a*c - b*s)
				out[h*headDim+2*i+1] = float32(b*c + a*s)
			}
		}
		return out
	}
	for _, pos := range []int{0, 1, 7, 100} {
		want, err := hfToGGUFRows(ropeHF(q, pos), 1, heads)
		if err != nil {
			t.Fatal(err)
		}
		pq, err := hfToGGUFRows(q, 1, heads)
		if err != nil {
			t.Fatal(err)
		}
		got := ropeGGUF(pq, pos)
		for i := range want {
			if math.Abs(float64(got[i]-want[i])) > 1e-5 {
				t.Fatalf("pos %d row %d: rope(permuted) = %v, permuted(HF rope) = %v", pos, i, got[i], want[i])
			}
		}
		back, err := ggufToHFRows(pq, 1, heads)
		if err != nil || !slices.Equal(back, q) {
			t.Fatalf("ggufToHFRows does not invert hfToGGUFRows: %v", err)
		}
	}
	if _, err := hfToGGUFRows(make([]float32, 10), 1, 3); err == nil {
		t.Fatal("10 rows in 3 heads: want an error")
	}
}

func TestImportErrors(t *testing.T) {
	orig, base := writeAdapter(t, fixture.File(t, stories260K), 4, 8, nil)
	good := exportFor(t, orig, base, "")
	qwen := qwen2Model(t)
	qwenBase, err := ggml.ReadGGUF(qwen)
	if err != nil {
		t.Fatal(err)
	}
	// A folder whose config or weights were edited: copy good, then patch.
	patched := func(name string, edit func(cfg map[string]any), weights []byte) string {
		dir := filepath.Join(t.TempDir(), name)
		os.MkdirAll(dir, 0o755)
		raw, _ := os.ReadFile(filepath.Join(good, ConfigFile))
		var cfg map[string]any
		json.Unmarshal(raw, &cfg)
		if edit != nil {
			edit(cfg)
		}
		out, _ := json.Marshal(cfg)
		os.WriteFile(filepath.Join(dir, ConfigFile), out, 0o644)
		if weights == nil {
			weights, _ = os.ReadFile(filepath.Join(good, WeightsFile))
		}
		os.WriteFile(filepath.Join(dir, WeightsFile), weights, 0o644)
		return dir
	}
	renamed := func(from, to string) []byte {
		raw, _ := os.ReadFile(filepath.Join(good, WeightsFile))
		n := binary.LittleEndian.Uint64(raw[:8])
		header := strings.Replace(string(raw[8:8+n]), from, to, 1)
		for len(header)%8 != 0 {
			header += " "
		}
		out := binary.LittleEndian.AppendUint64(nil, uint64(len(header)))
		return append(append(out, header...), raw[8+n:]...)
	}
	cases := []struct {
		name  string
		dir   string
		model *ggml.GGUFFile
		want  error
		msg   string
	}{
		{"unknown target_modules", patched("targets", func(c map[string]any) { c["target_modules"] = []string{"q_proj", "c_attn", "lm_head"} }, nil), base, ErrUnsupported, `unknown target_modules ["c_attn" "lm_head"]`},
		{"unknown tensor module", patched("tensor", nil, renamed("self_attn.q_proj.lora_A", "self_attn.qkv_proj.lora_A")), base, ErrUnsupported, `unknown target module "self_attn.qkv_proj"`},
		{"embedding LoRA", patched("embed", nil, renamed("base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight", "base_model.model.model.embed_tokens.lora_embedding_A")), base, ErrUnsupported, "want names base_model.model.model.layers."},
		{"DoRA", patched("dora", func(c map[string]any) { c["use_dora"] = true }, nil), base, ErrUnsupported, "use_dora"},
		{"rank pattern", patched("pattern", func(c map[string]any) { c["rank_pattern"] = map[string]int{"q_proj": 8} }, nil), base, ErrUnsupported, "rank_pattern"},
		{"rank differs from r", patched("rank", func(c map[string]any) { c["r"] = 8 }, nil), base, llama.ErrAdapterMismatch, "r = 8"},
		{"another model", good, qwenBase, llama.ErrAdapterMismatch, "do not fit"},
		{"not a PEFT folder", t.TempDir(), base, os.ErrNotExist, "is not a PEFT adapter folder"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Import(c.dir, c.model)
			if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.msg) {
				t.Fatalf("got %v, want %v containing %q", err, c.want, c.msg)
			}
			t.Log(err)
		})
	}
}

// TestImportRSLoRA: rsLoRA's alpha/√r scale becomes GGUF's alpha/r.
func TestImportRSLoRA(t *testing.T) {
	orig, base := writeAdapter(t, fixture.File(t, stories260K), 4, 8, nil)
	dir := exportFor(t, orig, base, "")
	raw, _ := os.ReadFile(filepath.Join(dir, ConfigFile))
	var cfg map[string]any
	json.Unmarshal(raw, &cfg)
	cfg["use_rslora"] = true
	out, _ := json.Marshal(cfg)
	os.WriteFile(filepath.Join(dir, ConfigFile), out, 0o644)
	ad, err := Import(dir, base)
	if err != nil {
		t.Fatal(err)
	}
	if want := float32(8 * 2); ad.Alpha != want { // alpha/√r = 8/2 = 4 = want/r
		t.Fatalf("rsLoRA alpha %v, want %v", ad.Alpha, want)
	}
}
