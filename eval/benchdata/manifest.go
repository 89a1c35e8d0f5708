package benchdata

// Provenance of the embedded files. The JSONL files are those of Qwen2.5-Math's evaluation
// (https://github.com/QwenLM/Qwen2.5-Math, evaluation/data/<benchmark>/<split>.jsonl); Source
// names the original publication of each set.
const (
	qwenEval   = "Qwen2.5-Math evaluation data (https://github.com/QwenLM/Qwen2.5-Math, evaluation/data/"
	licenseMIT = "MIT"
	licenseMAA = "competition problems of the Mathematical Association of America; no licence stated by the source"
)

// manifest lists the embedded sets (read-only): sizes and SHA-256 are of the original files.
var manifest = []Set{
	{Benchmark: "aime24", Split: "test", Rows: 30, Bytes: 156944,
		SHA256:  "af2b8bd2aa911b6333ad0df32f3ca05c7ae8ed10f1731f4372c8ae26990bf7ac",
		Source:  qwenEval + "aime24/test.jsonl): AIME 2024 I and II",
		License: licenseMAA},
	{Benchmark: "amc23", Split: "test", Rows: 40, Bytes: 27631,
		SHA256:  "43707e1ca784602d8479de24ee8ce36609dbebc46dd152b0b12a46611aa898a4",
		Source:  qwenEval + "amc23/test.jsonl): AMC 12 2023, each row linking its AoPS wiki page",
		License: licenseMAA},
	{Benchmark: "gsm8k", Split: "test", Rows: 1319, Bytes: 749738,
		SHA256:  "3730d312f6e3440559ace48831e51066acaca737f6eabec99bccb9e4b3c39d14",
		Source:  "GSM8K (https://github.com/openai/grade-school-math, grade_school_math/data/test.jsonl)",
		License: licenseMIT},
	{Benchmark: "gsm8k", Split: "train", Rows: 7473, Bytes: 4166206,
		SHA256:  "17f347dc51477c50d4efb83959dbb7c56297aba886e5544ee2aaed3024813465",
		Source:  "GSM8K (https://github.com/openai/grade-school-math, grade_school_math/data/train.jsonl)",
		License: licenseMIT},
	{Benchmark: "math", Split: "test", Rows: 5000, Bytes: 4101364,
		SHA256:  "3371949f33dd702d04b43fddd7d53a028de0aaca0e76abb1b875a050297b3aa4",
		Source:  qwenEval + "math/test.jsonl): the MATH test split, Hendrycks et al. 2021 (https://github.com/hendrycks/math)",
		License: licenseMIT},
	{Benchmark: "math500", Split: "test", Rows: 500, Bytes: 446564,
		SHA256:  "35dc41080a3680858b27fa7e0533d2d547825316fc5dafe5d316f4ccc5a06132",
		Source:  qwenEval + "math500/test.jsonl): MATH-500 of PRM800K (https://github.com/openai/prm800k, prm800k/math_splits/test.jsonl)",
		License: licenseMIT},
	{Benchmark: "minerva_math", Split: "test", Rows: 272, Bytes: 247267,
		SHA256:  "0e656b430d3a0a1dab6aa853f453ba3805e28e2cabe4fc72486a897cc09d8ba2",
		Source:  qwenEval + "minerva_math/test.jsonl): the OCW Courses problems of Minerva, Lewkowycz et al. 2022, from MIT OpenCourseWare",
		License: "CC BY-NC-SA 4.0 (MIT OpenCourseWare)"},
	{Benchmark: "olympiadbench", Split: "test", Rows: 675, Bytes: 1493870,
		SHA256:  "bb8c1e38a16ea9eacb77530315a674d883f267fbff79183effc53681b4fcc416",
		Source:  qwenEval + "olympiadbench/test.jsonl): the English text-only math problems of OlympiadBench, He et al. 2024 (https://github.com/OpenBMB/OlympiadBench)",
		License: "Apache-2.0"},
}
