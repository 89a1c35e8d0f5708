// Package ches computes the CHES score of preference pairs (Razin et al. 2024, "Unintentional
// Unalignment: Likelihood Displacement in Direct Preference Optimization", arXiv 2410.08847): how
// similar the model's hidden embeddings of the chosen and rejected completions are. Pairs with a high
// score are the ones whose training lowers the chosen response's likelihood; filtering them out
// mitigates likelihood displacement.
//
// The hidden states come from llama.Embedder (llama.cpp through package llama).
package ches
