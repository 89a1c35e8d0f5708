package stats

import (
	"bytes"
	"math"
	"testing"
)

func near(a, b, tol float64) bool { return math.Abs(a-b) <= tol }

func TestWilson(t *testing.T) {
	cases := []struct {
		k, n   int
		lo, hi float64
	}{
		{8, 10, 0.4902, 0.9433}, // textbook values
		{0, 10, 0, 0.2775},
		{10, 10, 0.7225, 1},
		{50, 100, 0.4038, 0.5962},
		{0, 0, 0, 1},
	}
	for _, c := range cases {
		lo, hi := Wilson(c.k, c.n, Z95)
		if !near(lo, c.lo, 1e-4) || !near(hi, c.hi, 1e-4) {
			t.Errorf("Wilson(%d,%d) = [%.4f, %.4f], want [%.4f, %.4f]", c.k, c.n, lo, hi, c.lo, c.hi)
		}
	}
}

func TestPassAtK(t *testing.T) {
	cases := []struct {
		n, c, k int
		want    float64
	}{
		{10, 3, 1, 0.3},
		{5, 1, 2, 0.4}, // 1 - C(4,2)/C(5,2)
		{10, 3, 10, 1},
		{8, 0, 4, 0},
		{8, 8, 1, 1},
		{4, 2, 3, 1}, // n-c < k
	}
	for _, c := range cases {
		got, err := PassAtK(c.n, c.c, c.k)
		if err != nil || !near(got, c.want, 1e-12) {
			t.Errorf("PassAtK(%d,%d,%d) = %v, %v; want %v", c.n, c.c, c.k, got, err, c.want)
		}
	}
	for _, bad := range [][3]int{{0, 0, 1}, {3, 4, 1}, {3, 1, 0}, {3, 1, 4}} {
		if _, err := PassAtK(bad[0], bad[1], bad[2]); err == nil {
			t.Errorf("PassAtK%v: want error", bad)
		}
	}
}

func TestMajorityVote(t *testing.T) {
	cases := []struct {
		in   []string
		want string
		n    int
	}{
		{[]string{"3", "4", "3"}, "3", 2},
		{[]string{"4", "3", "3", "4"}, "4", 2}, // tie: first seen
		{[]string{"", "", "7"}, "7", 1},
		{[]string{"", ""}, "", 0},
	}
	for _, c := range cases {
		a, n := MajorityVote(c.in)
		if a != c.want || n != c.n {
			t.Errorf("MajorityVote(%q) = %q,%d; want %q,%d", c.in, a, n, c.want, c.n)
		}
	}
}

func TestMcNemarExact(t *testing.T) {
	cases := []struct {
		b, c int
		want float64
	}{
		{1, 9, 22.0 / 1024},
		{9, 1, 22.0 / 1024},
		{5, 5, 1},
		{0, 0, 1},
		{0, 6, 2.0 / 64},
	}
	for _, c := range cases {
		if got := McNemarExact(c.b, c.c); !near(got, c.want, 1e-12) {
			t.Errorf("McNemarExact(%d,%d) = %v, want %v", c.b, c.c, got, c.want)
		}
	}
	if p := McNemarExact(400, 600); !(p > 0 && p < 1e-9) {
		t.Errorf("McNemarExact(400,600) = %v, want tiny positive", p)
	}
}

func TestBootstrapDiff(t *testing.T) {
	a := []bool{false, false, false, false}
	b := []bool{true, true, true, true}
	d, lo, hi, err := BootstrapDiff(a, b, 200, 1)
	if err != nil || d != 1 || lo != 1 || hi != 1 {
		t.Errorf("all better: %v [%v,%v] %v", d, lo, hi, err)
	}
	// 60 vs 50 correct of 100, paired.
	a, b = make([]bool, 100), make([]bool, 100)
	for i := range 100 {
		a[i] = i < 50
		b[i] = i < 60
	}
	d, lo, hi, err = BootstrapDiff(a, b, 2000, 7)
	if err != nil || !near(d, 0.1, 1e-12) || !(lo > 0.03 && lo < 0.1 && hi > 0.1 && hi < 0.17) {
		t.Errorf("60 vs 50: diff %v CI [%v,%v] %v", d, lo, hi, err)
	}
	if _, _, _, err := BootstrapDiff(a, b[:3], 10, 1); err == nil {
		t.Error("length mismatch: want error")
	}
	if x, y, err := Discordant([]bool{true, false, true}, []bool{false, true, true}); err != nil || x != 1 || y != 1 {
		t.Errorf("Discordant = %d %d %v", x, y, err)
	}
}

func TestTable(t *testing.T) {
	tb := Table{Header: []string{"bench", "acc"}, Align: []byte{'l', 'r'}}
	tb.AddRow("gsm8k", "45.2")
	tb.AddRow("a|b")
	var buf bytes.Buffer
	if err := tb.WriteMarkdown(&buf); err != nil {
		t.Fatal(err)
	}
	want := "| bench |  acc |\n| ----- | ---: |\n| gsm8k | 45.2 |\n| a\\|b  |      |\n"
	if buf.String() != want {
		t.Errorf("table =\n%s\nwant\n%s", buf.String(), want)
	}
	if PValue(0.0004) != "<0.001" || PValue(0.0312) != "0.031" || Pct(0.4523) != "45.2" {
		t.Error("formatting")
	}
}
