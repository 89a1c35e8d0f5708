package llama

/*
#include <stdlib.h>
#include "llama.h"
*/
import "C"

import (
	"fmt"
	"strings"
	"unsafe"
)

// Token is a vocabulary id.
type Token = int32

// Special-token ids of the model's vocabulary; -1 when the model has none.
func (m *Model) BOS() Token { return m.info.BOS }

// EOS is the end-of-sequence token id.
func (m *Model) EOS() Token { return m.info.EOS }

// EOT is the end-of-turn token id (-1 when absent).
func (m *Model) EOT() Token { return m.info.EOT }

// VocabSize is the number of tokens in the vocabulary.
func (m *Model) VocabSize() int { return m.info.VocabSize }

// IsEOG reports whether tok ends generation (EOS, EOT or another end-of-generation token).
func (m *Model) IsEOG(tok Token) bool {
	if m.vocab == nil || tok < 0 || int(tok) >= m.info.VocabSize {
		return false
	}
	return bool(C.llama_vocab_is_eog(m.vocab, C.llama_token(tok)))
}

// Tokenize converts text to tokens. addSpecial adds BOS (and EOS) as the model's metadata asks;
// parseSpecial turns special-token text such as "<|im_start|>" into its single token.
func (m *Model) Tokenize(text string, addSpecial, parseSpecial bool) ([]Token, error) {
	if m.vocab == nil {
		return nil, ErrClosed
	}
	ctext := C.CString(text)
	defer C.free(unsafe.Pointer(ctext))
	n := len(text) + 8
	for attempt := 0; attempt < 2; attempt++ {
		out := make([]Token, n)
		got := C.llama_tokenize(m.vocab, ctext, C.int32_t(len(text)), (*C.llama_token)(unsafe.Pointer(&out[0])), C.int32_t(n), C.bool(addSpecial), C.bool(parseSpecial))
		if got >= 0 {
			return out[:got], nil
		}
		if got == C.INT32_MIN {
			return nil, fmt.Errorf("tokenize: %w: text of %d bytes is too long", ErrInvalidArgument, len(text))
		}
		n = int(-got)
	}
	return nil, fmt.Errorf("tokenize: llama.cpp returned inconsistent sizes")
}

// checkTokens verifies every id is inside the vocabulary.
func (m *Model) checkTokens(toks []Token) error {
	for i, t := range toks {
		if t < 0 || int(t) >= m.info.VocabSize {
			return fmt.Errorf("%w: token %d at position %d, vocabulary has %d tokens", ErrTokenOutOfRange, t, i, m.info.VocabSize)
		}
	}
	return nil
}

// TokenPiece returns the text of one token as it appears in detokenized output (special tokens rendered).
func (m *Model) TokenPiece(tok Token) (string, error) {
	if m.vocab == nil {
		return "", ErrClosed
	}
	if err := m.checkTokens([]Token{tok}); err != nil {
		return "", err
	}
	buf := make([]byte, 64)
	for {
		n := C.llama_token_to_piece(m.vocab, C.llama_token(tok), (*C.char)(unsafe.Pointer(&buf[0])), C.int32_t(len(buf)), 0, true)
		if n >= 0 {
			return string(buf[:n]), nil
		}
		buf = make([]byte, -n)
	}
}

// Detokenize converts tokens back to text. removeSpecial drops BOS/EOS as the model would add them;
// unparseSpecial renders special tokens as their text.
func (m *Model) Detokenize(toks []Token, removeSpecial, unparseSpecial bool) (string, error) {
	if m.vocab == nil {
		return "", ErrClosed
	}
	if err := m.checkTokens(toks); err != nil {
		return "", fmt.Errorf("detokenize: %w", err)
	}
	if len(toks) == 0 {
		return "", nil
	}
	buf := make([]byte, len(toks)*8+16)
	for {
		n := C.llama_detokenize(m.vocab, (*C.llama_token)(unsafe.Pointer(&toks[0])), C.int32_t(len(toks)), (*C.char)(unsafe.Pointer(&buf[0])), C.int32_t(len(buf)), C.bool(removeSpecial), C.bool(unparseSpecial))
		if n >= 0 {
			return string(buf[:n]), nil
		}
		buf = make([]byte, -n)
	}
}

// Message is one chat message.
type Message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// BuiltinChatTemplates lists the template names llama.cpp formats natively (e.g. "chatml", "llama3").
func BuiltinChatTemplates() []string {
	initBackend()
	n := C.llama_chat_builtin_templates(nil, 0)
	if n <= 0 {
		return nil
	}
	arr := make([]*C.char, n)
	C.llama_chat_builtin_templates((**C.char)(unsafe.Pointer(&arr[0])), C.size_t(n))
	out := make([]string, n)
	for i, c := range arr {
		out[i] = C.GoString(c)
	}
	return out
}

// ApplyChatTemplate formats messages with a chat template. template is "" for the model's own template
// (tokenizer.chat_template), a built-in name such as "chatml" or "llama3", or a Jinja template text that
// llama.cpp recognises. addAssistant ends the text with the assistant-turn header.
func (m *Model) ApplyChatTemplate(template string, msgs []Message, addAssistant bool) (string, error) {
	if template == "" {
		template = m.info.ChatTemplate
		if template == "" {
			return "", fmt.Errorf("chat template: %w: model %s has no tokenizer.chat_template; name one (%s)", ErrInvalidArgument, m.path, strings.Join(BuiltinChatTemplates(), ", "))
		}
	}
	return ApplyChatTemplate(template, msgs, addAssistant)
}

// ApplyChatTemplate formats messages with a named built-in template or a template text llama.cpp recognises.
func ApplyChatTemplate(template string, msgs []Message, addAssistant bool) (string, error) {
	initBackend()
	ctmpl := C.CString(template)
	defer C.free(unsafe.Pointer(ctmpl))
	cmsgs := (*C.struct_llama_chat_message)(C.malloc(C.size_t(len(msgs)+1) * C.size_t(unsafe.Sizeof(C.struct_llama_chat_message{}))))
	defer C.free(unsafe.Pointer(cmsgs))
	view := unsafe.Slice(cmsgs, len(msgs)+1)
	total := 0
	for i, msg := range msgs {
		if msg.Role == "" {
			return "", fmt.Errorf("chat template: %w: message %d has an empty role", ErrInvalidArgument, i)
		}
		view[i].role = C.CString(msg.Role)
		view[i].content = C.CString(msg.Content)
		total += len(msg.Role) + len(msg.Content)
	}
	defer func() {
		for i := range msgs {
			C.free(unsafe.Pointer(view[i].role))
			C.free(unsafe.Pointer(view[i].content))
		}
	}()
	buf := make([]byte, 2*total+1024)
	for {
		n := C.llama_chat_apply_template(ctmpl, cmsgs, C.size_t(len(msgs)), C.bool(addAssistant), (*C.char)(unsafe.Pointer(&buf[0])), C.int32_t(len(buf)))
		if n < 0 {
			name := template
			if len(name) > 60 {
				name = name[:60] + "..."
			}
			return "", fmt.Errorf("chat template: %w: llama.cpp does not support template %q; built-in names: %s", ErrInvalidArgument, name, strings.Join(BuiltinChatTemplates(), ", "))
		}
		if int(n) <= len(buf) {
			return string(buf[:n]), nil
		}
		buf = make([]byte, n)
	}
}
