package mathgen

// person is a name with the pronouns used after the first mention.
type person struct {
	name, subj, obj string // "Tom", "he", "him"
}

// noun is a countable thing with its singular and plural forms.
type noun struct {
	one, many string
	food      bool // can be eaten
}

// The word lists are small on purpose: a tiny model must learn the language of the task.
var (
	people = []person{
		{"Tom", "he", "him"}, {"Ben", "he", "him"}, {"Sam", "he", "him"}, {"Max", "he", "him"},
		{"Leo", "he", "him"}, {"Jack", "he", "him"}, {"Omar", "he", "him"}, {"Ravi", "he", "him"},
		{"Ann", "she", "her"}, {"Mia", "she", "her"}, {"Lily", "she", "her"}, {"Emma", "she", "her"},
		{"Zoe", "she", "her"}, {"Sara", "she", "her"}, {"Nina", "she", "her"}, {"Rosa", "she", "her"},
	}
	things = []noun{
		{"apple", "apples", true}, {"orange", "oranges", true}, {"cookie", "cookies", true},
		{"candy", "candies", true}, {"egg", "eggs", true}, {"muffin", "muffins", true},
		{"marble", "marbles", false}, {"sticker", "stickers", false}, {"pencil", "pencils", false},
		{"card", "cards", false}, {"book", "books", false}, {"shell", "shells", false},
		{"stamp", "stamps", false}, {"toy", "toys", false}, {"ball", "balls", false}, {"bead", "beads", false},
	}
	containers = []string{"boxes", "bags", "packs", "jars", "baskets"}
	// goods are bought several at a time in the money story.
	goods = []noun{
		{"pen", "pens", false}, {"cup", "cups", false}, {"ticket", "tickets", false},
		{"notebook", "notebooks", false}, {"kite", "kites", false}, {"sandwich", "sandwiches", true},
	}
	// treats are single purchases in the money story.
	treats = []string{"lunch", "a toy", "a book", "a hat", "a game", "a gift"}
)
