package main

import (
	"encoding/json"
	"fmt"

	"github.com/bpo-dev/bpo/llama"
	"github.com/urfave/cli/v2"
)

// tokenizeCommand prints the token ids and pieces of a text.
func tokenizeCommand() *cli.Command {
	return &cli.Command{
		Name:  "tokenize",
		Usage: "tokenize a text with a model's tokenizer and show ids and pieces",
		Description: "Loads only the tokenizer, so vocabulary-only GGUF files work too. By default BOS/EOS are\n" +
			"added as the model's metadata asks and special-token text (e.g. \"<|im_start|>\") is kept as plain\n" +
			"text. Example:\n\n" +
			"   bpo tokenize --model testdata/models/stories260K.gguf --text \"Once upon a time\"\n" +
			"   bpo tokenize --model ggml-vocab-qwen2.gguf --parse-special --json --text \"<|im_start|>user\"",
		Flags: []cli.Flag{
			modelFlag("GGUF model file"),
			&cli.StringFlag{Name: "text", Usage: "text to tokenize", Required: true},
			&cli.BoolFlag{Name: "no-special", Usage: "do not add BOS/EOS"},
			&cli.BoolFlag{
				Name:  "parse-special",
				Usage: "turn special-token text such as \"<|im_start|>\" into its single token",
			},
			&cli.BoolFlag{Name: "json", Usage: `print {"tokens":[ids],"pieces":[texts]}`},
		},
		Action: func(c *cli.Context) error {
			m, err := openModel(c.String("model"), true)
			if err != nil {
				return fmt.Errorf("tokenize: %w", err)
			}
			defer m.Close()
			toks, err := m.Tokenize(c.String("text"), !c.Bool("no-special"), c.Bool("parse-special"))
			if err != nil {
				return fmt.Errorf("tokenize: %w", err)
			}
			pieces, err := tokenPieces(m, toks)
			if err != nil {
				return fmt.Errorf("tokenize: %w", err)
			}
			if c.Bool("json") {
				out := struct {
					Tokens []llama.Token `json:"tokens"`
					Pieces []string      `json:"pieces"`
				}{toks, pieces}
				if out.Tokens == nil {
					out.Tokens, out.Pieces = []llama.Token{}, []string{}
				}
				enc := json.NewEncoder(c.App.Writer)
				enc.SetEscapeHTML(false) // pieces like "<|im_start|>" stay readable
				return enc.Encode(out)
			}
			for i, t := range toks {
				fmt.Fprintf(c.App.Writer, "%6d %q\n", t, pieces[i])
			}
			fmt.Fprintf(c.App.Writer, "%d tokens\n", len(toks))
			return nil
		},
	}
}

// tokenPieces returns the text piece of every token.
func tokenPieces(m *llama.Model, toks []llama.Token) ([]string, error) {
	pieces := make([]string, len(toks))
	for i, t := range toks {
		p, err := m.TokenPiece(t)
		if err != nil {
			return nil, err
		}
		pieces[i] = p
	}
	return pieces, nil
}
