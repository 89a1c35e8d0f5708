package bench

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"text/template"
)

// Message is one chat message. The bridge applies the model's chat template to a []Message.
type Message struct {
	Role    string `json:"role"` // "system", "user" or "assistant"
	Content string `json:"content"`
}

// Prompt is what a model is asked: chat messages (to be rendered by the model's chat template)
// or, for base-model few-shot formats, raw text. Exactly one of Messages and Text is set.
type Prompt struct {
	Messages []Message `json:"messages,omitempty"`
	Text     string    `json:"text,omitempty"`
	// Stop lists strings that end generation for this format (besides end-of-generation tokens).
	Stop []string `json:"stop,omitempty"`
}

// QwenMathSystemPrompt is the system prompt of the zero-shot boxed CoT setting (Qwen2.5-Math, the
// BPO paper's evaluation).
const QwenMathSystemPrompt = "Please reason step by step, and put your final answer within \\boxed{}."

// Prompt format names.
const (
	FormatBoxed        = "boxed"         // zero-shot chat: system QwenMathSystemPrompt + user question
	FormatGSM8KFewShot = "gsm8k-fewshot" // lm-eval gsm8k: "Question: ...\nAnswer:" with k train shots
	FormatGSM8KCoT     = "gsm8k-cot"     // 8-shot CoT of Wei et al., answers end "The answer is N."
	FormatTemplate     = "template"      // a Go text/template file
)

// Formats returns the prompt format names.
func Formats() []string {
	return []string{FormatBoxed, FormatGSM8KFewShot, FormatGSM8KCoT, FormatTemplate}
}

// Prompter turns a sample into a prompt.
type Prompter interface {
	Prompt(s Sample) (Prompt, error)
}

// BoxedPrompter is the zero-shot boxed chain-of-thought chat format.
type BoxedPrompter struct{}

// Prompt returns [system, user] messages.
func (BoxedPrompter) Prompt(s Sample) (Prompt, error) {
	return Prompt{Messages: []Message{
		{Role: "system", Content: QwenMathSystemPrompt},
		{Role: "user", Content: s.Question},
	}}, nil
}

// FewShotPrompter is lm-eval's gsm8k format: shots rendered as "Question: q\nAnswer: a" separated
// by a blank line, then "Question: q\nAnswer:". Shots are usually the first k GSM8K train rows
// (their answers end in "#### N", which strict-match extraction expects).
type FewShotPrompter struct {
	Shots []Sample
}

// Prompt renders the few-shot text prompt.
func (p FewShotPrompter) Prompt(s Sample) (Prompt, error) {
	var b strings.Builder
	for _, sh := range p.Shots {
		ans := sh.Solution
		if ans == "" {
			ans = sh.Answer
		}
		fmt.Fprintf(&b, "Question: %s\nAnswer: %s\n\n", sh.Question, ans)
	}
	fmt.Fprintf(&b, "Question: %s\nAnswer:", s.Question)
	return Prompt{Text: b.String(), Stop: []string{"Question:", "</s>", "<|im_end|>"}}, nil
}

// CoTPrompter is the 8-shot chain-of-thought GSM8K format of lm-eval's gsm8k_cot (the Wei et al.
// 2022 exemplars): "Q: ...\nA: ..." blocks separated by a blank line, each answer ending
// "The answer is N.", then "Q: question\nA:".
type CoTPrompter struct{}

// Prompt renders the 8-shot CoT text prompt.
func (CoTPrompter) Prompt(s Sample) (Prompt, error) {
	var b strings.Builder
	for _, ex := range cotExemplars() {
		fmt.Fprintf(&b, "Q: %s\nA: %s\n\n", ex[0], ex[1])
	}
	fmt.Fprintf(&b, "Q: %s\nA:", s.Question)
	return Prompt{Text: b.String(), Stop: []string{"Q:", "</s>", "<|im_end|>"}}, nil
}

