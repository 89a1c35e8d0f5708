package stats

import (
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// Table is a markdown table. Align holds one of 'l', 'r', 'c' per column (default 'l').
type Table struct {
	Header []string
	Align  []byte
	Rows   [][]string
}

// AddRow appends a row; short rows are padded with empty cells.
func (t *Table) AddRow(cells ...string) { t.Rows = append(t.Rows, cells) }

// WriteMarkdown writes the table with padded columns; "|" in cells is escaped.
func (t *Table) WriteMarkdown(w io.Writer) error {
	ncol := len(t.Header)
	for _, r := range t.Rows {
		ncol = max(ncol, len(r))
	}
	cell := func(r []string, i int) string {
		if i < len(r) {
			return strings.ReplaceAll(strings.ReplaceAll(r[i], "|", `\|`), "\n", " ")
		}
		return ""
	}
	width := make([]int, ncol)
	for i := range width {
		width[i] = 3
		width[i] = max(width[i], utf8.RuneCountInString(cell(t.Header, i)))
		for _, r := range t.Rows {
			width[i] = max(width[i], utf8.RuneCountInString(cell(r, i)))
		}
	}
	align := func(i int) byte {
		if i < len(t.Align) {
			return t.Align[i]
		}
		return 'l'
	}
	line := func(r []string) string {
		var b strings.Builder
		b.WriteString("|")
		for i := range ncol {
			c := cell(r, i)
			pad := strings.Repeat(" ", width[i]-utf8.RuneCountInString(c))
			if align(i) == 'r' {
				b.WriteString(" " + pad + c + " |")
			} else {
				b.WriteString(" " + c + pad + " |")
			}
		}
		return b.String() + "\n"
	}
	var b strings.Builder
	b.WriteString(line(t.Header))
	b.WriteString("|")
	for i := range ncol {
		dash := strings.Repeat("-", width[i])
		switch align(i) {
		case 'r':
			dash = dash[:len(dash)-1] + ":"
		case 'c':
			dash = ":" + dash[2:] + ":"
		}
		b.WriteString(" " + dash + " |")
	}
	b.WriteString("\n")
	for _, r := range t.Rows {
		b.WriteString(line(r))
	}
	_, err := io.WriteString(w, b.String())
	if err != nil {
		return fmt.Errorf("write table: %w", err)
	}
	return nil
}

// Pct formats a fraction as a percentage with one decimal ("45.2").
func Pct(x float64) string { return fmt.Sprintf("%.1f", 100*x) }

// PValue formats a p-value ("0.031", "<0.001").
func PValue(p float64) string {
	if p < 0.001 {
		return "<0.001"
	}
	return fmt.Sprintf("%.3f", p)
}
