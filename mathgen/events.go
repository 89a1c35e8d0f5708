package mathgen

import "fmt"

// Story openings and events. Each solution line mirrors its sentence so the steps are easy to follow.

var inventoryStarts = []event{
	{cost: 0, try: func(s *story) bool {
		s.value = s.intn(2, 20)
		s.say(fmt.Sprintf("%s has %d %s.", s.who.name, s.value, s.unit))
		return true
	}},
	{cost: 1, try: func(s *story) bool {
		a, b := s.intn(2, 9), s.intn(2, 12)
		c := containers[s.rng.IntN(len(containers))]
		if a*b >= s.limit {
			return false
		}
		s.value = a * b
		s.say(fmt.Sprintf("%s has %d %s with %d %s each.", s.who.name, a, c, b, s.unit))
		s.line(fmt.Sprintf("%s has %d * %d = %d %s.", s.who.name, a, b, s.value, s.unit))
		return true
	}},
}

var moneyStarts = []event{
	{cost: 0, try: func(s *story) bool {
		s.value = s.intn(10, 60)
		s.say(fmt.Sprintf("%s has %d dollars.", s.who.name, s.value))
		return true
	}},
	{cost: 1, try: func(s *story) bool {
		a, b := s.intn(2, 12), s.intn(2, 7)
		if a*b >= s.limit {
			return false
		}
		s.value = a * b
		s.say(fmt.Sprintf("%s earns %d dollars a day for %d days.", s.who.name, a, b))
		s.line(fmt.Sprintf("%s earns %d * %d = %d dollars.", s.who.name, a, b, s.value))
		return true
	}},
}

// gain adds n with a sentence and its solution-line lead.
func gain(s *story, sentence, lead string, n int) bool {
	if s.value+n >= s.limit {
		return false
	}
	x := s.value
	s.value += n
	s.say(sentence)
	s.line(fmt.Sprintf("%s, so %s has %d + %d = %d %s.", lead, s.who.subj, x, n, s.value, s.unit))
	return true
}

// lose subtracts n (leaving at least 1).
func lose(s *story, sentence, lead string, n int) bool {
	if n >= s.value {
		return false
	}
	x := s.value
	s.value -= n
	s.say(sentence)
	s.line(fmt.Sprintf("%s, so %s has %d - %d = %d %s.", lead, s.who.subj, x, n, s.value, s.unit))
	return true
}

// times multiplies by k in 2..5, staying below the limit.
func times(s *story, k int) bool {
	if s.value*k >= s.limit {
		return false
	}
	x := s.value
	s.value *= k
	s.say(fmt.Sprintf("The next week %s has %d times as many.", s.who.subj, k))
	s.line(fmt.Sprintf("Now %s has %d * %d = %d %s.", s.who.subj, x, k, s.value, s.unit))
	return true
}

// divisor returns a random k in 2..6 dividing the current value with a quotient >= 2, or 0.
func divisor(s *story) int {
	var ks []int
	for k := 2; k <= 6; k++ {
		if s.value%k == 0 && s.value/k >= 2 {
			ks = append(ks, k)
		}
	}
	if len(ks) == 0 {
		return 0
	}
	return ks[s.rng.IntN(len(ks))]
}

// friend returns another person's name.
func friend(s *story) string {
	for {
		p := people[s.rng.IntN(len(people))]
		if p.name != s.who.name {
			return p.name
		}
	}
}

// share divides equally among k friends and asks for one share.
func share(s *story, what string) bool {
	k := divisor(s)
	if k == 0 {
		return false
	}
	x := s.value
	s.value /= k
	s.say(
		fmt.Sprintf(
			"%s shares %s equally among %d friends. How many %s does each friend get?",
			s.He(),
			what,
			k,
			s.unit,
		),
	)
	s.line(fmt.Sprintf("Each friend gets %d / %d = %d %s.", x, k, s.value, s.unit))
	return true
}

