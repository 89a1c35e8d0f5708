package mathgen

import (
	"fmt"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"unicode"

	"github.com/bpo-dev/bpo/ggml"
	"github.com/bpo-dev/bpo/llama"
	"github.com/bpo-dev/bpo/nn"
)

func TestVocabShape(t *testing.T) {
	v := Vocab()
	if err := v.Validate(); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(v, Vocab()) {
		t.Fatal("Vocab is not the same on every call")
	}
	if n := len(v.Tokens); n < 400 || n > 1100 {
		t.Errorf("vocabulary has %d tokens, want a few hundred to ~1000", n)
	}
	want := map[int32]string{v.UNK: TokenUNK, v.BOS: TokenBOS, v.EOS: TokenImEnd, idImStart: TokenImStart}
	for id, piece := range want {
		if v.Tokens[id] != piece {
			t.Errorf("token %d is %q, want %q", id, v.Tokens[id], piece)
		}
	}
	index := map[string]int{}
	for i, tok := range v.Tokens {
		index[tok] = i
		if v.Types[i] == nn.TokenTypeNormal && strings.ContainsFunc(tok, unicode.IsDigit) && len(tok) != 1 {
			t.Errorf("token %d %q merges a digit", i, tok)
		}
	}
	for _, s := range append(strings.Split("0123456789", ""), spaceMark, "#", "*", "=", "+", "-", "/", ".", "?", `\`, "{", "}") {
		if _, ok := index[s]; !ok {
			t.Errorf("single-character token %q missing", s)
		}
	}
	for b := 0; b < 256; b++ {
		if i := index[fmt.Sprintf("<0x%02X>", b)]; i != firstByteID+b || v.Types[i] != nn.TokenTypeByte {
			t.Errorf("byte token %02X at %d (type %d)", b, i, v.Types[i])
		}
	}
	// Frequent words of the task are whole tokens.
	for _, w := range []string{"▁apples", "▁dollars", "▁has", "▁each", "▁friend", "▁Tom", "He", "####", "▁="} {
		if _, ok := index[w]; !ok {
			t.Errorf("piece %q is not a token", w)
		}
	}
}

func TestUnits(t *testing.T) {
	cases := []struct{ in, want string }{
		{"Tom has 12 apples.", "▁Tom|▁has|▁|1|2|▁apples|."},
		{"3 * 4 = 12\n#### 12", "▁|3|▁*|▁|4|▁=|▁|1|2|\n|####|▁|1|2"},
		{"a-b ▁#", "▁a|-|b|▁|▁|#"},
	}
	for _, c := range cases {
		if got := strings.Join(units(escape(c.in)), "|"); got != c.want {
			t.Errorf("units(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// loadDemoVocab writes a tiny random model with the demo vocabulary and loads it with llama.cpp.
func loadDemoVocab(t *testing.T) *llama.Model {
	t.Helper()
	path := filepath.Join(t.TempDir(), "math-random.gguf")
	spec := nn.RandomModelSpec{Arch: "llama", Vocab: Vocab(), Layers: 1, Embedding: 32, FeedForward: 64, Heads: 2, HeadsKV: 2, Type: ggml.TypeF32, Seed: 1}
	if err := nn.WriteRandomModel(path, spec); err != nil {
		t.Fatal(err)
	}
	m, err := llama.LoadModel(path, llama.ModelOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// TestVocabWithLlamaCpp tokenizes generated problems with llama.cpp's own SPM tokenizer.
func TestVocabWithLlamaCpp(t *testing.T) {
	m := loadDemoVocab(t)
	v := Vocab()
	if m.VocabSize() != len(v.Tokens) || m.BOS() != idBOS || m.EOS() != idImEnd || m.EOT() != idImEnd || !m.IsEOG(idImEnd) {
		t.Fatalf("llama.cpp sees vocab %d, BOS %d, EOS %d, EOT %d", m.VocabSize(), m.BOS(), m.EOS(), m.EOT())
	}
	_, test, err := Generate(Config{Test: 300, MinLevel: 1, MaxLevel: 4, Seed: 77})
	if err != nil {
		t.Fatal(err)
	}
	var lengths []int
	for _, p := range test {
		text := p.Question + "\n" + p.Answer
		toks, err := m.Tokenize(text, false, false)
		if err != nil {
			t.Fatal(err)
		}
		back, err := m.Detokenize(toks, false, false)
		if err != nil {
			t.Fatal(err)
		}
		if back != text {
			t.Fatalf("%s: round trip\n got %q\nwant %q", p.ID, back, text)
		}
		digits := 0
		for _, tok := range toks {
			if tok >= firstByteID && tok < firstByteID+256 {
				if tok != firstByteID+'\n' {
					t.Errorf("%s: byte fallback %q in %q", p.ID, v.Tokens[tok], text)
				}
				continue
			}
			piece := v.Tokens[tok]
			if strings.ContainsFunc(piece, unicode.IsDigit) {
				if len(piece) != 1 {
					t.Errorf("%s: token %q holds a digit with other text", p.ID, piece)
				}
				digits++
			}
		}
		if want := strings.Count(text, "") - 1 - len(strings.Map(func(r rune) rune {
			if unicode.IsDigit(r) {
				return -1
			}
			return r
		}, text)); digits != want {
			t.Errorf("%s: %d digit tokens for %d digits", p.ID, digits, want)
		}
		lengths = append(lengths, len(toks))
	}
	sort.Ints(lengths)
	median, p90, max := lengths[len(lengths)/2], lengths[len(lengths)*9/10], lengths[len(lengths)-1]
	t.Logf("tokens per problem+solution: median %d, p90 %d, max %d", median, p90, max)
	if median > 100 || p90 > 140 || max > 170 {
		t.Errorf("problems are too long: median %d, p90 %d, max %d tokens", median, p90, max)
	}
}

// TestVocabChatTemplate checks the model's own template is ChatML and its control tokens are single tokens.
func TestVocabChatTemplate(t *testing.T) {
	m := loadDemoVocab(t)
	msgs := []llama.Message{{Role: "user", Content: "Tom has 3 apples. How many apples does Tom have now?"}}
	own, err := m.ApplyChatTemplate("", msgs, true)
	if err != nil {
		t.Fatal(err)
	}
	named, err := m.ApplyChatTemplate("chatml", msgs, true)
	if err != nil {
		t.Fatal(err)
	}
	if own != named {
		t.Fatalf("model template gives %q, chatml gives %q", own, named)
	}
	full := own + "Tom has 3 apples.\n#### 3" + TokenImEnd
	toks, err := m.Tokenize(full, true, true)
	if err != nil {
		t.Fatal(err)
	}
	count := map[int32]int{}
	for _, tok := range toks {
		count[tok]++
	}
	if toks[0] != idBOS || count[idImStart] != 2 || count[idImEnd] != 2 || toks[len(toks)-1] != idImEnd {
		t.Errorf("chat tokens %v: want BOS first, 2 <|im_start|>, 2 <|im_end|>, <|im_end|> last", toks)
	}
	if len(toks) > 45 {
		t.Errorf("short chat exchange takes %d tokens", len(toks))
	}
}
