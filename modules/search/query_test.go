package search

import "testing"

func TestCleanQuerySplitsTheLastWord(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, q, rest, last string
		bad                 bool
	}{
		{"one word", "printer", "", "printer", false},
		{"two words", "printer fire", "printer ", "fire", false},
		{"exclusion keeps no prefix", "printer -fire", "printer -fire", "", false},
		{"phrase keeps no prefix", `"on fire"`, `"on fire"`, "", false},
		{"multi-byte separator", "café🙂thé", "café🙂", "thé", false},
		{"trailing punctuation", "printer!", "printer!", "", false},
		{"empty", "   ", "", "", true},
		{"nul", "a\x00b", "", "", true},
		{"invalid utf-8", "\xff", "", "", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rest, last, err := cleanQuery(tc.q)
			if (err != nil) != tc.bad || rest != tc.rest || last != tc.last {
				t.Fatalf("cleanQuery(%q) = %q, %q, %v", tc.q, rest, last, err)
			}
		})
	}
}
