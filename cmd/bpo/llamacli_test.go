package main

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/bpo-dev/bpo/internal/fixture"
	"github.com/bpo-dev/bpo/llama"
	"github.com/bpo-dev/bpo/lora"
)

// Fixtures of the repository's testdata/ folder.
func cliStories(t testing.TB) string    { return fixture.File(t, "models/stories260K.gguf") }
func cliVocabQwen2(t testing.TB) string { return fixture.File(t, "models/ggml-vocab-qwen2.gguf") }
func cliVocabSPM(t testing.TB) string   { return fixture.File(t, "models/ggml-vocab-llama-spm.gguf") }
func cliNotGGUF(t testing.TB) string    { return fixture.File(t, "models/ggml-vocab-qwen2.gguf.inp") }

// runLlamaCLI runs the bpo app in-process with args (without the program name) and returns stdout.
func runLlamaCLI(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	app := newApp()
	app.Writer = &out
	app.ErrWriter = &errOut
	err := app.Run(append([]string{"bpo"}, args...))
	return out.String(), err
}

func TestInfoCommand(t *testing.T) {
	cases := []struct {
		name string
		args []string
		want []string
	}{
		{"stories text", []string{"info", cliStories(t)}, []string{"arch:            llama", "layers:          5", "vocab size:      512", "embedding:       64", "heads:           8", "kv heads:        4", "file type:       f32"}},
		{"vocab-only file", []string{"info", cliVocabQwen2(t)}, []string{"arch:            qwen2", "none (vocabulary-only file)", "vocab size:      151936", "vocab type:      bpe"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, err := runLlamaCLI(t, tc.args...)
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
		})
	}
	out, err := runLlamaCLI(t, "info", "--json", cliStories(t))
	if err != nil {
		t.Fatal(err)
	}
	var info llama.ModelInfo
	if err := json.Unmarshal([]byte(out), &info); err != nil {
		t.Fatalf("info --json: %v\n%s", err, out)
	}
	if info.Arch != "llama" || info.Layers != 5 || info.VocabSize != 512 || info.HeadsKV != 4 || info.ContextLength != 2048 || !info.AddBOS {
		t.Fatalf("info --json: %+v", info)
	}
}

func TestTokenizeCommand(t *testing.T) {
	cases := []struct {
		name       string
		args       []string
		wantTokens []llama.Token
		wantPieces []string
	}{
		{"spm with BOS", []string{"--model", cliStories(t), "--text", "Once upon a time"}, []llama.Token{1, 403, 407, 261, 378}, []string{"<s>", " Once", " upon", " a", " time"}},
		{"spm no special", []string{"--model", cliStories(t), "--no-special", "--text", "Once upon a time"}, []llama.Token{403, 407, 261, 378}, []string{" Once", " upon", " a", " time"}},
		{"qwen2 parse special", []string{"--model", cliVocabQwen2(t), "--parse-special", "--text", "<|im_start|>user"}, []llama.Token{151644, 872}, []string{"<|im_start|>", "user"}},
		{"empty text", []string{"--model", cliVocabQwen2(t), "--text", ""}, []llama.Token{}, []string{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, err := runLlamaCLI(t, append([]string{"tokenize", "--json"}, tc.args...)...)
			if err != nil {
				t.Fatal(err)
			}
			var got struct {
				Tokens []llama.Token `json:"tokens"`
				Pieces []string      `json:"pieces"`
			}
			if err := json.Unmarshal([]byte(out), &got); err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			if got.Tokens == nil || !equalSlices(got.Tokens, tc.wantTokens) || !equalSlices(got.Pieces, tc.wantPieces) {
				t.Fatalf("got %v %q, want %v %q", got.Tokens, got.Pieces, tc.wantTokens, tc.wantPieces)
			}
			// The plain-text form lists the same ids.
			text, err := runLlamaCLI(t, append([]string{"tokenize"}, tc.args...)...)
			if err != nil {
				t.Fatal(err)
			}
			if lines := strings.Count(text, "\n"); lines != len(tc.wantTokens)+1 {
				t.Fatalf("plain output has %d lines, want %d:\n%s", lines, len(tc.wantTokens)+1, text)
			}
		})
	}
}

