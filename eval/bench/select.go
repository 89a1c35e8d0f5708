package bench

import (
	"fmt"
	"strconv"
	"strings"
)

// Selection picks a subset of samples. Zero values select everything.
type Selection struct {
	IDs        []string // keep only these ids (in data order); unknown ids are an error
	ShardIndex int      // with ShardCount > 0: keep samples i with i % ShardCount == ShardIndex
	ShardCount int
	Limit      int // keep at most this many (after ids and shard); 0 = no limit
}

// ParseShard parses "i/n" (0 <= i < n).
func ParseShard(s string) (index, count int, err error) {
	a, b, ok := strings.Cut(s, "/")
	if ok {
		index, err = strconv.Atoi(strings.TrimSpace(a))
		if err == nil {
			count, err = strconv.Atoi(strings.TrimSpace(b))
		}
	}
	if !ok || err != nil || count <= 0 || index < 0 || index >= count {
		return 0, 0, fmt.Errorf("shard %q: expected i/n with 0 <= i < n", s)
	}
	return index, count, nil
}

// Select applies sel to samples: ids first, then the shard (by position), then the limit.
func Select(samples []Sample, sel Selection) ([]Sample, error) {
	out := samples
	if len(sel.IDs) > 0 {
		want := map[string]bool{}
		for _, id := range sel.IDs {
			want[id] = true
		}
		out = nil
		for _, s := range samples {
			if want[s.ID] {
				out = append(out, s)
				delete(want, s.ID)
			}
		}
		if len(want) > 0 {
			var missing []string
			for _, id := range sel.IDs {
				if want[id] {
					missing = append(missing, id)
				}
			}
			return nil, fmt.Errorf("select: ids not in the data: %s", strings.Join(missing, ", "))
		}
	}
	if sel.ShardCount > 0 {
		if sel.ShardIndex < 0 || sel.ShardIndex >= sel.ShardCount {
			return nil, fmt.Errorf("select: shard %d/%d out of range", sel.ShardIndex, sel.ShardCount)
		}
		var sh []Sample
		for i, s := range out {
			if i%sel.ShardCount == sel.ShardIndex {
				sh = append(sh, s)
			}
		}
		out = sh
	}
	if sel.Limit < 0 {
		return nil, fmt.Errorf("select: negative limit %d", sel.Limit)
	}
	if sel.Limit > 0 && len(out) > sel.Limit {
		out = out[:sel.Limit]
	}
	return out, nil
}
