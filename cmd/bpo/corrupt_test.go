package main

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bpo-dev/bpo/ggml"
	"github.com/bpo-dev/bpo/internal/ggufcorrupt"
	"github.com/bpo-dev/bpo/llama"
	"github.com/bpo-dev/bpo/lora"
)

// corruptText is the text the corpus scores with `bpo logprobs`.
const corruptText = "Once upon a time, there was a little girl."

// writeTestAdapter writes a small LoRA adapter for cliStories(t) (rank 2 on three weights) to dir.
func writeTestAdapter(t *testing.T, dir string) string {
	t.Helper()
	rng := rand.New(rand.NewPCG(5, 6))
	var tensors []lora.Tensor
	for _, w := range []struct {
		name      string
		nIn, nOut int
	}{{"blk.0.attn_q.weight", 64, 64}, {"blk.1.attn_v.weight", 64, 32}, {"blk.2.ffn_up.weight", 64, 172}} {
		lt := lora.Tensor{Base: w.name, Rank: 2, NIn: w.nIn, NOut: w.nOut, A: make([]float32, 2*w.nIn), B: make([]float32, 2*w.nOut)}
		for i := range lt.A {
			lt.A[i] = float32(rng.NormFloat64() * 0.1)
		}
		for i := range lt.B {
			lt.B[i] = float32(rng.NormFloat64() * 0.1)
		}
		tensors = append(tensors, lt)
	}
	path := filepath.Join(dir, "adapter.gguf")
	if err := llama.WriteAdapterFile(path, "llama", 4, tensors, map[string]string{"bpo.note": "corpus fixture"}); err != nil {
		t.Fatal(err)
	}
	return path
}

// parseFile reads and parses a GGUF fixture.
func parseFile(t *testing.T, path string) ([]byte, *ggml.GGUFFile) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	f, err := ggml.ParseGGUF(path, bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	return data, f
}

// fieldAt returns the layout field of kind owned by owner.
func fieldAt(t *testing.T, f *ggml.GGUFFile, kind, owner string) ggml.GGUFField {
	t.Helper()
	for _, fl := range f.Layout {
		if fl.Kind == kind && fl.Owner == owner {
			return fl
		}
	}
	t.Fatalf("%s has no %s field for %q", f.Path, kind, owner)
	return ggml.GGUFField{}
}

// corpusOutcome runs the file through `info` and `logprobs` (as a model) or `logprobs --adapter`
// (as an adapter) in-process. It fails the test when a command succeeds with non-finite log-probs
// or takes too long; it returns the first error, nil when every command accepted the file.
func corpusOutcome(t *testing.T, name, path string, asAdapter bool) error {
	t.Helper()
	var runs [][]string
	if asAdapter {
		runs = [][]string{{"logprobs", "--model", cliStories(t), "--adapter", path, "--threads", "1", "--json", "--text", corruptText}}
	} else {
		runs = [][]string{{"info", path}, {"logprobs", "--model", path, "--threads", "1", "--json", "--text", corruptText}}
	}
	var first error
	for _, args := range runs {
		start := time.Now()
		out, err := runLlamaCLI(t, args...)
		if d := time.Since(start); d > 20*time.Second {
			t.Errorf("%s: %s took %v (a hang?)", name, args[0], d)
		}
		if err != nil {
			if first == nil {
				first = err
			}
			continue
		}
		if args[0] == "logprobs" {
			var got logprobsOutput
			if jerr := json.Unmarshal([]byte(out), &got); jerr != nil {
				t.Errorf("%s: logprobs printed %q: %v", name, out, jerr)
				continue
			}
			for _, lp := range got.LogProbs {
				if math.IsNaN(lp) || math.IsInf(lp, 0) || lp > 0 {
					t.Errorf("%s: logprobs accepted the file and printed log-prob %v", name, lp)
				}
			}
		}
	}
	return first
}

// TestCorruptFilesCorpus derives well over 1,000 corrupted models and adapters from the fixtures
// (every header field kind with boundary values, truncations, byte flips, tensor data) and runs each
// through the real info, logprobs and --adapter paths: every one must end in a clean error or a
// finite result, never a crash (which would kill this test binary) or a hang.
func TestCorruptFilesCorpus(t *testing.T) {
	dir := t.TempDir()
	adapterPath := writeTestAdapter(t, dir)
	type source struct {
		path      string
		asAdapter bool
		perKind   int
		flips     int
	}
	total, refused := 0, 0
	kinds := map[string]int{}
	for _, src := range []source{{cliStories(t), false, 5, 80}, {adapterPath, true, 6, 120}} {
		data, f := parseFile(t, src.path)
		muts := ggufcorrupt.Generate(f, int64(len(data)), src.perKind, src.flips, 11)
		variant := filepath.Join(dir, "variant.gguf")
		for _, m := range muts {
			if err := os.WriteFile(variant, m.Apply(data), 0o644); err != nil {
				t.Fatal(err)
			}
			total++
			kinds[m.Kind]++
			if err := corpusOutcome(t, filepath.Base(src.path)+": "+m.Name, variant, src.asAdapter); err != nil {
				refused++
			}
		}
	}
	t.Logf("%d corrupted files (%d refused with an error, %d accepted with finite results); per field kind: %v", total, refused, total-refused, kinds)
	if total < 1000 {
		t.Fatalf("corpus has %d files, want >= 1000", total)
	}
}

