package eval

import (
	"context"
	"encoding/binary"
	"hash/fnv"

	"github.com/bpo-dev/bpo/eval/bench"
)

// GenParams are the sampling settings of a run.
type GenParams struct {
	N            int      `json:"n"`              // completions per prompt (k); 0 means 1
	MaxNewTokens int      `json:"max_new_tokens"` // 0: generator default
	Temperature  float64  `json:"temperature"`    // 0: greedy
	TopP         float64  `json:"top_p,omitempty"`
	TopK         int      `json:"top_k,omitempty"`
	MinP         float64  `json:"min_p,omitempty"`
	Seed         uint64   `json:"seed,omitempty"` // completion j of question ID samples with SampleSeed(Seed, ID, j)
	Stop         []string `json:"stop,omitempty"` // extra stop strings (the prompt format adds its own)
}

// GenRequest asks for Params.N completions of one prompt.
type GenRequest struct {
	// ID identifies the question; sampled completions draw from a random stream of (Params.Seed,
	// ID, sample index), so they do not depend on which other questions share a batch.
	ID string
	// Prompt is either chat messages (the generator applies the model's chat template and the
	// generation prompt for the assistant turn) or raw text (used as is, BOS per the model).
	Prompt bench.Prompt
	// Params are the sampling settings; Params.Stop already includes Prompt.Stop. A completion
	// ends at an end-of-generation token, a stop string (excluded from the text) or MaxNewTokens.
	Params GenParams
}

// GenResult is the outcome of one GenRequest.
type GenResult struct {
	Texts        []string // len == Params.N (at least 1) completions, stop strings removed
	Tokens       []int    // generated token count per completion
	StopReasons  []string // optional, per completion: "eos", "stop" or "length" (truncated)
	PromptTokens int      // tokens in the rendered prompt
	Err          error    // a per-request failure (the request is retried on the next run)
}

// Generator produces completions. The llama.cpp bridge implements it: a GenRequest with N
// completions maps to N llama.GenRequests (tokenized chat-template or text prompt, MaxTokens,
// Stop, Sampling{Temperature, TopK, TopP, MinP, Seed: SampleSeed(Seed, ID, j)}), and llama's OnDone per request
// is collected until all N completions of a GenRequest are in.
//
// Generate runs all reqs (in any order, with whatever parallelism the backend has) and calls
// onDone(i, res) exactly once per finished request i; onDone is never called concurrently and
// must be called before Generate returns. Generate returns ctx.Err() when the context is
// cancelled (already finished requests have been reported), or a non-nil error for failures that
// stop the whole batch. Greedy results (Temperature 0) must not depend on how many sequences run
// in parallel.
type Generator interface {
	Generate(ctx context.Context, reqs []GenRequest, onDone func(i int, res GenResult)) error
}

// SampleSeed is the seed of completion sample of question id in a run seeded with seed: a hash of
// all three, so that a question's samples are the same however a run is batched, interrupted,
// resumed or parallelised.
func SampleSeed(seed uint64, id string, sample int) uint64 {
	h := fnv.New64a()
	var b [16]byte
	binary.LittleEndian.PutUint64(b[:8], seed)
	binary.LittleEndian.PutUint64(b[8:], uint64(sample))
	h.Write(b[:])
	h.Write([]byte(id))
	return h.Sum64()
}
