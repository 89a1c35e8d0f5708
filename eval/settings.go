package eval

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/bpo-dev/bpo/internal/atomicfile"
)

// SettingsFile holds a run directory's settings (see RunSettings).
const SettingsFile = "settings.json"

// RunSettings are the settings a run directory's records depend on. The first run writes them to
// settings.json; a resumed run must have the same ones, so that a directory never mixes answers
// of two models, prompts or sampling setups. The question selection (--limit, --shard, --id) is
// not part of them: records are per question, and a larger selection extends a run.
type RunSettings struct {
	Benchmark    string   `json:"benchmark"`
	Model        string   `json:"model"`                   // fingerprint of the model file
	Adapters     []string `json:"adapters,omitempty"`      // per adapter: scale and fingerprint
	Prompt       string   `json:"prompt"`                  // prompt format name
	PromptID     string   `json:"prompt_id,omitempty"`     // fingerprint of the prompt's inputs (template, shots)
	ChatTemplate string   `json:"chat_template,omitempty"` // chat template override
	Method       string   `json:"method"`
	N            int      `json:"n"`
	MaxNewTokens int      `json:"max_new_tokens"`
	Temperature  float64  `json:"temperature"`
	TopP         float64  `json:"top_p"`
	TopK         int      `json:"top_k"`
	MinP         float64  `json:"min_p"`
	Seed         uint64   `json:"seed"`
	Stop         []string `json:"stop,omitempty"`
}

// diff names every setting of s that differs from want, as "--flag: was X, now Y".
func (s RunSettings) diff(want RunSettings) []string {
	var out []string
	check := func(flag string, a, b any) {
		if fmt.Sprint(a) != fmt.Sprint(b) {
			out = append(out, fmt.Sprintf("%s: was %v, now %v", flag, a, b))
		}
	}
	check("--benchmark", s.Benchmark, want.Benchmark)
	check("--model (file fingerprint)", s.Model, want.Model)
	check("--adapter (scale and file fingerprint)", s.Adapters, want.Adapters)
	check("--prompt", s.Prompt, want.Prompt)
	check("--prompt-template/--shots (fingerprint)", s.PromptID, want.PromptID)
	check("--template", s.ChatTemplate, want.ChatTemplate)
	check("--method", s.Method, want.Method)
	check("--n", s.N, want.N)
	check("--max-new-tokens", s.MaxNewTokens, want.MaxNewTokens)
	check("--temperature", s.Temperature, want.Temperature)
	check("--top-p", s.TopP, want.TopP)
	check("--top-k", s.TopK, want.TopK)
	check("--min-p", s.MinP, want.MinP)
	check("--seed", s.Seed, want.Seed)
	check("--stop", s.Stop, want.Stop)
	return out
}

// checkSettings writes want to runDir/settings.json when the directory has none, and otherwise
// refuses a run whose settings differ, naming each differing setting.
func checkSettings(runDir string, want RunSettings) error {
	path := filepath.Join(runDir, SettingsFile)
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		b, err := json.MarshalIndent(want, "", "  ")
		if err != nil {
			return err
		}
		return atomicfile.Write(path, append(b, '\n'))
	}
	if err != nil {
		return err
	}
	var have RunSettings
	if err := json.Unmarshal(data, &have); err != nil {
		return fmt.Errorf("%s: %w (delete it only if the directory's samples match this run's settings)", path, err)
	}
	if d := have.diff(want); len(d) > 0 {
		return fmt.Errorf(
			"%s was started with other settings; resume with the same ones or use a new directory:\n  %s",
			runDir,
			strings.Join(d, "\n  "),
		)
	}
	return nil
}

// fingerprintChunk is how much of each end of a file FileFingerprint hashes.
const fingerprintChunk = 4 << 20

// FileFingerprint identifies a file's content cheaply, also for multi-gigabyte models: a SHA-256 of
// its size and its first and last 4 MiB (the GGUF header, and the last tensors' data).
func FileFingerprint(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return "", err
	}
	h := sha256.New()
	binary.Write(h, binary.LittleEndian, st.Size())
	if _, err := io.Copy(h, io.LimitReader(f, fingerprintChunk)); err != nil {
		return "", fmt.Errorf("fingerprint %s: %w", path, err)
	}
	if tail := st.Size() - fingerprintChunk; tail > fingerprintChunk {
		if _, err := io.Copy(h, io.NewSectionReader(f, tail, fingerprintChunk)); err != nil {
			return "", fmt.Errorf("fingerprint %s: %w", path, err)
		}
	}
	return hex.EncodeToString(h.Sum(nil))[:16], nil
}

// settingsOf derives the run settings from Run's arguments.
func settingsOf(benchmark string, opts Options) RunSettings {
	return RunSettings{
		Benchmark: benchmark, Model: opts.ModelID, Adapters: slices.Clone(opts.AdapterIDs),
		Prompt: opts.PromptName, PromptID: opts.PromptID, ChatTemplate: opts.ChatTemplate, Method: string(opts.Method),
		N: opts.Gen.N, MaxNewTokens: opts.Gen.MaxNewTokens, Temperature: opts.Gen.Temperature, TopP: opts.Gen.TopP,
		TopK: opts.Gen.TopK, MinP: opts.Gen.MinP, Seed: opts.Gen.Seed, Stop: slices.Clone(opts.Gen.Stop),
	}
}
