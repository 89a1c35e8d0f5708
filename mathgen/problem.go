package mathgen

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
)

// Levels bound the number of arithmetic steps of a problem.
const (
	MinLevel = 1
	MaxLevel = 4
	// DefaultMaxValue bounds every intermediate and final result (exclusive) unless Config.MaxValue is set.
	DefaultMaxValue = 1000
	// minMaxValue is the smallest bound that leaves room for every story opening.
	minMaxValue = 100
)

// Problem is one generated word problem. Its JSON form is GSM8K's row shape plus "level" and "id":
// "answer" is the worked solution ending in "#### N".
type Problem struct {
	Question string `json:"question"`
	Answer   string `json:"answer"`
	Level    int    `json:"level"`
	ID       string `json:"id"`
}

// FinalAnswer returns the number after the last "####" of the solution, or "" if there is none.
func (p Problem) FinalAnswer() string {
	i := strings.LastIndex(p.Answer, "####")
	if i < 0 {
		return ""
	}
	return strings.TrimSpace(p.Answer[i+4:])
}

// story accumulates one problem: its sentences, solution lines and the running quantity.
type story struct {
	rng      *rand.Rand
	who      person
	unit     string // plural noun of the running quantity ("apples", "dollars")
	thing    noun   // the counted thing (inventory stories)
	money    bool
	limit    int // every result stays below this
	value    int
	ops      int
	question []string
	solution []string
	final    bool // the question has been asked
}

// event is one sentence of a story. cost is its number of arithmetic steps; try returns false (changing
// nothing) when it does not fit the current quantity. final events ask the question themselves.
type event struct {
	cost  int
	final bool
	try   func(s *story) bool
}

func (s *story) intn(lo, hi int) int { return lo + s.rng.IntN(hi-lo+1) }

func (s *story) say(sentence string)  { s.question = append(s.question, sentence) }
func (s *story) line(solution string) { s.solution = append(s.solution, solution) }

// He is the capitalised subject pronoun.
func (s *story) He() string { return capital(s.who.subj) }

func capital(w string) string { return strings.ToUpper(w[:1]) + w[1:] }

// newProblem generates one problem with exactly level arithmetic steps and every result below limit.
func newProblem(rng *rand.Rand, level, limit int) (Problem, error) {
	if level < MinLevel || level > MaxLevel {
		return Problem{}, fmt.Errorf("level %d outside %d..%d", level, MinLevel, MaxLevel)
	}
	if limit < minMaxValue {
		return Problem{}, fmt.Errorf("max value %d below %d", limit, minMaxValue)
	}
	for attempt := 0; attempt < 100; attempt++ {
		s := &story{rng: rng, who: people[rng.IntN(len(people))], limit: limit}
		if rng.IntN(10) < 3 {
			s.money, s.unit = true, "dollars"
		} else {
			s.thing = things[rng.IntN(len(things))]
			s.unit = s.thing.many
		}
		if s.build(level) {
			return s.problem(level), nil
		}
	}
	return Problem{}, fmt.Errorf("no level-%d story fits the number limits after 100 attempts", level)
}

// build writes the start and the events of a story with level steps; false if it got stuck.
func (s *story) build(level int) bool {
	starts, events := inventoryStarts, inventoryEvents
	if s.money {
		starts, events = moneyStarts, moneyEvents
	}
	if !s.pick(starts, level) {
		return false
	}
	for s.ops < level {
		if !s.pick(events, level) {
			return false
		}
	}
	if !s.final {
		s.say(fmt.Sprintf("How many %s does %s have now?", s.unit, s.who.name))
	}
	return true
}

// pick applies one randomly chosen event that fits the remaining steps; false if none fits.
func (s *story) pick(list []event, level int) bool {
	left := level - s.ops
	order := s.rng.Perm(len(list))
	for _, i := range order {
		e := list[i]
		if e.cost > left || (e.final && e.cost != left) {
			continue
		}
		if e.try(s) {
			s.ops += e.cost
			s.final = s.final || e.final
			return true
		}
	}
	return false
}

func (s *story) problem(level int) Problem {
	sol := strings.Join(s.solution, "\n")
	if sol != "" {
		sol += "\n"
	}
	return Problem{
		Question: strings.Join(s.question, " "),
		Answer:   sol + "#### " + strconv.Itoa(s.value),
		Level:    level,
	}
}
