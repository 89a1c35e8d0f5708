package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/bpo-dev/bpo/llama"
	"github.com/urfave/cli/v2"
)

// generateCommand continues a prompt or answers a chat message, streaming the text to stdout.
func generateCommand() *cli.Command {
	return &cli.Command{
		Name:  "generate",
		Usage: "generate text from a prompt or a chat message (K samples decoded in parallel with --n)",
		Description: "With --prompt the text is continued as is (special-token text such as \"<|im_start|>\" is parsed,\n" +
			"BOS added when the model asks for it). With --chat the message (and --system) is formatted with the\n" +
			"model's chat template or the built-in one named by --template (chatml, llama3, ...). Temperature 0\n" +
			"is greedy decoding. One sample streams to stdout as it is generated; with --n K the K samples\n" +
			"(seeds SEED..SEED+K-1) are decoded together and each is printed when it finishes. A summary\n" +
			"(tokens, stop reason, speed) goes to stderr. Examples:\n\n" +
			"   bpo generate --model testdata/models/stories260K.gguf --prompt \"Once upon a time\" --max-tokens 40 --temperature 0\n" +
			"   bpo generate --model M.gguf --chat \"What is 2+3?\" --template chatml --n 4 --stop \"<|im_end|>\"",
		Flags: []cli.Flag{
			modelFlag("GGUF model file"),
			&cli.StringFlag{Name: "prompt", Aliases: []string{"p"}, Usage: "raw prompt text to continue"},
			&cli.StringFlag{Name: "chat", Usage: "user message, formatted with the chat template"},
			&cli.StringFlag{Name: "system", Usage: "system message (with --chat)"},
			&cli.StringFlag{
				Name:  "template",
				Usage: "chat template: a built-in name (chatml, llama3, ...); default: the model's own",
			},
			&cli.IntFlag{
				Name:    "max-tokens",
				Aliases: []string{"n-predict"},
				Value:   128,
				Usage:   "most new tokens per sample",
			},
			&cli.Float64Flag{Name: "temperature", Value: 0.8, Usage: "sampling temperature (0: greedy)"},
			&cli.IntFlag{Name: "top-k", Value: 40, Usage: "keep the K most likely tokens (0: all)"},
			&cli.Float64Flag{Name: "top-p", Value: 0.95, Usage: "nucleus sampling threshold (1: off)"},
			&cli.Float64Flag{
				Name:  "min-p",
				Value: 0.05,
				Usage: "drop tokens below MIN_P times the best one's probability (0: off)",
			},
			&cli.Uint64Flag{Name: "seed", Value: 1, Usage: "random seed of the first sample (sample i uses SEED+i)"},
			&cli.StringSliceFlag{Name: "stop", Usage: "stop when the text contains this string (cut off); repeatable"},
			&cli.IntFlag{Name: "n", Value: 1, Usage: "number of samples, decoded in parallel"},
			adapterFlag(),
			threadsFlag(),
			deviceFlag(),
			backendDirFlag(),
			&cli.IntFlag{Name: "ctx", Usage: "KV-cache cells (0: enough for all samples at once)"},
			&cli.BoolFlag{
				Name:  "json",
				Usage: "print the results as a JSON array of {tokens,text,stop_reason} instead of streaming",
			},
		},
		Action: runGenerate,
	}
}

