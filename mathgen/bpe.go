package mathgen

import (
	"maps"
	"slices"
	"strings"
)

// spaceMark is SentencePiece's visible space, which llama.cpp's SPM tokenizer puts for every ' '.
const spaceMark = "▁"

// mergeable reports whether a piece may take part in a merge: words (letters, optionally after one
// space mark), runs of '#', and one space mark followed by one operator. Digits are never merged.
func mergeable(piece string) bool {
	rest := strings.TrimPrefix(piece, spaceMark)
	if rest == "" {
		return true // a lone space mark
	}
	if strings.Trim(rest, "#") == "" {
		return rest == piece // "##..." but not "▁#"
	}
	if len(rest) == 1 && strings.ContainsAny(rest, "+-*/=$") {
		return rest != piece
	}
	for _, r := range rest {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			return false
		}
	}
	return true
}

// units splits SentencePiece-escaped text into the chunks merges may not cross: each chunk is a maximal
// mergeable run; everything else (digits, punctuation, newlines) is a chunk of one character.
func units(escaped string) []string {
	var out []string
	cur := ""
	flush := func() {
		if cur != "" {
			out = append(out, cur)
			cur = ""
		}
	}
	for _, r := range escaped {
		ch := string(r)
		switch {
		case ch == spaceMark:
			flush()
			cur = ch
		case mergeable(cur + ch):
			cur += ch
		default:
			flush()
			if mergeable(ch) {
				cur = ch
			} else {
				out = append(out, ch)
			}
		}
	}
	flush()
	return out
}

// escape turns text into what llama.cpp's SPM tokenizer sees: a leading space, spaces as "▁".
func escape(text string) string { return strings.ReplaceAll(" "+text, " ", spaceMark) }

// learnMerges runs byte-pair-encoding training over the word counts: each round merges the most
// frequent adjacent pair (ties: the lexicographically smallest pair) until max merges are made or no
// pair occurs at least minCount times. It returns the merged pieces in order.
func learnMerges(counts map[string]int, max, minCount int) []string {
	type word struct {
		syms  []string
		count int
	}
	keys := slices.Sorted(maps.Keys(counts))
	words := make([]word, 0, len(keys))
	for _, k := range keys {
		var syms []string
		for _, r := range k {
			syms = append(syms, string(r))
		}
		words = append(words, word{syms, counts[k]})
	}
	type pair struct{ a, b string }
	var merges []string
	for len(merges) < max {
		freq := map[pair]int{}
		for _, w := range words {
			for i := 0; i+1 < len(w.syms); i++ {
				freq[pair{w.syms[i], w.syms[i+1]}] += w.count
			}
		}
		var best pair
		bestN := 0
		for p, n := range freq {
			if n > bestN || n == bestN && (p.a+"\x00"+p.b) < (best.a+"\x00"+best.b) {
				best, bestN = p, n
			}
		}
		if bestN < minCount {
			break
		}
		merged := best.a + best.b
		merges = append(merges, merged)
		for wi := range words {
			s := words[wi].syms
			out := s[:0:0]
			for i := 0; i < len(s); i++ {
				if i+1 < len(s) && s[i] == best.a && s[i+1] == best.b {
					out = append(out, merged)
					i++
				} else {
					out = append(out, s[i])
				}
			}
			words[wi].syms = out
		}
	}
	return merges
}
