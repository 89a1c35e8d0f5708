package llama

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bpo-dev/bpo/ggml"
	"github.com/bpo-dev/bpo/internal/fixture"
)

var errNotExist = fs.ErrNotExist

// parseBlockName splits "blk.<n>.<kind>.weight" into the layer and the projection kind.
func parseBlockName(name string) (layer int, kind string, err error) {
	parts := strings.Split(name, ".")
	if len(parts) != 4 {
		return 0, "", fmt.Errorf("bad name %q", name)
	}
	layer, err = strconv.Atoi(parts[1])
	return layer, parts[2], err
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	text := filepath.Join(dir, "notes.gguf")
	os.WriteFile(text, []byte("this is not a model at all"), 0o644)
	short := filepath.Join(dir, "short.gguf")
	os.WriteFile(short, []byte("GG"), 0o644)
	truncated := filepath.Join(dir, "truncated.gguf")
	raw, err := os.ReadFile(fixture.File(t, stories260K))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(truncated, raw[:2000], 0o644)
	truncatedData := filepath.Join(dir, "truncated-data.gguf")
	os.WriteFile(truncatedData, raw[:len(raw)*9/10], 0o644)
	otherArch := filepath.Join(dir, "mamba.gguf")
	w := ggml.NewGGUFWriter()
	w.SetString("general.architecture", "mamba")
	if err := w.CopyKV(fixture.File(t, vocabSPM), "tokenizer."); err != nil {
		t.Fatal(err)
	}
	if err := w.AddFloat32Tensor("token_embd.weight", ggml.TypeF32, []int64{4, 2}, make([]float32, 8)); err != nil {
		t.Fatal(err)
	}
	if err := w.WriteFile(otherArch); err != nil {
		t.Fatal(err)
	}
	w.Close()
	cases := []struct {
		name, path string
		opts       ModelOptions
		want       error
	}{
		{"missing file", filepath.Join(dir, "missing.gguf"), ModelOptions{}, fs.ErrNotExist},
		{"text file", text, ModelOptions{}, ErrNotGGUF},
		{"too short", short, ModelOptions{}, ErrNotGGUF},
		{"directory", dir, ModelOptions{}, ErrNotGGUF},
		{"truncated metadata", truncated, ModelOptions{}, ErrNotGGUF},
		{"truncated tensor data", truncatedData, ModelOptions{}, ErrNotGGUF},
		{"unsupported architecture", otherArch, ModelOptions{}, ErrUnsupportedArch},
		{"vocab-only file as a model", fixture.File(t, vocabSPM), ModelOptions{}, ErrInvalidArgument},
	}
	for _, c := range cases {
		_, err := LoadModel(c.path, c.opts)
		if !errors.Is(err, c.want) {
			t.Errorf("%s: got %v, want %v", c.name, err, c.want)
		} else {
			t.Logf("%s: %v", c.name, err)
		}
	}
}

func TestInputErrors(t *testing.T) {
	m := mustLoad(t, fixture.File(t, stories260K))
	ctx := mustContext(t, m, ContextOptions{NCtx: 64, NSeq: 2})
	bg := context.Background()
	_, err := ctx.TokenLogProbs(bg, []Token{1, 600, 3})
	if !errors.Is(err, ErrTokenOutOfRange) {
		t.Errorf("token 600 in a 512 vocabulary: got %v", err)
	}
	_, err = ctx.TokenLogProbs(bg, []Token{1, -1})
	if !errors.Is(err, ErrTokenOutOfRange) {
		t.Errorf("token -1: got %v", err)
	}
	if _, err := m.Detokenize([]Token{9999}, false, false); !errors.Is(err, ErrTokenOutOfRange) {
		t.Errorf("detokenize 9999: got %v", err)
	}
	long := make([]Token, 300)
	for i := range long {
		long[i] = Token(1 + i%500)
	}
	if _, err := ctx.TokenLogProbs(bg, long); !errors.Is(err, ErrContextOverflow) {
		t.Errorf("300 tokens in a 256-cell context: got %v", err)
	}
	if _, err := ctx.Generate(bg, []GenRequest{{Prompt: long[:200], MaxTokens: 100}}, GenerateOptions{}); !errors.Is(err, ErrContextOverflow) {
		t.Errorf("generation past the context: got %v", err)
	}
	// A single completion continues the prompt's sequence: a 1-sequence context scores it.
	one := mustContext(t, m, ContextOptions{NCtx: 64, NSeq: 1})
	if _, err := one.TokenLogProbs(bg, []Token{1, 400, 300}); err != nil {
		t.Errorf("one completion in a 1-sequence context: %v", err)
	}
	if _, err := ctx.Score(bg, []ScoreRequest{{Prompt: []Token{1}, Completions: [][]Token{{5}, {6}}}}); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("3 sequences in a 2-sequence context: got %v", err)
	}
	if _, err := ctx.Generate(bg, []GenRequest{{Prompt: []Token{1}, MaxTokens: 4, Sampling: Sampling{TopP: 2}}}, GenerateOptions{}); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("top_p 2: got %v", err)
	}
	if _, err := NewContext(m, ContextOptions{NSeq: 1000}); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("1000 sequences: got %v", err)
	}
	ctx.Close()
	if _, err := ctx.TokenLogProbs(bg, []Token{1, 2}); !errors.Is(err, ErrClosed) {
		t.Errorf("closed context: got %v", err)
	}
}

