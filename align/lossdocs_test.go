package align

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// docLossRows returns, for each row of the Markdown tables in path whose header has a
// "hyper-parameters (defaults)" column, the loss name (the row's first code span) and that cell.
func docLossRows(t *testing.T, path string) (names []string, cells map[string]string) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	cells = map[string]string{}
	col := -1
	for i, line := range strings.Split(string(raw), "\n") {
		if !strings.HasPrefix(line, "|") {
			col = -1
			continue
		}
		cols := splitTableRow(line)
		if j := slices.Index(cols, "hyper-parameters (defaults)"); j >= 0 {
			col = j
			continue
		}
		if col < 0 || strings.HasPrefix(line, "|---") {
			continue
		}
		name := strings.Trim(strings.Fields(cols[0])[0], "`")
		if col >= len(cols) {
			t.Fatalf("%s:%d: %d columns, want more than %d", path, i+1, len(cols), col)
		}
		names = append(names, name)
		cells[name] = cols[col]
	}
	return names, cells
}

// splitTableRow splits a Markdown table row at the pipes that are not escaped, trimming the cells.
func splitTableRow(line string) []string {
	var cols []string
	var cell strings.Builder
	line = strings.TrimSpace(line)
	for i := 1; i < len(line); i++ {
		switch {
		case line[i] == '\\' && i+1 < len(line) && line[i+1] == '|':
			cell.WriteString(`\|`)
			i++
		case line[i] == '|':
			cols = append(cols, strings.TrimSpace(cell.String()))
			cell.Reset()
		default:
			cell.WriteByte(line[i])
		}
	}
	return cols
}

// TestLossDocsMatchTable: the loss tables of LOSSES.md and the README list each loss's
// hyper-parameters exactly as the parameter table has them (lossParamsDoc), LOSSES.md covers every
// registered loss, and the sentence naming the losses that accept `divergence` names exactly them.
func TestLossDocsMatchTable(t *testing.T) {
	for _, path := range []string{"LOSSES.md", "../README.md"} {
		names, cells := docLossRows(t, path)
		if len(names) == 0 {
			t.Fatalf("%s: no loss table found", path)
		}
		for _, name := range names {
			if want := lossParamsDoc(name); cells[name] != want {
				t.Errorf("%s: loss %s: hyper-parameters %q, want %q (from lossParamTable)", path, name, cells[name], want)
			}
		}
		if path == "LOSSES.md" {
			if got := slices.Sorted(slices.Values(names)); !slices.Equal(got, LossNames()) {
				t.Errorf("%s lists the losses %v, want every registered loss %v", path, got, LossNames())
			}
		}
	}
	raw, err := os.ReadFile("LOSSES.md")
	if err != nil {
		t.Fatal(err)
	}
	text := strings.Join(strings.Fields(string(raw)), " ")
	m := regexp.MustCompile("accept `divergence` \\(and `divergence_alpha`\\): ([^.]*)\\.").FindStringSubmatch(text)
	if m == nil {
		t.Fatal("LOSSES.md: no sentence naming the losses that accept `divergence`")
	}
	var named []string
	for _, s := range regexp.MustCompile("`([^`]+)`").FindAllStringSubmatch(m[1], -1) {
		named = append(named, s[1])
	}
	if !slices.Equal(named, lossesUsing("divergence")) {
		t.Errorf("LOSSES.md names %v as accepting divergence, want %v", named, lossesUsing("divergence"))
	}
}
