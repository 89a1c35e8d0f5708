package ipnn

import "fmt"

// LabelSet is one degree of a (multi-degree) classification task: a set of labels tied to
// a sub-joint sample space made of some split groups. With Base == 0 the label is the
// sample's class itself; otherwise it is the digit (y / Base^Pos) mod Base of the class,
// e.g. one bit of a binary number (Base 2) or one decimal digit of a 10-digit number.
type LabelSet struct {
	Name    string `json:"name"`
	Groups  []int  `json:"groups"`
	Classes int    `json:"classes"`
	Base    int64  `json:"base,omitempty"`
	Pos     int    `json:"pos,omitempty"`
}

// Label maps a sample's class y to this label set's label.
func (l LabelSet) Label(y int64) int32 {
	if l.Base == 0 {
		return int32(y)
	}
	for i := 0; i < l.Pos; i++ {
		y /= l.Base
	}
	return int32(y % l.Base)
}

func (l LabelSet) validate(s Split) error {
	if len(l.Groups) == 0 {
		return fmt.Errorf("label set %q: no split groups", l.Name)
	}
	seen := map[int]bool{}
	for _, g := range l.Groups {
		if g < 0 || g >= len(s.Sizes) {
			return fmt.Errorf("label set %q: group %d out of range (split has %d groups)", l.Name, g, len(s.Sizes))
		}
		if seen[g] {
			return fmt.Errorf("label set %q: group %d listed twice", l.Name, g)
		}
		seen[g] = true
	}
	if l.Classes < 2 {
		return fmt.Errorf("label set %q: need >= 2 classes, got %d", l.Name, l.Classes)
	}
	if l.Base != 0 && int64(l.Classes) != l.Base {
		return fmt.Errorf("label set %q: digit labels need classes == base, got %d vs %d", l.Name, l.Classes, l.Base)
	}
	js := newJointSpace(s, l.Groups)
	if js.size > 1<<22 {
		return fmt.Errorf(
			"label set %q: sub-joint space has %d points; tie labels to fewer groups (multi-degree) instead",
			l.Name,
			js.size,
		)
	}
	return nil
}

// AllGroups returns the label set of the sample class over the whole joint space.
func AllGroups(s Split, classes int) LabelSet {
	g := make([]int, len(s.Sizes))
	for i := range g {
		g[i] = i
	}
	return LabelSet{Name: "class", Groups: g, Classes: classes}
}