func equalSlices[T comparable](a, b []T) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// referenceLogProbs scores toks with the bridge directly.
func referenceLogProbs(t *testing.T, toks []llama.Token) []float64 {
	t.Helper()
	m, err := llama.LoadModel(cliStories(t), llama.ModelOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	ctx, err := llama.NewContext(m, llama.ContextOptions{NCtx: 256, NSeq: 2, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer ctx.Close()
	lps, err := ctx.TokenLogProbs(context.Background(), toks)
	if err != nil {
		t.Fatal(err)
	}
	return lps
}

func TestLogprobsJSON(t *testing.T) {
	const text = "Once upon a time, there was a little girl named Lily. She loved to play outside."
	cases := []struct {
		name string
		args []string
		// prompt is the text whose tokens are not scored.
		prompt string
	}{
		{"text", []string{"--text", text}, ""},
		{"prompt and completion", []string{"--prompt", "Once upon a time, there was", "--completion", " a little girl named Lily. She loved to play outside."}, "Once upon a time, there was"},
	}
	m, err := llama.LoadModel(cliStories(t), llama.ModelOptions{VocabOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	want, err := m.Tokenize(text, true, false)
	if err != nil {
		t.Fatal(err)
	}
	ref := referenceLogProbs(t, want)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// The index of the first scored token: after BOS, or after the prompt's own tokens.
			scored := 1
			if tc.prompt != "" {
				p, err := m.Tokenize(tc.prompt, true, false)
				if err != nil || !equalSlices(p, want[:len(p)]) {
					t.Fatalf("prompt tokens %v are not a prefix of %v (%v)", p, want, err)
				}
				scored = len(p)
			}
			out, err := runLlamaCLI(t, append([]string{"logprobs", "--model", cliStories(t), "--threads", "1", "--json"}, tc.args...)...)
			if err != nil {
				t.Fatal(err)
			}
			// Exactly three keys, in this order.
			var raw map[string]json.RawMessage
			if err := json.Unmarshal([]byte(out), &raw); err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			if len(raw) != 3 || raw["tokens"] == nil || raw["logprobs"] == nil || raw["sum"] == nil || !strings.HasPrefix(out, `{"tokens":[`) {
				t.Fatalf("want exactly {tokens, logprobs, sum}, got %s", out)
			}
			var got logprobsOutput
			if err := json.Unmarshal([]byte(out), &got); err != nil {
				t.Fatal(err)
			}
			if !equalSlices(got.Tokens, want) || got.Tokens[0] != 1 {
				t.Fatalf("tokens %v, want %v (with BOS 1)", got.Tokens, want)
			}
			if len(got.LogProbs) != len(want)-scored {
				t.Fatalf("%d logprobs for %d tokens, want %d", len(got.LogProbs), len(want), len(want)-scored)
			}
			sum := 0.0
			for i, lp := range got.LogProbs {
				if r := ref[scored-1+i]; math.Abs(lp-r) > 1e-4 || lp > 0 {
					t.Errorf("logprob of token %d: %v, Context.TokenLogProbs gives %v", scored+i, lp, r)
				}
				sum += lp
			}
			if math.Abs(sum-got.Sum) > 1e-9 {
				t.Fatalf("sum %v, logprobs add up to %v", got.Sum, sum)
			}
		})
	}
	// The table form shows the same sum.
	out, err := runLlamaCLI(t, "logprobs", "--model", cliStories(t), "--threads", "1", "--text", text)
	if err != nil {
		t.Fatal(err)
	}
	refSum := 0.0
	for _, r := range ref {
		refSum += r
	}
	if wantLine := "sum " + strings.TrimSpace(formatFloat6(refSum)); !strings.Contains(out, wantLine) {
		t.Fatalf("table lacks %q:\n%s", wantLine, out)
	}
}

func formatFloat6(v float64) string {
	b, _ := json.Marshal(math.Round(v*1e6) / 1e6)
	s := string(b)
	if i := strings.IndexByte(s, '.'); i >= 0 {
		for len(s)-i-1 < 6 {
			s += "0"
		}
	}
	return s
}

func TestGenerateCommand(t *testing.T) {
	base := []string{"generate", "--model", cliStories(t), "--threads", "1", "--prompt", "Once upon a time", "--temperature", "0", "--max-tokens", "24"}
	streamed, err := runLlamaCLI(t, base...)
	if err != nil {
		t.Fatal(err)
	}
	if len(strings.TrimSpace(streamed)) == 0 {
		t.Fatal("greedy generation printed nothing")
	}
	out, err := runLlamaCLI(t, append(base, "--json", "--n", "3")...)
	if err != nil {
		t.Fatal(err)
	}
	var res []llama.GenResult
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if len(res) != 3 {
		t.Fatalf("%d results, want 3", len(res))
	}
	for i, r := range res {
		// Greedy: every parallel sample equals the streamed single sample.
		if r.Text+"\n" != streamed || len(r.Tokens) != 24 || r.StopReason != llama.StopLength {
			t.Fatalf("sample %d: %q (%d tokens, %s), streamed %q", i, r.Text, len(r.Tokens), r.StopReason, streamed)
		}
	}
	// A stop string cuts the streamed text exactly as the bridge cuts the result.
	stop := strings.Fields(res[0].Text)[3]
	cut, err := runLlamaCLI(t, append(base, "--stop", stop)...)
	if err != nil {
		t.Fatal(err)
	}
	if want := res[0].Text[:strings.Index(res[0].Text, stop)] + "\n"; cut != want {
		t.Fatalf("with --stop %q printed %q, want %q", stop, cut, want)
	}
	// Sampling with the same seed is reproducible; several samples print one block each.
	sampled := append(base[:len(base):len(base)], "--temperature", "1", "--seed", "5", "--n", "2")
	a, err := runLlamaCLI(t, sampled...)
	if err != nil {
		t.Fatal(err)
	}
	b, err := runLlamaCLI(t, sampled...)
	if err != nil {
		t.Fatal(err)
	}
	if a != b || strings.Count(a, "=== sample") != 2 {
		t.Fatalf("sampled runs differ or lack sample headers:\n%s\n---\n%s", a, b)
	}
}

func TestModelRandomAndQuantize(t *testing.T) {
	dir := t.TempDir()
	f32 := filepath.Join(dir, "r.gguf")
	q8 := filepath.Join(dir, "r-q8.gguf")
	math := filepath.Join(dir, "math.gguf")
	q3 := filepath.Join(dir, "qwen3.gguf")
	g3 := filepath.Join(dir, "gemma3.gguf")
	steps := []struct {
		args []string
		want []string
	}{
		{[]string{"model", "random", "--arch", "llama3", "--vocab-from", cliVocabSPM(t), "--layers", "2", "--embedding", "64", "--ff", "96", "--heads", "4", "--heads-kv", "2", "--out", f32}, []string{"wrote " + f32, "llama, 2 layers, embedding 64"}},
		{[]string{"info", f32}, []string{"layers:          2", "kv heads:        2", "vocab size:      32000", "file type:       f32", "rope:            freq_base 500000"}},
		{[]string{"model", "quantize", "--type", "q8_0", "--threads", "1", f32, q8}, []string{"wrote " + q8}},
		{[]string{"info", q8}, []string{"file type:       q8_0"}},
		{[]string{"generate", "--model", q8, "--threads", "1", "--prompt", "Hello", "--max-tokens", "4", "--temperature", "0", "--json"}, []string{`"stop_reason"`}},
		{[]string{"model", "random", "--vocab", "math", "--layers", "1", "--embedding", "32", "--ff", "64", "--heads", "2", "--out", math}, []string{"wrote " + math}},
		{[]string{"model", "random", "--arch", "qwen3", "--vocab-from", cliVocabSPM(t), "--layers", "2", "--embedding", "64", "--ff", "96", "--heads", "4", "--heads-kv", "2", "--head-dim", "32", "--tied-output", "--out", q3}, []string{"wrote " + q3, "qwen3, 2 layers, embedding 64"}},
		{[]string{"generate", "--model", q3, "--threads", "1", "--prompt", "Hello", "--max-tokens", "4", "--temperature", "0", "--json"}, []string{`"stop_reason"`}},
		{[]string{"model", "random", "--arch", "gemma3", "--vocab-from", cliVocabSPM(t), "--layers", "6", "--embedding", "64", "--ff", "96", "--heads", "4", "--heads-kv", "2", "--head-dim", "32", "--sliding-window", "4", "--tied-output", "--out", g3}, []string{"wrote " + g3, "gemma3, 6 layers, embedding 64"}},
		{[]string{"generate", "--model", g3, "--threads", "1", "--prompt", "Hello", "--max-tokens", "4", "--temperature", "0", "--json"}, []string{`"stop_reason"`}},
		{[]string{"info", math}, []string{"vocab type:      spm", "chat template:   \"{% for message in messages %}", "bos/eos/eot:     1 / 3 /"}},
		{[]string{"tokenize", "--model", math, "--parse-special", "--json", "--text", "<|im_start|>user 12"}, []string{`"pieces":["<s>","<|im_start|>",`, `"1","2"]`}},
	}
	for _, s := range steps {
		out, err := runLlamaCLI(t, s.args...)
		if err != nil {
			t.Fatalf("bpo %s: %v", strings.Join(s.args, " "), err)
		}
		for _, w := range s.want {
			if !strings.Contains(out, w) {
				t.Fatalf("bpo %s: output lacks %q:\n%s", strings.Join(s.args, " "), w, out)
			}
		}
	}
}

func TestLlamaCommandErrors(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "no-such-model.gguf")
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"info missing file", []string{"info", missing}, "no-such-model.gguf: no such file"},
		{"info not gguf", []string{"info", cliNotGGUF(t)}, "not a GGUF file"},
		{"info no argument", []string{"info"}, "exactly one MODEL.gguf"},
		{"tokenize missing file", []string{"tokenize", "--model", missing, "--text", "x"}, "no such file"},
		{"logprobs missing file", []string{"logprobs", "--model", missing, "--text", "a b c"}, "no such file"},
		{"logprobs text and prompt", []string{"logprobs", "--model", cliStories(t), "--text", "a", "--prompt", "b"}, "not both"},
		{"logprobs nothing to score", []string{"logprobs", "--model", cliStories(t), "--prompt", "b"}, "give --text, or both"},
		{"logprobs one token", []string{"logprobs", "--model", cliStories(t), "--threads", "1", "--text", ""}, "need at least 2"},
		{"logprobs missing adapter", []string{"logprobs", "--model", cliStories(t), "--threads", "1", "--text", "a b", "--adapter", missing + ":0.5"}, "--adapter " + missing + ":0.5"},
		{"logprobs model is vocab only", []string{"logprobs", "--model", cliVocabQwen2(t), "--text", "a b"}, "no tensors"},
		{"generate missing file", []string{"generate", "--model", missing, "--prompt", "x"}, "no such file"},
		{"generate prompt and chat", []string{"generate", "--model", cliStories(t), "--prompt", "x", "--chat", "y"}, "exactly one of --prompt and --chat"},
		{"generate no chat template", []string{"generate", "--model", cliStories(t), "--threads", "1", "--chat", "hi"}, "no tokenizer.chat_template"},
		{"generate bad top-p", []string{"generate", "--model", cliStories(t), "--threads", "1", "--prompt", "x", "--top-p", "2"}, "top_p 2"},
		{"generate context too small", []string{"generate", "--model", cliStories(t), "--threads", "1", "--prompt", "x", "--max-tokens", "300", "--ctx", "256"}, "context overflow"},
		{"model random no vocab", []string{"model", "random", "--out", filepath.Join(t.TempDir(), "x.gguf")}, "--vocab-from"},
		{"model random two vocabs", []string{"model", "random", "--vocab", "math", "--vocab-from", cliVocabSPM(t), "--out", filepath.Join(t.TempDir(), "x.gguf")}, "not both"},
		{"model random unknown vocab", []string{"model", "random", "--vocab", "greek", "--out", filepath.Join(t.TempDir(), "x.gguf")}, `--vocab "greek"`},
		{"model random bad arch", []string{"model", "random", "--arch", "gpt2", "--vocab-from", cliVocabSPM(t), "--out", filepath.Join(t.TempDir(), "x.gguf")}, `arch "gpt2"`},
		{"model random head-dim for llama", []string{"model", "random", "--head-dim", "32", "--vocab-from", cliVocabSPM(t), "--out", filepath.Join(t.TempDir(), "x.gguf")}, "head_dim is not for llama"},
		{"model random window for llama", []string{"model", "random", "--sliding-window", "4", "--vocab-from", cliVocabSPM(t), "--out", filepath.Join(t.TempDir(), "x.gguf")}, "sliding_window is not for llama"},
		{"model random bad type", []string{"model", "random", "--type", "q9", "--vocab-from", cliVocabSPM(t), "--out", filepath.Join(t.TempDir(), "x.gguf")}, `unknown tensor type "q9"`},
		{"model quantize missing", []string{"model", "quantize", missing, filepath.Join(t.TempDir(), "y.gguf")}, "no such file"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := runLlamaCLI(t, tc.args...)
			if err == nil {
				t.Fatalf("no error, want one containing %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not contain %q", err, tc.want)
			}
		})
	}
	if _, err := os.Stat(missing); !os.IsNotExist(err) {
		t.Fatalf("a failed command created %s", missing)
	}
}

