// Package didyoumean finds the name a person most likely meant: the recipe
// diagnostics ("Did you mean "suite"?") and the CLI's mistyped commands and
// flags share it.
//
// It does not format messages; callers word the hint for their context.
package didyoumean

// maxDistance is the largest edit distance still taken for a typo.
const maxDistance = 2

// Closest returns the name in names nearest to given by edit distance
// (insertions, deletions, substitutions), or "" when none is within two
// edits. Ties go to the earlier name.
func Closest(given string, names []string) string {
	best, bestDist := "", maxDistance+1
	for _, n := range names {
		if d := Distance(given, n); d < bestDist {
			best, bestDist = n, d
		}
	}
	return best
}

// Distance is the Levenshtein distance between a and b, in runes.
func Distance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}
