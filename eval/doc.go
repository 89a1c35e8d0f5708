// Package eval runs math benchmarks through a text generator, grades the answers, and writes,
// summarizes and compares run directories; it also builds on-policy preference pairs.
//
// Sub-packages: eval/bench (loaders and prompts), eval/grader (answer extraction and
// equivalence), eval/stats (confidence intervals, pass@k, significance tests, tables).
//
// # Using it from a model
//
// A model backend implements Generator (the llama.cpp bridge does). Then:
//
//	samples, _ := bench.Load("math500", "data/math500/test.jsonl")
//	samples, _ = bench.Select(samples, bench.Selection{Limit: 100})
//	sum, err := eval.Run(ctx, gen, "math500", samples, eval.Options{
//		Prompter: bench.BoxedPrompter{},
//		Gen:      eval.GenParams{N: 1, MaxNewTokens: 2048},
//		Model:    "qwen2.5-math-1.5b.gguf",
//	}, "runs/base/math500")
//
// Re-running the same call resumes: samples already in samples.jsonl are skipped. ExampleRun runs
// this with a Generator that answers with the reference solutions.
//
// On-policy pairs: run with Gen.N = k and Gen.Temperature > 0, then
//
//	recs, _ := eval.ReadRecords("runs/pairs/gsm8k")
//	pairs, st := eval.BuildPairs(recs, eval.PairOptions{Seed: 1})
//	_ = eval.WritePairs("pairs.jsonl", pairs)
//
// # Run directory format
//
// A run directory holds one benchmark evaluated with one model configuration:
//
//   - samples.jsonl: one Record per finished question (JSON, one line each, appended and fsynced
//     as questions finish; order is completion order). Fields: id, benchmark, prompt ({"messages":
//     [...]} or {"text": "..."}), gold, responses, preds, corrects, tokens (generated tokens per
//     response), response/pred/correct (the first response: the greedy answer when N = 1),
//     maj_pred/maj_correct (majority vote over the responses), question, subject, level.
//   - summary.json: Summary (accuracy with Wilson 95% CI, per subject and level, maj@k and pass@k
//     when k > 1, token counts and tokens/s, the options), written atomically.
//   - summary.md: the same as markdown tables, written atomically.
//
// Several benchmarks of one model go into sibling directories (RUN/math500, RUN/gsm8k, ...);
// `bpo compare` accepts either kind of directory.
package eval