// TestCorruptFileRegressions are the shapes that crashed ggml or llama.cpp (SIGABRT, SIGFPE,
// std::bad_alloc, std::length_error) or gave silent wrong results before the Go reader validated
// files: each must now be refused with an error naming the problem.
func TestCorruptFileRegressions(t *testing.T) {
	dir := t.TempDir()
	adapterPath := writeTestAdapter(t, dir)
	model, mf := parseFile(t, cliStories(t))
	adapter, af := parseFile(t, adapterPath)
	f32 := func(v float32) []byte { return binary.LittleEndian.AppendUint32(nil, math.Float32bits(v)) }
	u32 := func(v uint32) []byte { return binary.LittleEndian.AppendUint32(nil, v) }
	u64 := func(v uint64) []byte { return binary.LittleEndian.AppendUint64(nil, v) }
	at := func(data []byte, fl ggml.GGUFField, b []byte) []byte {
		out := bytes.Clone(data)
		copy(out[fl.Offset:], b)
		return out
	}
	const eps = "llama.attention.layer_norm_rms_epsilon"
	firstA := af.Tensors[0].Name
	cases := []struct {
		name      string
		data      []byte
		asAdapter bool
		want      string
	}{
		{"metadata value type changed to string (bad_alloc)", at(model, fieldAt(t, mf, "value_type", "llama.context_length"), u32(8)), false, "string_length"},
		{"metadata value type changed to array (bad_alloc)", at(model, fieldAt(t, mf, "value_type", "llama.embedding_length"), u32(9)), false, "array"},
		{"negative rms_eps (GGML_ASSERT)", at(model, fieldAt(t, mf, "value", eps), f32(-1e-5)), false, eps},
		{"rms_eps = inf (uniform log-probs)", at(model, fieldAt(t, mf, "value", eps), f32(float32(math.Inf(1)))), false, "finite"},
		{"rms_eps = NaN", at(model, fieldAt(t, mf, "value", eps), f32(float32(math.NaN()))), false, "finite"},
		{"zero head count (division by zero)", at(model, fieldAt(t, mf, "value", "llama.attention.head_count"), u32(0)), false, "head_count"},
		{"model tensor with a zero dimension (SIGFPE)", at(model, fieldAt(t, mf, "dim", "blk.0.attn_q.weight"), u64(0)), false, "dimension"},
		{"alignment not a power of 2", at(model, fieldAt(t, mf, "key", "llama.block_count"), []byte("general.alignment")), false, "general.alignment"},
		{"adapter tensor with a zero dimension (SIGFPE)", at(adapter, fieldAt(t, af, "dim", firstA), u64(0)), true, "dimension"},
		{"adapter string length near the maximum (length_error)", at(adapter, fieldAt(t, af, "string_length", "general.type"), u64(math.MaxUint64-1)), true, "string length"},
		{"adapter key length near the maximum (length_error)", at(adapter, fieldAt(t, af, "key_length", "adapter.type"), u64(math.MaxInt64)), true, "string length"},
		{"adapter alpha = inf (NaN log-probs)", at(adapter, fieldAt(t, af, "value", "adapter.lora.alpha"), f32(float32(math.Inf(1)))), true, "finite"},
		{"adapter alpha of type uint32 (GGML_ASSERT)", at(adapter, fieldAt(t, af, "value_type", "adapter.lora.alpha"), u32(4)), true, "adapter.lora.alpha"},
		{"adapter tensor data NaN", at(adapter, fieldAt(t, af, "tensor_data", firstA), f32(float32(math.NaN()))), true, "finite"},
		{"adapter array count near the maximum (bad_alloc)", at(adapter, fieldAt(t, af, "tensor_count", ""), u64(math.MaxUint64/2)), true, "tensors cannot fit"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "bad.gguf")
			if err := os.WriteFile(path, tc.data, 0o644); err != nil {
				t.Fatal(err)
			}
			err := corpusOutcome(t, tc.name, path, tc.asAdapter)
			if err == nil {
				t.Fatalf("accepted")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not mention %q", err, tc.want)
			}
			t.Log(err)
		})
	}
}