func TestParseAdapterSpec(t *testing.T) {
	cases := []struct {
		in    string
		path  string
		scale float32
		err   bool
	}{
		{"a.gguf", "a.gguf", 1, false},
		{"a.gguf:0.5", "a.gguf", 0.5, false},
		{"dir:x/a.gguf", "dir:x/a.gguf", 1, false},
		{"dir:x/a.gguf:-2", "dir:x/a.gguf", -2, false},
		{":3", ":3", 1, false},
		{"", "", 0, true},
	}
	for _, tc := range cases {
		path, scale, err := parseAdapterSpec(tc.in)
		if (err != nil) != tc.err || path != tc.path || scale != tc.scale {
			t.Errorf("parseAdapterSpec(%q) = %q, %v, %v; want %q, %v, error %v", tc.in, path, scale, err, tc.path, tc.scale, tc.err)
		}
	}
}

func FuzzParseAdapterSpec(f *testing.F) {
	for _, s := range []string{"a.gguf", "a.gguf:0.5", "x:y:z", ":", "a:NaN", "a:1e40"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		path, scale, err := parseAdapterSpec(s)
		if err != nil {
			// Only an empty spec and a NaN/Inf scale suffix are errors.
			i := strings.LastIndexByte(s, ':')
			v, perr := strconv.ParseFloat(s[i+1:], 32)
			if s != "" && !(i > 0 && perr == nil && (math.IsNaN(v) || math.IsInf(v, 0))) {
				t.Fatalf("error for %q: %v", s, err)
			}
			return
		}
		if path == "" || !strings.HasPrefix(s, path) {
			t.Fatalf("%q: path %q is not a non-empty prefix", s, path)
		}
		if path == s {
			if scale != 1 {
				t.Fatalf("%q: no scale suffix but scale %v", s, scale)
			}
			return
		}
		if s[len(path)] != ':' {
			t.Fatalf("%q: path %q is not followed by ':'", s, path)
		}
		back, err := strconv.ParseFloat(s[len(path)+1:], 32)
		if err != nil || (float32(back) != scale && back == back) {
			t.Fatalf("%q: scale %v does not re-parse (%v, %v)", s, scale, back, err)
		}
	})
}