var inventoryEvents = []event{
	{cost: 1, try: func(s *story) bool {
		n := s.intn(1, 20)
		return gain(
			s,
			fmt.Sprintf("%s buys %d more %s.", s.He(), n, s.unit),
			fmt.Sprintf("%s buys %d more", s.He(), n),
			n,
		)
	}},
	{cost: 1, try: func(s *story) bool {
		n := s.intn(1, 20)
		return gain(s, fmt.Sprintf("%s finds %d more.", s.He(), n), fmt.Sprintf("%s finds %d more", s.He(), n), n)
	}},
	{cost: 1, try: func(s *story) bool {
		n, f := s.intn(1, 20), friend(s)
		return gain(
			s,
			fmt.Sprintf("%s gives %s %d %s.", f, s.who.obj, n, s.unit),
			fmt.Sprintf("%s gives %s %d", f, s.who.obj, n),
			n,
		)
	}},
	{cost: 1, try: func(s *story) bool {
		n, f := s.intn(1, 20), friend(s)
		return lose(
			s,
			fmt.Sprintf("%s gives %d %s to %s.", s.He(), n, s.unit, f),
			fmt.Sprintf("%s gives away %d", s.He(), n),
			n,
		)
	}},
	{cost: 1, try: func(s *story) bool {
		n := s.intn(1, 20)
		if s.thing.food {
			return lose(s, fmt.Sprintf("%s eats %d of them.", s.He(), n), fmt.Sprintf("%s eats %d", s.He(), n), n)
		}
		return lose(s, fmt.Sprintf("%s loses %d of them.", s.He(), n), fmt.Sprintf("%s loses %d", s.He(), n), n)
	}},
	{cost: 1, try: func(s *story) bool {
		n := s.intn(1, 20)
		return lose(s, fmt.Sprintf("%s sells %d %s.", s.He(), n, s.unit), fmt.Sprintf("%s sells %d", s.He(), n), n)
	}},
	{cost: 1, try: func(s *story) bool { return times(s, s.intn(2, 5)) }},
	{cost: 1, try: func(s *story) bool {
		k := divisor(s)
		if k == 0 {
			return false
		}
		x := s.value
		s.value /= k
		s.say(fmt.Sprintf("%s splits them into %d equal piles and keeps one.", s.He(), k))
		s.line(fmt.Sprintf("One pile has %d / %d = %d %s.", x, k, s.value, s.unit))
		return true
	}},
	{cost: 1, final: true, try: func(s *story) bool { return share(s, "them") }},
	{cost: 1, final: true, try: func(s *story) bool {
		k := s.intn(2, 5)
		if s.value*k >= s.limit {
			return false
		}
		x := s.value
		s.value *= k
		s.unit = "dollars"
		s.say(
			fmt.Sprintf(
				"%s sells each %s for %d dollars. How many dollars does %s get?",
				s.He(),
				s.thing.one,
				k,
				s.who.subj,
			),
		)
		s.line(fmt.Sprintf("%s gets %d * %d = %d dollars.", s.He(), x, k, s.value))
		return true
	}},
}

var moneyEvents = []event{
	{cost: 1, try: func(s *story) bool {
		n := s.intn(1, 20)
		return gain(
			s,
			fmt.Sprintf("%s earns %d more dollars.", s.He(), n),
			fmt.Sprintf("%s earns %d more", s.He(), n),
			n,
		)
	}},
	{cost: 1, try: func(s *story) bool {
		n, f := s.intn(1, 20), friend(s)
		return gain(
			s,
			fmt.Sprintf("%s gives %s %d dollars.", f, s.who.obj, n),
			fmt.Sprintf("%s gives %s %d", f, s.who.obj, n),
			n,
		)
	}},
	{cost: 1, try: func(s *story) bool {
		n, t := s.intn(1, 20), treats[s.rng.IntN(len(treats))]
		return lose(
			s,
			fmt.Sprintf("%s spends %d dollars on %s.", s.He(), n, t),
			fmt.Sprintf("%s spends %d", s.He(), n),
			n,
		)
	}},
	{cost: 2, try: func(s *story) bool {
		k, c := s.intn(2, 6), s.intn(2, 9)
		g := goods[s.rng.IntN(len(goods))]
		t := k * c
		if t >= s.value {
			return false
		}
		x := s.value
		s.value -= t
		s.say(fmt.Sprintf("%s buys %d %s for %d dollars each.", s.He(), k, g.many, c))
		s.line(fmt.Sprintf("The %s cost %d * %d = %d dollars.", g.many, k, c, t))
		s.line(fmt.Sprintf("%s has %d - %d = %d dollars left.", s.He(), x, t, s.value))
		return true
	}},
	{cost: 1, try: func(s *story) bool { return times(s, s.intn(2, 3)) }},
	{cost: 1, final: true, try: func(s *story) bool { return share(s, "the money") }},
}
