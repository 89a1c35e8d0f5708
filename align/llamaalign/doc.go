// Package llamaalign connects package align to the models: it tokenizes preference and SFT data with
// a llama.cpp tokenizer and chat template, scores reference log-probs through llama.cpp, and
// implements align's Policy and SFTPolicy over the training graph of package nn. It lives apart so
// that package align stays pure Go, as eval/llamagen does for package eval.
package llamaalign
