package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/bpo-dev/bpo/llama"
	"github.com/urfave/cli/v2"
)

// logprobsOutput is the --json output of `bpo logprobs`. Its shape is relied on by scripts:
// {"tokens":[...],"logprobs":[...],"sum":...}.
type logprobsOutput struct {
	// Tokens are all ids fed to the model (BOS included when the model adds one).
	Tokens []llama.Token `json:"tokens"`
	// LogProbs are log p(tokens[i] | tokens[:i]) for the scored tokens: i >= 1 with --text, the
	// completion's tokens with --prompt/--completion (the last len(LogProbs) entries of Tokens).
	LogProbs []float64 `json:"logprobs"`
	// Sum is the sum of LogProbs.
	Sum float64 `json:"sum"`
}

// logprobsCommand prints per-token log-probabilities of a text or of a completion given a prompt.
func logprobsCommand() *cli.Command {
	return &cli.Command{
		Name:  "logprobs",
		Usage: "per-token log-probabilities of a text, or of a completion given a prompt",
		Description: "With --text, scores every token after the first: log p(tokens[i] | tokens[:i]). With --prompt\n" +
			"and --completion, scores only the completion's tokens: prompt+completion is tokenized as one text\n" +
			"(BOS added when the model adds one) and split where the prompt's own tokens end. --json prints exactly\n" +
			"   {\"tokens\":[ids incl. BOS],\"logprobs\":[...],\"sum\":...}\n" +
			"Examples:\n\n" +
			"   bpo logprobs --model testdata/models/stories260K.gguf --text \"Once upon a time\" --json\n" +
			"   bpo logprobs --model testdata/models/stories260K.gguf --prompt \"Once upon a\" --completion \" time\"",
		Flags: []cli.Flag{
			modelFlag("GGUF model file"),
			adapterFlag(),
			&cli.StringFlag{Name: "text", Usage: "text to score (every token after the first)"},
			&cli.StringFlag{Name: "prompt", Usage: "conditioning prompt (with --completion)"},
			&cli.StringFlag{Name: "completion", Usage: "completion to score given --prompt"},
			&cli.BoolFlag{
				Name:  "parse-special",
				Usage: "turn special-token text such as \"<|im_start|>\" into its single token",
			},
			&cli.BoolFlag{Name: "json", Usage: `print {"tokens":[...],"logprobs":[...],"sum":...}`},
			threadsFlag(),
			deviceFlag(),
			backendDirFlag(),
		},
		Action: func(c *cli.Context) error {
			hasText := c.IsSet("text")
			hasPair := c.IsSet("prompt") || c.IsSet("completion")
			switch {
			case hasText && hasPair:
				return errors.New("logprobs: give either --text or --prompt with --completion, not both")
			case !hasText && !(c.IsSet("prompt") && c.IsSet("completion")):
				return errors.New("logprobs: give --text, or both --prompt and --completion")
			}
			m, err := openModelOn(c, c.String("model"))
			if err != nil {
				return fmt.Errorf("logprobs: %w", err)
			}
			defer m.Close()
			adapters, err := loadAdapters(m, c.StringSlice("adapter"))
			if err != nil {
				return fmt.Errorf("logprobs: %w", err)
			}
			parse := c.Bool("parse-special")
			var prompt, completion []llama.Token
			if hasText {
				toks, err := m.Tokenize(c.String("text"), true, parse)
				if err != nil {
					return fmt.Errorf("logprobs: --text: %w", err)
				}
				if len(toks) < 2 {
					return fmt.Errorf("logprobs: --text gives %d token(s), need at least 2 to score", len(toks))
				}
				prompt, completion = toks[:1], toks[1:]
			} else {
				if prompt, completion, err = splitPromptCompletion(m, c.String("prompt"), c.String("completion"), parse); err != nil {
					return fmt.Errorf("logprobs: %w", err)
				}
			}
			n := len(prompt) + len(completion)
			ctx, err := llama.NewContext(m, llama.ContextOptions{NCtx: roundUp(n, 256), NSeq: 2, Threads: threadsOf(c)})
			if err != nil {
				return fmt.Errorf("logprobs: %w", err)
			}
			defer ctx.Close()
			if err := ctx.SetAdapters(adapters...); err != nil {
				return fmt.Errorf("logprobs: %w", err)
			}
			res, err := ctx.Score(
				c.Context,
				[]llama.ScoreRequest{{Prompt: prompt, Completions: [][]llama.Token{completion}}},
			)
			if err != nil {
				return fmt.Errorf("logprobs: %w", err)
			}
			out := logprobsOutput{
				Tokens:   append(append([]llama.Token{}, prompt...), completion...),
				LogProbs: res[0][0].LogProbs,
				Sum:      res[0][0].Sum,
			}
			if c.Bool("json") {
				return json.NewEncoder(c.App.Writer).Encode(out)
			}
			return writeLogprobsTable(c.App.Writer, m, out)
		},
	}
}

// writeLogprobsTable prints one line per token (position, id, piece, log-prob) and the sum.
func writeLogprobsTable(w io.Writer, m *llama.Model, out logprobsOutput) error {
	pieces, err := tokenPieces(m, out.Tokens)
	if err != nil {
		return fmt.Errorf("logprobs: %w", err)
	}
	first := len(out.Tokens) - len(out.LogProbs)
	fmt.Fprintf(w, "%5s %7s %-20s %s\n", "pos", "id", "piece", "logprob")
	for i, t := range out.Tokens {
		lp := "-"
		if i >= first {
			lp = fmt.Sprintf("%.6f", out.LogProbs[i-first])
		}
		fmt.Fprintf(w, "%5d %7d %-20q %s\n", i, t, pieces[i], lp)
	}
	fmt.Fprintf(w, "sum %.6f over %d tokens\n", out.Sum, len(out.LogProbs))
	return nil
}

// splitPromptCompletion tokenizes prompt+completion as one text (so that, e.g., SentencePiece does not
// add a second word-start space before the completion) and splits the tokens where the prompt's own
// tokenization stops matching. When a token spans the boundary it goes to the completion.
func splitPromptCompletion(
	m *llama.Model,
	prompt, completion string,
	parseSpecial bool,
) ([]llama.Token, []llama.Token, error) {
	full, err := m.Tokenize(prompt+completion, true, parseSpecial)
	if err != nil {
		return nil, nil, fmt.Errorf("--prompt/--completion: %w", err)
	}
	p, err := m.Tokenize(prompt, true, parseSpecial)
	if err != nil {
		return nil, nil, fmt.Errorf("--prompt: %w", err)
	}
	k := 0
	for k < len(p) && k < len(full) && p[k] == full[k] {
		k++
	}
	if k == 0 {
		return nil, nil, errors.New(
			"--prompt gives no tokens of its own (empty prompt and the model adds no BOS): give a non-empty prompt",
		)
	}
	if k == len(full) {
		return nil, nil, errors.New("--completion gives no tokens: give a non-empty completion")
	}
	return full[:k], full[k:], nil
}

// roundUp rounds n up to a positive multiple of m.
func roundUp(n, m int) int {
	if n <= 0 {
		return m
	}
	return (n + m - 1) / m * m
}
