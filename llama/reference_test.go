package llama

import (
	"fmt"
	"math"
	"os"
	"testing"

	"github.com/bpo-dev/bpo/ggml"
)

// refModel is an independent pure-Go forward pass of the llama / qwen2 architectures, written from the
// architecture definitions (not from llama.cpp's code), used to check llama.cpp's and our graphs' log-probs.
type refModel struct {
	arch                   string
	nEmbd, nHead, nKV, nFF int
	nLayer, nVocab         int
	eps, ropeBase          float64
	neox                   bool
	freqFactors            []float32
	embd, outNorm, out     []float32
	layers                 []refLayer
}

type refLayer struct {
	attnNorm, q, k, v, o, ffnNorm, gate, up, down []float32
	qb, kb, vb                                    []float32
}

func loadRefModel(t testing.TB, path string) *refModel {
	t.Helper()
	f, err := ggml.ReadGGUF(path)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	get := func(name string, optional bool) []float32 {
		tt, ok := f.Tensor(name)
		if !ok {
			if optional {
				return nil
			}
			t.Fatalf("%s: no tensor %s", path, name)
		}
		v, err := ggml.ToFloat32(tt.Type, raw[tt.Offset:tt.Offset+tt.Size], tt.Elements())
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	arch := f.Arch()
	u := func(k string) int { v, _ := f.Uint(arch + k); return int(v) }
	m := &refModel{arch: arch, nEmbd: u(".embedding_length"), nHead: u(".attention.head_count"), nKV: u(".attention.head_count_kv"),
		nFF: u(".feed_forward_length"), nLayer: u(".block_count"), neox: arch == "qwen2"}
	if m.nKV == 0 {
		m.nKV = m.nHead
	}
	m.eps, _ = f.Float(arch + ".attention.layer_norm_rms_epsilon")
	m.ropeBase = 10000
	if v, ok := f.Float(arch + ".rope.freq_base"); ok {
		m.ropeBase = v
	}
	m.embd = get("token_embd.weight", false)
	m.nVocab = len(m.embd) / m.nEmbd
	m.outNorm = get("output_norm.weight", false)
	m.out = get("output.weight", true)
	if m.out == nil {
		m.out = m.embd
	}
	m.freqFactors = get("rope_freqs.weight", true)
	for l := 0; l < m.nLayer; l++ {
		p := fmt.Sprintf("blk.%d.", l)
		m.layers = append(m.layers, refLayer{
			attnNorm: get(p+"attn_norm.weight", false), q: get(p+"attn_q.weight", false), k: get(p+"attn_k.weight", false),
			v: get(p+"attn_v.weight", false), o: get(p+"attn_output.weight", false), ffnNorm: get(p+"ffn_norm.weight", false),
			gate: get(p+"ffn_gate.weight", false), up: get(p+"ffn_up.weight", false), down: get(p+"ffn_down.weight", false),
			qb: get(p+"attn_q.bias", true), kb: get(p+"attn_k.bias", true), vb: get(p+"attn_v.bias", true),
		})
	}
	return m
}

// matvec computes y = W x for a ggml weight with ne = [n_in, n_out] (row-major n_out x n_in).
func matvec(w []float32, x []float64, nOut int) []float64 {
	nIn := len(x)
	y := make([]float64, nOut)
	for o := 0; o < nOut; o++ {
		row := w[o*nIn : (o+1)*nIn]
		s := 0.0
		for i, v := range row {
			s += float64(v) * x[i]
		}
		y[o] = s
	}
	return y
}

func rmsNorm(x []float64, w []float32, eps float64) []float64 {
	ss := 0.0
	for _, v := range x {
		ss += v * v
	}
	scale := 1 / math.Sqrt(ss/float64(len(x))+eps)
	out := make([]float64, len(x))
	for i, v := range x {
		out[i] = v * scale * float64(w[i])
	}
	return out
}

func addBias(x []float64, b []float32) {
	for i := range b {
		x[i] += float64(b[i])
	}
}

// rope rotates each head of x (nHeads x headDim) for position pos.
func (m *refModel) rope(x []float64, nHeads, pos int) {
	hd := m.nEmbd / m.nHead
	for h := 0; h < nHeads; h++ {
		v := x[h*hd : (h+1)*hd]
		for i := 0; i < hd/2; i++ {
			theta := float64(pos) * math.Pow(m.ropeBase, -float64(2*i)/float64(hd))
			if m.freqFactors != nil {
				theta /= float64(m.freqFactors[i])
			}
			a, b := i*2, i*2+1
			if m.neox {
				a, b = i, i+hd/2
			}
			c, s := math.Cos(theta), math.Sin(theta)
			v[a], v[b] = v[a]*c-v[b]*s, v[a]*s+v[b]*c
		}
	}
}

// logProbs returns log p(toks[i] | toks[:i]) for i >= 1.
func (m *refModel) logProbs(toks []Token) []float64 {
	hd := m.nEmbd / m.nHead
	n := len(toks)
	hs := make([][]float64, n)
	for i, t := range toks {
		h := make([]float64, m.nEmbd)
		for j := range h {
			h[j] = float64(m.embd[int(t)*m.nEmbd+j])
		}
		hs[i] = h
	}
	for _, L := range m.layers {
		qs, ks, vs := make([][]float64, n), make([][]float64, n), make([][]float64, n)
		for i := range hs {
			x := rmsNorm(hs[i], L.attnNorm, m.eps)
			qs[i] = matvec(L.q, x, m.nHead*hd)
			ks[i] = matvec(L.k, x, m.nKV*hd)
			vs[i] = matvec(L.v, x, m.nKV*hd)
			addBias(qs[i], L.qb)
			addBias(ks[i], L.kb)
			addBias(vs[i], L.vb)
			m.rope(qs[i], m.nHead, i)
			m.rope(ks[i], m.nKV, i)
		}
		for i := range hs {
			att := make([]float64, m.nHead*hd)
			for h := 0; h < m.nHead; h++ {
				kvh := h / (m.nHead / m.nKV)
				scores := make([]float64, i+1)
				mx := math.Inf(-1)
				for j := 0; j <= i; j++ {
					s := 0.0
					for d := 0; d < hd; d++ {
						s += qs[i][h*hd+d] * ks[j][kvh*hd+d]
					}
					scores[j] = s / math.Sqrt(float64(hd))
					mx = math.Max(mx, scores[j])
				}
				z := 0.0
				for j := range scores {
					scores[j] = math.Exp(scores[j] - mx)
					z += scores[j]
				}
				for j := range scores {
					for d := 0; d < hd; d++ {
						att[h*hd+d] += scores[j] / z * vs[j][kvh*hd+d]
					}
				}
			}
			o := matvec(L.o, att, m.nEmbd)
			for j := range o {
				hs[i][j] += o[j]
			}
			x := rmsNorm(hs[i], L.ffnNorm, m.eps)
			g := matvec(L.gate, x, m.nFF)
			up := matvec(L.up, x, m.nFF)
			for j := range g {
				g[j] = g[j] / (1 + math.Exp(-g[j])) * up[j]
			}
			d := matvec(L.down, g, m.nEmbd)
			for j := range d {
				hs[i][j] += d[j]
			}
		}
	}
	out := make([]float64, 0, n-1)
	for i := 0; i < n-1; i++ {
		x := rmsNorm(hs[i], m.outNorm, m.eps)
		logits := matvec(m.out, x, m.nVocab)
		mx := math.Inf(-1)
		for _, l := range logits {
			mx = math.Max(mx, l)
		}
		z := 0.0
		for _, l := range logits {
			z += math.Exp(l - mx)
		}
		out = append(out, logits[toks[i+1]]-mx-math.Log(z))
	}
	return out
}