func runGenerate(c *cli.Context) error {
	if c.IsSet("prompt") == c.IsSet("chat") {
		return errors.New("generate: give exactly one of --prompt and --chat")
	}
	if c.IsSet("system") && !c.IsSet("chat") {
		return errors.New("generate: --system needs --chat")
	}
	n := c.Int("n")
	if n < 1 {
		return fmt.Errorf("generate: --n %d, want >= 1", n)
	}
	if c.Int("max-tokens") < 1 {
		return fmt.Errorf("generate: --max-tokens %d, want >= 1", c.Int("max-tokens"))
	}
	m, err := openModelOn(c, c.String("model"))
	if err != nil {
		return fmt.Errorf("generate: %w", err)
	}
	defer m.Close()
	text := c.String("prompt")
	if c.IsSet("chat") {
		var msgs []llama.Message
		if s := c.String("system"); s != "" {
			msgs = append(msgs, llama.Message{Role: "system", Content: s})
		}
		msgs = append(msgs, llama.Message{Role: "user", Content: c.String("chat")})
		if text, err = m.ApplyChatTemplate(c.String("template"), msgs, true); err != nil {
			return fmt.Errorf("generate: %w", err)
		}
	}
	prompt, err := tokenizePrompt(m, text)
	if err != nil {
		return fmt.Errorf("generate: %w", err)
	}
	if len(prompt) == 0 {
		return errors.New("generate: the prompt gives no tokens: give a non-empty prompt")
	}
	adapters, err := loadAdapters(m, c.StringSlice("adapter"))
	if err != nil {
		return fmt.Errorf("generate: %w", err)
	}
	sampling := llama.Sampling{
		Temperature: c.Float64("temperature"),
		TopK:        c.Int("top-k"),
		TopP:        c.Float64("top-p"),
		MinP:        c.Float64("min-p"),
	}
	if err := sampling.Validate(); err != nil {
		return fmt.Errorf("generate: %w", err)
	}
	reqs := make([]llama.GenRequest, n)
	for i := range reqs {
		s := sampling
		s.Seed = c.Uint64("seed") + uint64(i)
		reqs[i] = llama.GenRequest{
			Prompt:    prompt,
			MaxTokens: c.Int("max-tokens"),
			Stop:      c.StringSlice("stop"),
			Sampling:  s,
		}
	}
	nCtx := c.Int("ctx")
	if nCtx <= 0 {
		nCtx = roundUp(n*(len(prompt)+c.Int("max-tokens")), 256)
	}
	ctx, err := llama.NewContext(m, llama.ContextOptions{NCtx: nCtx, NSeq: n, Threads: threadsOf(c)})
	if err != nil {
		return fmt.Errorf("generate: %w", err)
	}
	defer ctx.Close()
	if err := ctx.SetAdapters(adapters...); err != nil {
		return fmt.Errorf("generate: %w", err)
	}
	out := c.App.Writer
	var opts llama.GenerateOptions
	var stream *stopStreamer
	switch {
	case c.Bool("json"):
	case n == 1:
		stream = newStopStreamer(out, reqs[0].Stop)
		opts.OnToken = func(_ int, _ llama.Token, piece string) { stream.add(piece) }
		opts.OnDone = func(_ int, res llama.GenResult) { stream.finish(res.Text) }
	default:
		opts.OnDone = func(i int, res llama.GenResult) {
			fmt.Fprintf(
				out,
				"=== sample %d (seed %d, %d tokens, stop: %s) ===\n%s\n",
				i,
				reqs[i].Sampling.Seed,
				len(res.Tokens),
				res.StopReason,
				res.Text,
			)
		}
	}
	p := newProgress(0, "generating")
	if n == 1 && !c.Bool("json") {
		p = nil // the streamed text is the progress
	}
	if p != nil {
		on := opts.OnToken
		opts.OnToken = func(i int, t llama.Token, piece string) {
			if on != nil {
				on(i, t, piece)
			}
			p.Add(1)
		}
	}
	results, err := ctx.Generate(c.Context, reqs, opts)
	p.Finish()
	if err != nil {
		return fmt.Errorf("generate: %w", err)
	}
	if c.Bool("json") {
		return json.NewEncoder(out).Encode(results)
	}
	if stream != nil {
		fmt.Fprintln(out)
	}
	total := 0
	for _, r := range results {
		total += len(r.Tokens)
	}
	fmt.Fprintf(os.Stderr, "[%d sample(s), prompt %d tokens, %d new tokens]\n", n, len(prompt), total)
	return nil
}

// stopStreamer writes generated text as it comes, holding back the last bytes that could still be the
// start of a stop string (the bridge cuts a stop string off the final text).
type stopStreamer struct {
	w       io.Writer
	buf     []byte
	written int
	stops   []string
	hold    int // longest stop string length - 1
}

func newStopStreamer(w io.Writer, stops []string) *stopStreamer {
	s := &stopStreamer{w: w}
	for _, st := range stops {
		if st != "" {
			s.stops = append(s.stops, st)
			s.hold = max(s.hold, len(st)-1)
		}
	}
	return s
}

// add appends a piece and writes what can no longer belong to a stop string.
func (s *stopStreamer) add(piece string) {
	s.buf = append(s.buf, piece...)
	upTo := len(s.buf) - s.hold
	from := max(0, s.written-s.hold)
	for _, st := range s.stops {
		if k := bytes.Index(s.buf[from:], []byte(st)); k >= 0 {
			upTo = min(upTo, from+k)
		}
	}
	if upTo > s.written {
		s.w.Write(s.buf[s.written:upTo])
		s.written = upTo
	}
}

// finish writes the rest of the final text (which is cut before any stop string).
func (s *stopStreamer) finish(final string) {
	if len(final) > s.written {
		io.WriteString(s.w, final[s.written:])
		s.written = len(final)
	}
}
