package llama

import (
	"os"
	"path"
	"strconv"
	"strings"
	"testing"

	"github.com/bpo-dev/bpo/internal/fixture"
)

// TestTokenizerParity tokenizes every string of llama.cpp's tokenizer test vectors and compares the ids.
func TestTokenizerParity(t *testing.T) {
	for _, vocab := range []string{vocabBPE, vocabQwen2, vocabSPM} {
		t.Run(path.Base(vocab), func(t *testing.T) {
			m, err := LoadModel(fixture.File(t, vocab), ModelOptions{VocabOnly: true})
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			inp, err := os.ReadFile(fixture.File(t, vocab+".inp"))
			if err != nil {
				t.Fatal(err)
			}
			out, err := os.ReadFile(fixture.File(t, vocab+".out"))
			if err != nil {
				t.Fatal(err)
			}
			texts := strings.Split(string(inp), "\n__ggml_vocab_test__\n")
			if last := len(texts) - 1; texts[last] == "" {
				texts = texts[:last]
			}
			want := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
			if len(texts) != len(want) {
				t.Fatalf("%d test strings but %d expected lines", len(texts), len(want))
			}
			for i, text := range texts {
				got, err := m.Tokenize(text, false, false)
				if err != nil {
					t.Fatalf("string %d: %v", i, err)
				}
				var ids []string
				for _, g := range got {
					ids = append(ids, strconv.Itoa(int(g)))
				}
				if strings.Join(ids, " ") != strings.TrimSpace(want[i]) {
					t.Errorf("string %d %q: got %v, want %s", i, text, ids, want[i])
				}
			}
			t.Logf("%d strings match", len(texts))
		})
	}
}

func TestDetokenizeRoundTrip(t *testing.T) {
	m, err := LoadModel(fixture.File(t, vocabQwen2), ModelOptions{VocabOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	for _, text := range []string{"Hello world", " 3 + 4 = 7\n\n", "Ünïcödé ✓ 你好", "\\boxed{\\frac{1}{2}}"} {
		toks := mustTokenize(t, m, text, false)
		back, err := m.Detokenize(toks, false, false)
		if err != nil {
			t.Fatal(err)
		}
		if back != text {
			t.Errorf("round trip of %q gave %q", text, back)
		}
		var pieces strings.Builder
		for _, tok := range toks {
			p, err := m.TokenPiece(tok)
			if err != nil {
				t.Fatal(err)
			}
			pieces.WriteString(p)
		}
		if pieces.String() != text {
			t.Errorf("pieces of %q join to %q", text, pieces.String())
		}
	}
	special := mustTokenize(t, m, "<|im_start|>user", true)
	if len(special) != 2+0 && len(special) < 2 {
		t.Fatalf("special tokens: %v", special)
	}
	parsed, err := m.Tokenize("<|im_start|>user", false, true)
	if err != nil || len(parsed) != 2 || parsed[0] != 151644 {
		t.Errorf("parse special: got %v %v, want [151644 <user>]", parsed, err)
	}
}

func TestChatTemplates(t *testing.T) {
	msgs := []Message{{Role: "system", Content: "Be brief."}, {Role: "user", Content: "2+2?"}}
	cases := []struct {
		vocab, template, want string
	}{
		{fixture.File(t, vocabQwen2), "", "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\n"},
		{fixture.File(t, vocabBPE), "llama3", "<|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\n2+2?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"},
		{fixture.File(t, vocabBPE), "chatml", "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\n"},
	}
	for _, c := range cases {
		m, err := LoadModel(c.vocab, ModelOptions{VocabOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		got, err := m.ApplyChatTemplate(c.template, msgs, true)
		m.Close()
		if err != nil {
			t.Fatalf("%s %q: %v", c.vocab, c.template, err)
		}
		if got != c.want {
			t.Errorf("%s %q:\ngot  %q\nwant %q", c.vocab, c.template, got, c.want)
		}
	}
	m, err := LoadModel(fixture.File(t, vocabBPE), ModelOptions{VocabOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if _, err := m.ApplyChatTemplate("", msgs, true); err == nil || !strings.Contains(err.Error(), "no tokenizer.chat_template") {
		t.Errorf("model without template: got %v", err)
	}
	if _, err := m.ApplyChatTemplate("no-such-template", msgs, true); err == nil || !strings.Contains(err.Error(), "does not support template") {
		t.Errorf("unknown template: got %v", err)
	}
}