// TestNoLeaks loads and frees models, contexts and adapters many times and bounds the RSS growth. glibc's
// heap keeps creeping by a few MiB per 100 cycles here (fragmentation, as before the package split: 1-13 MiB
// per 100 in a 600-cycle probe), so the bound is per cycle over 200 cycles: 320 KiB, a third of what
// leaking stories260K's weights (about 1 MiB) once per cycle would add, in two windows in a row.
func TestNoLeaks(t *testing.T) {
	cycle := func() {
		m, err := LoadModel(fixture.File(t, stories260K), ModelOptions{})
		if err != nil {
			t.Fatal(err)
		}
		c, err := NewContext(m, ContextOptions{NCtx: 256, Threads: 1})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.TokenLogProbs(context.Background(), []Token{1, 400, 300, 200}); err != nil {
			t.Fatal(err)
		}
		c.Close()
		m.Close()
	}
	for i := 0; i < 50; i++ {
		cycle()
	}
	// A leak grows RSS in every window; the heap's fragmentation jumps now and then. A window over the
	// bound is measured again, and only two in a row fail.
	const cycles, perCycle = 200, 320
	for window := 0; window < 2; window++ {
		runtime.GC()
		before := rssKiB(t)
		for i := 0; i < cycles; i++ {
			cycle()
		}
		runtime.GC()
		after := rssKiB(t)
		t.Logf("RSS before %d KiB, after %d more load/score/close cycles %d KiB (%d KiB per cycle)",
			before, cycles, after, (after-before)/cycles)
		if after-before <= cycles*perCycle {
			return
		}
	}
	t.Errorf("RSS grew by more than %d KiB per cycle in two windows of %d cycles in a row", perCycle, cycles)
}

func rssKiB(t *testing.T) int {
	raw, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			return n
		}
	}
	t.Fatal("no VmRSS")
	return 0
}

// TestDecodeAbortsWhenCancelled: once the context of a Score or Generate call is done, ggml's abort
// callback stops the decode in progress (Ctrl-C during a long decode); the next call decodes again.
func TestDecodeAbortsWhenCancelled(t *testing.T) {
	m := mustLoad(t, fixture.File(t, stories260K))
	c := mustContext(t, m, ContextOptions{NCtx: 256, NSeq: 1})
	toks := make([]batchToken, 200)
	for i := range toks {
		toks[i] = batchToken{tok: Token(1 + i%500), pos: i, logits: i == len(toks)-1}
	}
	ctx, cancel := context.WithCancel(context.Background())
	stop := c.abortOn(ctx)
	cancel()
	var err error
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); {
		c.clearMemory()
		if err = c.decode(toks, nil); errors.Is(err, errAborted) {
			break
		}
	}
	stop()
	if !errors.Is(err, errAborted) {
		t.Fatalf("decode after cancel: %v, want aborted", err)
	}
	if _, err := c.TokenLogProbs(context.Background(), []Token{1, 403, 407}); err != nil {
		t.Fatalf("scoring after an aborted decode: %v", err)
	}
	if _, err := c.TokenLogProbs(ctx, []Token{1, 403, 407}); !errors.Is(err, context.Canceled) {
		t.Fatalf("scoring with a cancelled context: %v", err)
	}
}