func TestStopStreamer(t *testing.T) {
	cases := []struct {
		name   string
		pieces []string
		stops  []string
	}{
		{"no stop", []string{"a", "bc", "d"}, nil},
		{"stop inside one piece", []string{"he", "llo<|end|>more"}, []string{"<|end|>"}},
		{"stop across pieces", []string{"x<", "|e", "nd", "|>"}, []string{"<|end|>"}},
		{"near miss", []string{"<|en", "x", "d"}, []string{"<|end|>"}},
		{"two stops", []string{"ab", "Q:", "z"}, []string{"\n\n", "Q:"}},
		{"empty stop ignored", []string{"a", "b"}, []string{""}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// The final text as the bridge computes it: cut before the first stop string; no piece is
			// generated after the one that completes a stop string.
			text, fed := "", len(tc.pieces)
			for i, p := range tc.pieces {
				text += p
				cut := -1
				for _, st := range tc.stops {
					if k := strings.Index(text, st); st != "" && k >= 0 && (cut < 0 || k < cut) {
						cut = k
					}
				}
				if cut >= 0 {
					text, fed = text[:cut], i+1
					break
				}
			}
			var buf bytes.Buffer
			s := newStopStreamer(&buf, tc.stops)
			for _, p := range tc.pieces[:fed] {
				s.add(p)
				if !strings.HasPrefix(text, buf.String()) {
					t.Fatalf("streamed %q, which is not a prefix of the final %q", buf.String(), text)
				}
			}
			s.finish(text)
			if buf.String() != text {
				t.Fatalf("streamed %q, want %q", buf.String(), text)
			}
		})
	}
}

