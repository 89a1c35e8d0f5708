package align

import (
	"encoding/binary"
	"hash/crc32"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// noisyRun takes n AdamW steps on a noisy quadratic, drawing the noise from rng; it returns the
// parameters after each step.
func noisyRun(t *testing.T, o *AdamW, rng *rand.Rand, p [][]float32, n int) [][]float32 {
	t.Helper()
	var trace [][]float32
	g := [][]float32{make([]float32, len(p[0])), make([]float32, len(p[1]))}
	for step := 0; step < n; step++ {
		for i := range p {
			for j := range p[i] {
				g[i][j] = 2*(p[i][j]-float32(j)) + float32(rng.NormFloat64())
			}
		}
		if err := o.Step(p, g, 0.01); err != nil {
			t.Fatal(err)
		}
		trace = append(trace, append(append([]float32(nil), p[0]...), p[1]...))
	}
	return trace
}

// TestTrainStateResumeIsExact checks that save → load → continue gives bit-identical parameters to
// an uninterrupted run (optimizer moments, step and RNG all restored).
func TestTrainStateResumeIsExact(t *testing.T) {
	shapes := []ParamShape{{"blk.0.attn_q.weight.lora_a", 6}, {"blk.0.attn_q.weight.lora_b", 4}}
	newRun := func() (*AdamW, *rand.PCG, [][]float32) {
		o, err := NewAdamW(AdamWConfig{Beta1: 0.9, Beta2: 0.99, Eps: 1e-8, WeightDecay: 0.1}, shapes)
		if err != nil {
			t.Fatal(err)
		}
		return o, rand.NewPCG(1, 2), [][]float32{make([]float32, 6), make([]float32, 4)}
	}
	o, src, p := newRun()
	full := noisyRun(t, o, rand.New(src), p, 20)

	o, src, p = newRun()
	noisyRun(t, o, rand.New(src), p, 8)
	path := filepath.Join(t.TempDir(), "state.bin")
	st := &TrainState{Step: 8, Epoch: 1, Cursor: 3, Optimizer: o, RNG: src, Meta: map[string]string{"loss": "bpo", "model": "stories260K"}}
	if err := SaveTrainState(path, st); err != nil {
		t.Fatal(err)
	}
	savedP := [][]float32{append([]float32(nil), p[0]...), append([]float32(nil), p[1]...)}
	got, err := LoadTrainState(path)
	if err != nil {
		t.Fatal(err)
	}
	if got.Step != 8 || got.Epoch != 1 || got.Cursor != 3 || got.Meta["loss"] != "bpo" || got.Meta["model"] != "stories260K" {
		t.Fatalf("counters/meta not restored: %+v", got)
	}
	if err := got.Optimizer.CheckShapes(shapes); err != nil {
		t.Fatal(err)
	}
	if got.Optimizer.Steps() != 8 || got.Optimizer.Config() != o.Config() {
		t.Fatalf("optimizer restored as t=%d cfg %+v", got.Optimizer.Steps(), got.Optimizer.Config())
	}
	rest := noisyRun(t, got.Optimizer, rand.New(got.RNG), savedP, 12)
	for i, row := range rest {
		for j, v := range row {
			if v != full[8+i][j] {
				t.Fatalf("step %d value %d: resumed %v, uninterrupted %v", 9+i, j, v, full[8+i][j])
			}
		}
	}
	if err := got.Optimizer.CheckShapes([]ParamShape{{"other", 6}, {"blk.0.attn_q.weight.lora_b", 4}}); err == nil {
		t.Fatal("CheckShapes accepted a different tensor")
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Fatalf("temporary files left behind: %v", entries)
	}
}

// resealed rewrites the trailer of a modified state file so that only the field checks can catch it.
func resealed(b []byte) []byte {
	payload := b[:len(b)-stateTrailer]
	out := append([]byte(nil), payload...)
	out = binary.LittleEndian.AppendUint64(out, uint64(len(payload)))
	return binary.LittleEndian.AppendUint32(out, crc32.Checksum(payload, castagnoli()))
}

func TestLoadTrainStateRejectsBadFiles(t *testing.T) {
	o, err := NewAdamW(DefaultAdamWConfig(), []ParamShape{{"w", 3}})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	good := filepath.Join(dir, "good.bin")
	if err := SaveTrainState(good, &TrainState{Optimizer: o, RNG: rand.NewPCG(3, 4)}); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	flip := append([]byte(nil), data...)
	flip[40] ^= 1
	badVersion := append([]byte(nil), data...)
	badVersion[8] = 9
	negStep := append([]byte(nil), data...)
	negStep[12+7] = 0x80
	tests := []struct {
		name    string
		data    []byte
		wantErr string
	}{
		{"empty", nil, "bad magic"},
		{"magic", append([]byte("GGUF"), data[4:]...), "bad magic"},
		{"truncated", data[:len(data)-5], "truncated"},
		{"flipped bit", flip, "checksum mismatch"},
		{"version", resealed(badVersion), "unsupported state version 9"},
		{"negative step", resealed(negStep), "negative counter"},
		{"trailing bytes", resealed(append(append([]byte(nil), data[:len(data)-stateTrailer]...), 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)), "unexpected bytes"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "_"))
			if err := os.WriteFile(p, tc.data, 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := LoadTrainState(p)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), p) {
				t.Fatalf("error = %v, want it to name %s and contain %q", err, p, tc.wantErr)
			}
		})
	}
}

// FuzzDecodeStatePayload feeds arbitrary payloads to the field parser: it must never panic.
func FuzzDecodeStatePayload(f *testing.F) {
	o, _ := NewAdamW(DefaultAdamWConfig(), []ParamShape{{"w", 2}})
	path := filepath.Join(f.TempDir(), "s.bin")
	if err := SaveTrainState(path, &TrainState{Optimizer: o, RNG: rand.NewPCG(1, 1), Meta: map[string]string{"k": "v"}}); err != nil {
		f.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	f.Add(data[:len(data)-stateTrailer])
	f.Add([]byte(stateMagic))
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := decodeStatePayload(b)
		if err == nil && (st.Optimizer == nil || st.RNG == nil) {
			t.Fatal("nil optimizer or RNG without error")
		}
		if _, err := decodeTrainState(b); err == nil && len(b) < stateTrailer {
			t.Fatal("short input accepted")
		}
	})
}
