package nn

import (
	"fmt"

	"github.com/bpo-dev/bpo/ggml"
)

// Token types of a GGUF vocabulary (tokenizer.ggml.token_type), as llama.cpp defines them.
const (
	TokenTypeNormal      int32 = 1
	TokenTypeUnknown     int32 = 2
	TokenTypeControl     int32 = 3
	TokenTypeUserDefined int32 = 4
	TokenTypeByte        int32 = 6
)

// VocabSpec is a tokenizer written into a generated model. Model "llama" is a SentencePiece-style
// vocabulary: pieces use "▁" (U+2581) for spaces, Scores rank merges (higher merges first), and byte
// tokens "<0x00>".."<0xFF>" (type TokenTypeByte) cover any text.
type VocabSpec struct {
	Model  string // "llama" (SPM)
	Tokens []string
	Scores []float32
	Types  []int32
	BOS    int32
	EOS    int32
	UNK    int32
	// AddBOS makes tokenization with special tokens prepend BOS.
	AddBOS bool
	// ChatTemplate is written as tokenizer.chat_template when not empty.
	ChatTemplate string
}

// Validate checks the vocabulary's internal consistency.
func (v *VocabSpec) Validate() error {
	if v.Model != "llama" {
		return fmt.Errorf("%w: vocab model %q, want \"llama\"", ggml.ErrInvalidArgument, v.Model)
	}
	n := len(v.Tokens)
	if n == 0 || len(v.Scores) != n || len(v.Types) != n {
		return fmt.Errorf("%w: vocab has %d tokens, %d scores, %d types", ggml.ErrInvalidArgument, n, len(v.Scores), len(v.Types))
	}
	for _, id := range []int32{v.BOS, v.EOS, v.UNK} {
		if id < 0 || int(id) >= n {
			return fmt.Errorf("%w: special token id %d outside the %d-token vocabulary", ggml.ErrInvalidArgument, id, n)
		}
	}
	seen := make(map[string]int, n)
	for i, t := range v.Tokens {
		if j, dup := seen[t]; dup {
			return fmt.Errorf("%w: token %q appears at ids %d and %d", ggml.ErrInvalidArgument, t, j, i)
		}
		seen[t] = i
	}
	return nil
}

func (v *VocabSpec) write(w *ggml.GGUFWriter) {
	w.SetString("tokenizer.ggml.model", v.Model)
	w.SetStrings("tokenizer.ggml.tokens", v.Tokens)
	w.SetFloat32s("tokenizer.ggml.scores", v.Scores)
	w.SetInt32s("tokenizer.ggml.token_type", v.Types)
	w.SetUint32("tokenizer.ggml.bos_token_id", uint32(v.BOS))
	w.SetUint32("tokenizer.ggml.eos_token_id", uint32(v.EOS))
	w.SetUint32("tokenizer.ggml.unknown_token_id", uint32(v.UNK))
	w.SetBool("tokenizer.ggml.add_bos_token", v.AddBOS)
	w.SetBool("tokenizer.ggml.add_eos_token", false)
	if v.ChatTemplate != "" {
		w.SetString("tokenizer.chat_template", v.ChatTemplate)
	}
}
