package main

import (
	"slices"
	"strings"
)

// completeLine is what Tab does: it completes the word that ends at the
// cursor (pos, a byte offset in line) from the candidates for a word that
// follows the words before it. A single match is inserted with a blank
// after it; several are extended to their longest common prefix, or, if
// that adds nothing, returned in shown for the shell to list.
func completeLine(line string, pos int, candidates func(prev []string) []string) (newLine string, newPos int, shown []string) {
	head, tail := line[:pos], line[pos:]
	start := strings.LastIndexAny(head, " \t") + 1
	partial := strings.TrimLeft(head[start:], `"'`)
	prev := strings.Fields(head[:start])
	var matches []string
	for _, c := range candidates(prev) {
		if strings.HasPrefix(c, partial) && !slices.Contains(matches, c) {
			matches = append(matches, c)
		}
	}
	slices.Sort(matches)
	switch len(matches) {
	case 0:
		return line, pos, nil
	case 1:
		word := quoteWord(matches[0])
		if !strings.HasPrefix(tail, " ") {
			word += " "
		}
		newHead := head[:start] + word
		return newHead + tail, len(newHead), nil
	}
	if p := commonPrefix(matches); len(p) > len(partial) && quoteWord(p) == p {
		newHead := head[:start] + p
		return newHead + tail, len(newHead), nil
	}
	return line, pos, matches
}

func commonPrefix(ss []string) string {
	p := ss[0]
	for _, s := range ss[1:] {
		for !strings.HasPrefix(s, p) {
			p = p[:len(p)-1]
		}
	}
	return p
}

// closest returns the candidate nearest to word by edit distance, if it is
// near enough to be the word the user meant.
func closest(word string, candidates []string) (string, bool) {
	// A unique completion is the likeliest meaning: "extend" → extend-lock.
	var prefixed []string
	for _, c := range candidates {
		if len(word) >= 3 && strings.HasPrefix(c, word) {
			prefixed = append(prefixed, c)
		}
	}
	if len(prefixed) == 1 {
		return prefixed[0], true
	}
	best, bestDist := "", -1
	for _, c := range candidates {
		if d := editDistance(word, c); bestDist < 0 || d < bestDist {
			best, bestDist = c, d
		}
	}
	limit := max(2, len(word)/3)
	return best, bestDist >= 0 && bestDist <= limit
}

// editDistance is the Levenshtein distance between a and b, counting an
// adjacent transposition as one edit.
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev2 := make([]int, len(rb)+1)
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
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(rb)]
}