func TestLogprobsAdapter(t *testing.T) {
	// A rank-2 LoRA on two projections of stories260K (embedding 64, KV width 32), fixed pseudo-random values.
	pair := func(base string, nOut int) lora.Tensor {
		tt := lora.Tensor{Base: base, Rank: 2, NIn: 64, NOut: nOut, A: make([]float32, 2*64), B: make([]float32, 2*nOut)}
		for i := range tt.A {
			tt.A[i] = float32((i*37)%17-8) / 8
		}
		for i := range tt.B {
			tt.B[i] = float32((i*53)%13-6) / 6
		}
		return tt
	}
	path := filepath.Join(t.TempDir(), "adapter.gguf")
	if err := llama.WriteAdapterFile(path, "llama", 4, []lora.Tensor{pair("blk.0.attn_q.weight", 64), pair("blk.1.attn_v.weight", 32)}, nil); err != nil {
		t.Fatal(err)
	}
	const text = "Once upon a time, there was a little girl."
	run := func(args ...string) logprobsOutput {
		t.Helper()
		out, err := runLlamaCLI(t, append([]string{"logprobs", "--model", cliStories(t), "--threads", "1", "--json", "--text", text}, args...)...)
		if err != nil {
			t.Fatal(err)
		}
		var got logprobsOutput
		if err := json.Unmarshal([]byte(out), &got); err != nil {
			t.Fatal(err)
		}
		return got
	}
	base, zero, full := run(), run("--adapter", path+":0"), run("--adapter", path)
	// The same adapter applied through the bridge directly.
	m, err := llama.LoadModel(cliStories(t), llama.ModelOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	ad, err := llama.LoadAdapter(m, path)
	if err != nil {
		t.Fatal(err)
	}
	ctx, err := llama.NewContext(m, llama.ContextOptions{NCtx: 256, NSeq: 2, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer ctx.Close()
	if err := ctx.SetAdapters(llama.AdapterScale{Adapter: ad, Scale: 1}); err != nil {
		t.Fatal(err)
	}
	ref, err := ctx.TokenLogProbs(context.Background(), base.Tokens)
	if err != nil {
		t.Fatal(err)
	}
	maxDiff := 0.0
	for i := range base.LogProbs {
		if d := math.Abs(zero.LogProbs[i] - base.LogProbs[i]); d > 1e-6 {
			t.Fatalf("token %d: scale 0 gives %v, base %v", i+1, zero.LogProbs[i], base.LogProbs[i])
		}
		if d := math.Abs(full.LogProbs[i] - ref[i]); d > 1e-4 {
			t.Fatalf("token %d: --adapter gives %v, Context.SetAdapters %v", i+1, full.LogProbs[i], ref[i])
		}
		maxDiff = math.Max(maxDiff, math.Abs(full.LogProbs[i]-base.LogProbs[i]))
	}
	if maxDiff < 1e-3 {
		t.Fatalf("the adapter changes no log-prob by more than %g", maxDiff)
	}
}
