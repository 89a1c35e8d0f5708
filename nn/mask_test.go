package nn

import (
	"math"
	"testing"
)

// TestChunkMasksWindow checks the causal and sliding-window chunk masks entry by entry: key k is
// visible from query q exactly when k <= q and (no window or q - k < window), in every chunking.
func TestChunkMasksWindow(t *testing.T) {
	for _, c := range []struct{ L, perChunk, window int }{
		{7, 7, 0}, {7, 3, 0}, {7, 7, 3}, {7, 2, 3}, {9, 4, 1}, {5, 5, 8}, // a window longer than the sequence is causal
	} {
		cs := attentionChunks(c.L, 1, 1, c.perChunk*c.L)
		m := chunkMasks(cs, c.window)
		if len(m) != maskElems(cs) {
			t.Fatalf("%+v: %d mask elements, want %d", c, len(m), maskElems(cs))
		}
		for _, ch := range cs {
			for q := ch.q0; q < ch.q1; q++ {
				for k := 0; k < ch.q1; k++ {
					visible := k <= q && (c.window == 0 || q-k < c.window)
					v := m[ch.maskOff+(q-ch.q0)*ch.q1+k]
					if visible != (v == 0) || (!visible && !math.IsInf(float64(v), -1)) {
						t.Errorf("%+v: query %d key %d: mask %v, visible %v", c, q, k, v, visible)
					}
				}
			}
		}
	}
}
