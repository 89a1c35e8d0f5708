package ipnn

import (
	"fmt"
	"math/rand/v2"
)

// NumberTask is the 10^digits-category task: a sample is `digits` digit images side by
// side and its class is the decimal number they show (first image = most significant).
type NumberTask struct {
	Train, Test *Dataset
	// UnseenTest is how many test numbers never occur among the training numbers
	// (it equals Test.Len(): test numbers are redrawn until they are unseen).
	UnseenTest int
	// DistinctTrain is the number of distinct training numbers.
	DistinctTrain int
}

// NewNumberTask builds training numbers from `passes` random groupings of the training
// images (each image used once per pass) and test numbers from one grouping of the
// test images. Test numbers that occur in training are redrawn by swapping images.
func NewNumberTask(trainImages, testImages *Dataset, digits, passes int, rng *rand.Rand) (*NumberTask, error) {
	if digits < 1 || digits > 18 {
		return nil, fmt.Errorf("number task: digits = %d, want 1..18", digits)
	}
	if passes < 1 {
		return nil, fmt.Errorf("number task: passes = %d, want >= 1", passes)
	}
	if trainImages.Classes != 10 || testImages.Classes != 10 {
		return nil, fmt.Errorf(
			"number task: needs digit images (10 classes), got %d and %d",
			trainImages.Classes,
			testImages.Classes,
		)
	}
	classes := 1
	for i := 0; i < digits; i++ {
		classes *= 10
	}
	mk := func(img *Dataset, passes int) *Dataset {
		per := img.Len() / digits
		d := &Dataset{Name: fmt.Sprintf("%s-%d-digit-numbers", img.Name, digits), Dim: img.Dim * digits,
			Classes: classes, Base: img, Group: digits}
		for p := 0; p < passes; p++ {
			perm := rng.Perm(img.Len())
			for i := 0; i < per; i++ {
				var y int64
				for j := 0; j < digits; j++ {
					im := perm[i*digits+j]
					d.Parts = append(d.Parts, int32(im))
					y = y*10 + img.Y[im]
				}
				d.Y = append(d.Y, y)
			}
		}
		return d
	}
	t := &NumberTask{Train: mk(trainImages, passes), Test: mk(testImages, 1)}
	seen := make(map[int64]bool, t.Train.Len())
	for _, y := range t.Train.Y {
		seen[y] = true
	}
	t.DistinctTrain = len(seen)
	// Redraw colliding test numbers by swapping one of their images with another test
	// number's; repeat whole passes until no test number was seen in training.
	for pass := 0; ; pass++ {
		collisions := 0
		for i, y := range t.Test.Y {
			if !seen[y] {
				continue
			}
			collisions++
			o := rng.IntN(t.Test.Len())
			a, b := &t.Test.Parts[i*digits+rng.IntN(digits)], &t.Test.Parts[o*digits+rng.IntN(digits)]
			*a, *b = *b, *a
			t.Test.Y[i] = number(testImages, t.Test.Parts[i*digits:(i+1)*digits])
			t.Test.Y[o] = number(testImages, t.Test.Parts[o*digits:(o+1)*digits])
		}
		if collisions == 0 {
			break
		}
		if pass > 100 {
			return nil, fmt.Errorf("number task: cannot draw test numbers unseen in training")
		}
	}
	for _, y := range t.Test.Y {
		if !seen[y] {
			t.UnseenTest++
		}
	}
	return t, nil
}

func number(img *Dataset, parts []int32) int64 {
	var y int64
	for _, p := range parts {
		y = y*10 + img.Y[p]
	}
	return y
}

// DigitLabelSets ties decimal digit labels to the split groups of each digit image: with
// perImage groups per image, label set j (digit j, most significant first) is tied to
// groups j*perImage .. j*perImage+perImage-1. P(y | joint) is then the product of the
// per-digit tables P(y^j | a^j), so the 10^digits label space is never built.
func DigitLabelSets(digits, perImage int) []LabelSet {
	sets := make([]LabelSet, digits)
	for j := range sets {
		g := make([]int, perImage)
		for i := range g {
			g[i] = j*perImage + i
		}
		sets[j] = LabelSet{Name: fmt.Sprintf("digit%d", j+1), Groups: g, Classes: 10, Base: 10, Pos: digits - 1 - j}
	}
	return sets
}