// cotExemplars returns the eight GSM8K chain-of-thought exemplars of Wei et al. (2022).
func cotExemplars() [][2]string {
	return [][2]string{
		{
			"There are 15 trees in the grove. Grove workers will plant trees in the grove today. After they are done, there will be 21 trees. How many trees did the grove workers plant today?",
			"There are 15 trees originally. Then there were 21 trees after some more were planted. So there must have been 21 - 15 = 6. The answer is 6.",
		},
		{"If there are 3 cars in the parking lot and 2 more cars arrive, how many cars are in the parking lot?",
			"There are originally 3 cars. 2 more cars arrive. 3 + 2 = 5. The answer is 5."},
		{"Leah had 32 chocolates and her sister had 42. If they ate 35, how many pieces do they have left in total?",
			"Originally, Leah had 32 chocolates. Her sister had 42. So in total they had 32 + 42 = 74. After eating 35, they had 74 - 35 = 39. The answer is 39."},
		{
			"Jason had 20 lollipops. He gave Denny some lollipops. Now Jason has 12 lollipops. How many lollipops did Jason give to Denny?",
			"Jason started with 20 lollipops. Then he had 12 after giving some to Denny. So he gave Denny 20 - 12 = 8. The answer is 8.",
		},
		{
			"Shawn has five toys. For Christmas, he got two toys each from his mom and dad. How many toys does he have now?",
			"Shawn started with 5 toys. If he got 2 toys each from his mom and dad, then that is 4 more toys. 5 + 4 = 9. The answer is 9.",
		},
		{
			"There were nine computers in the server room. Five more computers were installed each day, from monday to thursday. How many computers are now in the server room?",
			"There were originally 9 computers. For each of 4 days, 5 more computers were added. So 5 * 4 = 20 computers were added. 9 + 20 is 29. The answer is 29.",
		},
		{
			"Michael had 58 golf balls. On tuesday, he lost 23 golf balls. On wednesday, he lost 2 more. How many golf balls did he have at the end of wednesday?",
			"Michael started with 58 golf balls. After losing 23 on tuesday, he had 58 - 23 = 35. After losing 2 more, he had 35 - 2 = 33 golf balls. The answer is 33.",
		},
		{"Olivia has $23. She bought five bagels for $3 each. How much money does she have left?",
			"Olivia had 23 dollars. 5 bagels for 3 dollars each will be 5 x 3 = 15 dollars. So she has 23 - 15 dollars left. 23 - 15 is 8. The answer is 8."},
	}
}

// TemplatePrompter renders a Go text/template with the Sample as data ({{.Question}}, {{.ID}},
// {{.Subject}}, {{.Level}}, ...). If the template's output is to be sent as a chat, set Chat: the
// text becomes a single user message (with System, if non-empty, as the system message).
type TemplatePrompter struct {
	tmpl   *template.Template
	Chat   bool
	System string
}

// LoadTemplate parses the template file at path.
func LoadTemplate(path string, chat bool, system string) (*TemplatePrompter, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("prompt template: %w", err)
	}
	t, err := template.New(path).Option("missingkey=error").Parse(string(b))
	if err != nil {
		return nil, fmt.Errorf("prompt template %s: %w", path, err)
	}
	return &TemplatePrompter{tmpl: t, Chat: chat, System: system}, nil
}

// Prompt executes the template for s.
func (p *TemplatePrompter) Prompt(s Sample) (Prompt, error) {
	var b bytes.Buffer
	if err := p.tmpl.Execute(&b, s); err != nil {
		return Prompt{}, fmt.Errorf("prompt template %s, sample %s: %w", p.tmpl.Name(), s.ID, err)
	}
	if !p.Chat {
		return Prompt{Text: b.String()}, nil
	}
	var msgs []Message
	if p.System != "" {
		msgs = append(msgs, Message{Role: "system", Content: p.System})
	}
	return Prompt{Messages: append(msgs, Message{Role: "user", Content: b.String()})}, nil
}

// NewPrompter builds the prompter for a format name. shots are the few-shot examples for
// FormatGSM8KFewShot (e.g. the first 5 rows of GSM8K train); templatePath is for FormatTemplate.
func NewPrompter(format string, shots []Sample, templatePath string) (Prompter, error) {
	switch format {
	case "", FormatBoxed:
		return BoxedPrompter{}, nil
	case FormatGSM8KFewShot:
		return FewShotPrompter{Shots: shots}, nil
	case FormatGSM8KCoT:
		return CoTPrompter{}, nil
	case FormatTemplate:
		if templatePath == "" {
			return nil, fmt.Errorf("prompt format %q needs a template file", format)
		}
		return LoadTemplate(templatePath, true, "")
	}
	return nil, fmt.Errorf("unknown prompt format %q (want one of %v)", format, Formats())
}
