package ipnn

import (
	"bytes"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"strings"
)

// Report writes the markdown results table for the run directories and, when
// clusterGroup > 0, the clustering report of that split group (1-based).
func Report(w io.Writer, dirs []string, clusterGroup int) error {
	if err := WriteReport(w, dirs); err != nil {
		return err
	}
	if clusterGroup <= 0 {
		return nil
	}
	fmt.Fprintln(w)
	return ReportClusters(w, dirs, dirs, clusterGroup)
}

// ReportClusters writes the clustering report of split group clusterGroup (1-based) for
// every directory whose runs recorded group states, headed by the directory's name in names.
func ReportClusters(w io.Writer, dirs, names []string, clusterGroup int) error {
	for i, d := range dirs {
		if runs, err := ReadRuns(d); err != nil || len(runs[0].States) == 0 {
			continue // not an IPNN run directory with recorded states
		}
		rep, err := Clusters(d, clusterGroup-1)
		if err != nil {
			return err
		}
		if i > 0 {
			fmt.Fprintln(w)
		}
		fmt.Fprintf(w, "#### Clusters: %s\n\n", filepath.ToSlash(names[i]))
		rep.WriteClusters(w)
	}
	return nil
}

const (
	blockOpen  = "<!-- ipnn-report:"
	blockClose = "<!-- ipnn-report:end -->"
)

// UpdateReportBlocks regenerates every report block of a markdown document. A block is
//
//	<!-- ipnn-report: [--clusters G] DIR... -->
//	(generated text)
//	<!-- ipnn-report:end -->
//
// with both markers at the start of a line (a marker quoted inside text is not a block),
// and its text is replaced by the results table of the named directories (resolved
// relative to root), or with --clusters G by their clustering reports of split group G. It returns the new document and the number of blocks.
func UpdateReportBlocks(doc []byte, root string) ([]byte, int, error) {
	var out bytes.Buffer
	rest := doc
	n := 0
	for {
		i := lineStartIndex(rest, blockOpen, len(rest) == len(doc))
		if i < 0 {
			out.Write(rest)
			return out.Bytes(), n, nil
		}
		line := 1 + bytes.Count(doc[:len(doc)-len(rest)+i], []byte("\n"))
		eol := bytes.Index(rest[i:], []byte("-->"))
		if eol < 0 {
			return nil, n, fmt.Errorf("line %d: report block opener is not closed with -->", line)
		}
		spec := strings.TrimSpace(string(rest[i+len(blockOpen) : i+eol]))
		if spec == "end" {
			return nil, n, fmt.Errorf("line %d: %s without an opening block", line, blockClose)
		}
		dirs, group, err := parseBlockSpec(spec)
		if err != nil {
			return nil, n, fmt.Errorf("line %d: %w", line, err)
		}
		bodyStart := i + eol + len("-->")
		j := lineStartIndex(rest[bodyStart:], blockClose, false)
		if j < 0 {
			return nil, n, fmt.Errorf("line %d: report block has no %s", line, blockClose)
		}
		paths := make([]string, len(dirs))
		for k := range dirs {
			paths[k] = filepath.Join(root, dirs[k])
		}
		var body bytes.Buffer
		report := func() error { return WriteReport(&body, paths) }
		if group > 0 {
			report = func() error { return ReportClusters(&body, paths, dirs, group) }
		}
		if err := report(); err != nil {
			return nil, n, fmt.Errorf("line %d: %w", line, err)
		}
		out.Write(rest[:bodyStart])
		out.WriteString("\n" + body.String())
		out.WriteString(blockClose)
		rest = rest[bodyStart+j+len(blockClose):]
		n++
	}
}

func parseBlockSpec(spec string) (dirs []string, group int, err error) {
	f := strings.Fields(spec)
	for i := 0; i < len(f); i++ {
		if f[i] == "--clusters" {
			if i+1 >= len(f) {
				return nil, 0, fmt.Errorf("report block: --clusters needs a group number")
			}
			if group, err = strconv.Atoi(f[i+1]); err != nil || group < 1 {
				return nil, 0, fmt.Errorf("report block: --clusters %q, want a group number >= 1", f[i+1])
			}
			i++
			continue
		}
		dirs = append(dirs, f[i])
	}
	if len(dirs) == 0 {
		return nil, 0, fmt.Errorf("report block names no run directory")
	}
	return dirs, group, nil
}

// lineStartIndex returns the index of the first occurrence of marker in b that starts a
// line (at index 0 only when atDocStart), or -1.
func lineStartIndex(b []byte, marker string, atDocStart bool) int {
	if atDocStart && bytes.HasPrefix(b, []byte(marker)) {
		return 0
	}
	i := bytes.Index(b, []byte("\n"+marker))
	if i < 0 {
		return -1
	}
	return i + 1
}
