package align_test

import (
	"fmt"
	"strings"

	"github.com/bpo-dev/bpo/align"
)

// A loss spec with a parameter flag (--beta) builds a composed loss; Compute gives the batch loss
// and its gradient with respect to each pair's policy log-probs, which the training graph turns
// into LoRA gradients.
func ExampleNewLossFromSpec() {
	loss, err := align.NewLossFromSpec("bpo(f=hinge):1,sft:0.2", [][2]string{{"beta", "0.5"}}, false)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(align.LossSpec(loss))
	batch := []align.PairLogps{{
		PolicyChosen: -12, PolicyRejected: -15.5, RefChosen: -12.4, RefRejected: -15,
		ChosenTokens: 8, RejectedTokens: 10,
	}}
	v, grads, err := loss.Compute(batch)
	if err != nil {
		fmt.Println(err)
		return
	}
	// bpo: a = 0.4, b = -0.5, m = min(a, -0.3·b) = 0.15, hinge 1 - 0.5·m = 0.925; sft: 12/8 = 1.5.
	fmt.Printf("loss %.4f, dL/dlogp chosen %+.4f rejected %+.4f\n", v, grads[0].Chosen, grads[0].Rejected)

	_, err = align.NewLossFromSpec("dpo:1,sft:0.2", [][2]string{{"gamma", "1"}}, false)
	fmt.Println(err)
	// Output:
	// bpo(beta=0.5 alpha=0.3 f=hinge):1,sft:0.2
	// loss 1.2250, dL/dlogp chosen -0.0250 rejected +0.1500
	// parameter gamma: no loss in "dpo:1,sft:0.2" uses it
}

// ReadPreferences (LoadPreferences for a file) accepts several shapes per line and reports the
// lines it skips with their line numbers.
func ExampleReadPreferences() {
	data := `{"prompt": "2+2=", "chosen": "4", "rejected": "5"}
{"question": "3*3?", "chosen": {"solution": "9"}, "rejected": {"solution": "6"}}
{"prompt": "1+1=", "chosen": "2"}
`
	res, err := align.ReadPreferences(strings.NewReader(data), "pairs.jsonl", align.LoadOptions{})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(res.Summary())
	for _, ex := range res.Examples {
		fmt.Printf("line %d: %q chosen %q rejected %q\n", ex.Line, ex.Prompt, ex.Chosen, ex.Rejected)
	}
	for _, s := range res.Skipped {
		fmt.Println("skipped", s)
	}
	// Output:
	// 2 pairs, 1 lines skipped, 0 blank
	// line 1: "2+2=" chosen "4" rejected "5"
	// line 2: "3*3?" chosen "9" rejected "6"
	// skipped pairs.jsonl:3: missing field "chosen" or "rejected" (expected {"prompt","chosen","rejected"} or {"question","chosen":{"solution"},"rejected":{"solution"}})
}
