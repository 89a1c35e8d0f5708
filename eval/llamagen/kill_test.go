package llamagen

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"syscall"
	"testing"
	"time"

	"github.com/bpo-dev/bpo/eval"
	"github.com/bpo-dev/bpo/eval/bench"
)

// sampledOptions is a sampled run (temperature 1, top-p 0.95, 2 samples per question).
func sampledOptions() eval.Options {
	return eval.Options{Prompter: bench.FewShotPrompter{}, PromptName: bench.FormatGSM8KFewShot, Method: "flexible",
		Gen: eval.GenParams{N: 2, MaxNewTokens: 16, Temperature: 1, TopP: 0.95, Seed: 42}, BatchSize: 2}
}

func sampledQuestions(t testing.TB) []bench.Sample {
	t.Helper()
	samples, err := bench.LoadEmbedded("gsm8k", "test")
	if err != nil {
		t.Fatal(err)
	}
	return samples[:12]
}

// TestMain runs a sampled eval into BPO_LLAMAGEN_KILL_DIR when set (the child process of
// TestSampledRunKillAndResume, slowed down so that it can be killed midway), else the tests.
func TestMain(m *testing.M) {
	if dir := os.Getenv("BPO_LLAMAGEN_KILL_DIR"); dir != "" {
		t := &testing.T{}
		opts := sampledOptions()
		opts.OnProgress = func(done, total int) { time.Sleep(50 * time.Millisecond) }
		eval.Run(context.Background(), newGenerator(t, 2), "gsm8k", sampledQuestions(t), opts, dir)
		os.Exit(4) // not killed in time
	}
	os.Exit(m.Run())
}

// TestSampledRunKillAndResume: a sampled eval SIGKILLed twice at different points and then resumed
// equals the uninterrupted run record for record (each question samples from its own random stream).
func TestSampledRunKillAndResume(t *testing.T) {
	samples := sampledQuestions(t)
	dir := t.TempDir()
	path := filepath.Join(dir, eval.SamplesFile)
	for _, killAfter := range []int{2, 7} {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "BPO_LLAMAGEN_KILL_DIR="+dir)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(60 * time.Second)
		for {
			b, _ := os.ReadFile(path)
			if bytes.Count(b, []byte("\n")) >= killAfter {
				break
			}
			if time.Now().After(deadline) {
				cmd.Process.Kill()
				t.Fatalf("child made no progress to %d records", killAfter)
			}
			time.Sleep(2 * time.Millisecond)
		}
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		cmd.Wait()
	}
	partial, err := eval.ReadRecords(dir)
	if err != nil || len(partial) < 7 || len(partial) >= len(samples) {
		t.Fatalf("after the kills: %d records, %v", len(partial), err)
	}
	if _, err := eval.Run(context.Background(), newGenerator(t, 2), "gsm8k", samples, sampledOptions(), dir); err != nil {
		t.Fatal(err)
	}
	ref := t.TempDir()
	if _, err := eval.Run(context.Background(), newGenerator(t, 2), "gsm8k", samples, sampledOptions(), ref); err != nil {
		t.Fatal(err)
	}
	got, want := byID(t, dir), byID(t, ref)
	if len(got) != len(samples) || len(want) != len(samples) {
		t.Fatalf("%d and %d records", len(got), len(want))
	}
	differ := 0
	for id, w := range want {
		if !reflect.DeepEqual(w.Responses, got[id].Responses) || !reflect.DeepEqual(w.Preds, got[id].Preds) {
			t.Errorf("%s: resumed %q, uninterrupted %q", id, got[id].Responses, w.Responses)
		}
		if w.Responses[0] != w.Responses[1] {
			differ++
		}
	}
	if differ == 0 {
		t.Fatal("the two samples of every question are equal: not a sampled run")
	}
	t.Logf("killed after %d records, resumed: %d questions equal the uninterrupted run (%d with differing samples)", len(partial), len(want), differ)
}

func byID(t *testing.T, dir string) map[string]eval.Record {
	t.Helper()
	recs, err := eval.ReadRecords(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]eval.Record{}
	for _, r := range recs {
		out[r.ID] = r
	}
	return out
}
