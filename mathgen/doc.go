// Package mathgen generates a synthetic grade-school math task for the demo: short word problems with
// 1 to 4 arithmetic steps (+, -, *, exact /), each with a worked solution that ends in "#### N" the way
// GSM8K's solutions do, written as GSM8K-shaped JSONL ({"question","answer"} plus "level" and "id") in
// train and held-out test splits. Everything is deterministic for a seed.
//
// It also defines the demo model's tokenizer (Vocab): a small SentencePiece-style vocabulary whose digits
// are always single tokens, with ChatML control tokens so the "chatml" chat template works.
package mathgen
