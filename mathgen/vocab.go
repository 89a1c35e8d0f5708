package mathgen

import (
	"fmt"

	"github.com/bpo-dev/bpo/nn"
)

// Special tokens of the demo vocabulary. EOS is <|im_end|>: the ChatML end of turn, so a completion
// trained with EOS appended ends exactly where the chat template ends an assistant turn, and generation
// stops there. BOS <s> is added at the start of tokenized text.
const (
	TokenUNK      = "<unk>"
	TokenBOS      = "<s>"
	TokenImStart  = "<|im_start|>"
	TokenImEnd    = "<|im_end|>"
	idUNK         = 0
	idBOS         = 1
	idImStart     = 2
	idImEnd       = 3
	firstByteID   = 4
	vocabSeed     = 20260101 // the fixed corpus the merges are learned from
	vocabProblems = 3000
	maxMerges     = 640
	minMergeCount = 3
)

// ChatTemplate is the ChatML template written into the demo model (tokenizer.chat_template);
// llama.cpp recognises it as "chatml".
const ChatTemplate = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"

// promptTexts are the fixed texts of the prompt formats the demo may use (chat roles, the Qwen2.5-Math
// system prompt, GSM8K few-shot labels); their words get whole tokens too.
var promptTexts = []string{
	"system", "user", "assistant",
	`Please reason step by step, and put your final answer within \boxed{}.`,
	"Question: Answer: The answer is",
}

// Vocab returns the demo model's tokenizer: a SentencePiece ("llama") vocabulary with <unk>, <s>, the
// ChatML control tokens <|im_start|> and <|im_end|> (EOS), the 256 byte-fallback tokens, one token for
// every printable ASCII character and "▁", and the pieces learned by byte-pair merges over a fixed
// generated corpus (seed vocabSeed). Digits are never merged: every digit is its own token. The result
// is the same on every call.
func Vocab() *nn.VocabSpec {
	v := &nn.VocabSpec{
		Model:        "llama",
		BOS:          idBOS,
		EOS:          idImEnd,
		UNK:          idUNK,
		AddBOS:       true,
		ChatTemplate: ChatTemplate,
	}
	add := func(piece string, score float32, typ int32) {
		v.Tokens = append(v.Tokens, piece)
		v.Scores = append(v.Scores, score)
		v.Types = append(v.Types, typ)
	}
	add(TokenUNK, 0, nn.TokenTypeUnknown)
	add(TokenBOS, 0, nn.TokenTypeControl)
	add(TokenImStart, 0, nn.TokenTypeControl)
	add(TokenImEnd, 0, nn.TokenTypeControl)
	for b := 0; b < 256; b++ {
		add(fmt.Sprintf("<0x%02X>", b), 0, nn.TokenTypeByte)
	}
	merges := vocabMerges()
	// Single characters rank below every merge; their scores never decide a merge.
	chars := append([]string{spaceMark}, printableASCII()...)
	for i, c := range chars {
		add(c, -float32(len(merges)+1+i), nn.TokenTypeNormal)
	}
	for i, m := range merges {
		add(m, -float32(i+1), nn.TokenTypeNormal)
	}
	return v
}

// printableASCII lists '!'..'~' (the space is "▁").
func printableASCII() []string {
	var out []string
	for c := '!'; c <= '~'; c++ {
		out = append(out, string(c))
	}
	return out
}

// vocabMerges learns the merged pieces from the fixed corpus.
func vocabMerges() []string {
	train, _, err := Generate(Config{Train: vocabProblems, MinLevel: MinLevel, MaxLevel: MaxLevel, Seed: vocabSeed})
	if err != nil {
		panic(fmt.Sprintf("mathgen: the fixed vocabulary corpus must generate: %v", err)) // a bug, not an input error
	}
	counts := map[string]int{}
	addText := func(text string, weight int) {
		for _, u := range units(escape(text)) {
			if len([]rune(u)) > 1 {
				counts[u] += weight
			}
		}
	}
	for _, p := range train {
		addText(p.Question, 1)
		addText(p.Answer, 1)
	}
	for _, t := range promptTexts {
		addText(t, vocabProblems)
	}
	return learnMerges(counts, maxMerges, minMergeCount)
}
