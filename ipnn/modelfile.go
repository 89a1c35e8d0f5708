package ipnn

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"

	"github.com/bpo-dev/bpo/internal/atomicfile"
)

// modelMagic starts every saved model file.
const modelMagic = "BPO-IPNN-MODEL/1\n"

// modelHeader is the JSON header of a saved model; tensors follow as little-endian data:
// every MLP parameter (float32, W0 B0 W1 B1 ...), then per label set the observation
// numerator (float32, L×K) and denominator (float64, K).
type modelHeader struct {
	Config ModelConfig `json:"config"`
	Input  int         `json:"input"`
	Widths []int       `json:"widths"`
}

// Save writes m to path atomically (temporary file in the same directory, then rename).
func (m *Model) Save(path string) error {
	var buf bytes.Buffer
	hdr, err := json.Marshal(modelHeader{Config: m.Cfg, Input: m.in, Widths: m.Net.Widths()})
	if err != nil {
		return fmt.Errorf("save model: %w", err)
	}
	buf.WriteString(modelMagic)
	binary.Write(&buf, binary.LittleEndian, uint32(len(hdr)))
	buf.Write(hdr)
	for _, p := range m.Net.Params() {
		binary.Write(&buf, binary.LittleEndian, p)
	}
	if m.Head != nil {
		for _, t := range m.Head.Tables() {
			binary.Write(&buf, binary.LittleEndian, t.Num)
			binary.Write(&buf, binary.LittleEndian, t.Den)
		}
	}
	return atomicfile.Write(path, buf.Bytes())
}

// LoadModel reads a model saved by Save.
func LoadModel(path string) (*Model, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("load model: %w", err)
	}
	defer f.Close()
	r := bufio.NewReader(f)
	magic := make([]byte, len(modelMagic))
	if _, err := io.ReadFull(r, magic); err != nil || string(magic) != modelMagic {
		return nil, fmt.Errorf(
			"load model %s: not a bpo IPNN model file (magic %q expected)",
			path,
			modelMagic[:len(modelMagic)-1],
		)
	}
	var n uint32
	if err := binary.Read(r, binary.LittleEndian, &n); err != nil || n > 1<<20 {
		return nil, fmt.Errorf("load model %s: bad header length", path)
	}
	raw := make([]byte, n)
	if _, err := io.ReadFull(r, raw); err != nil {
		return nil, fmt.Errorf("load model %s: header truncated: %w", path, err)
	}
	var hdr modelHeader
	if err := json.Unmarshal(raw, &hdr); err != nil {
		return nil, fmt.Errorf("load model %s: header JSON: %w", path, err)
	}
	if hdr.Input <= 0 || hdr.Input > 1<<24 {
		return nil, fmt.Errorf("load model %s: header field input = %d, want 1..%d", path, hdr.Input, 1<<24)
	}
	m, err := NewModel(hdr.Config, hdr.Input, rand.New(rand.NewPCG(0, 0)))
	if err != nil {
		return nil, fmt.Errorf("load model %s: header config: %w", path, err)
	}
	if got := m.Net.Widths(); fmt.Sprint(got) != fmt.Sprint(hdr.Widths) {
		return nil, fmt.Errorf("load model %s: header widths %v do not match config (%v)", path, hdr.Widths, got)
	}
	for i, p := range m.Net.Params() {
		if err := binary.Read(r, binary.LittleEndian, p); err != nil {
			return nil, fmt.Errorf("load model %s: parameter tensor %d (%d floats): %w", path, i, len(p), err)
		}
		for _, v := range p {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				return nil, fmt.Errorf("load model %s: parameter tensor %d holds a non-finite value", path, i)
			}
		}
	}
	if m.Head != nil {
		tabs := make([]ObsTable, len(m.Head.sets))
		for i, st := range m.Head.sets {
			tabs[i] = ObsTable{Num: make([]float32, st.ls.Classes*st.space.size), Den: make([]float64, st.space.size)}
			if err := binary.Read(r, binary.LittleEndian, tabs[i].Num); err != nil {
				return nil, fmt.Errorf(
					"load model %s: observation numerator of label set %q: %w",
					path,
					st.ls.Name,
					err,
				)
			}
			if err := binary.Read(r, binary.LittleEndian, tabs[i].Den); err != nil {
				return nil, fmt.Errorf(
					"load model %s: observation denominator of label set %q: %w",
					path,
					st.ls.Name,
					err,
				)
			}
		}
		if err := m.Head.SetTables(tabs); err != nil {
			return nil, fmt.Errorf("load model %s: %w", path, err)
		}
	}
	if _, err := r.ReadByte(); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("load model %s: trailing data after the last tensor", path)
	}
	return m, nil
}
