package main

import (
	"errors"
	"strings"
	"unicode"
)

// splitWords splits a shell line into words the way a Unix shell would,
// minus everything but quoting: words are separated by blanks, '…' quotes
// literally, "…" quotes with \" and \\ escapes, and a backslash outside
// quotes escapes the next character.
func splitWords(line string) ([]string, error) {
	var words []string
	var w strings.Builder
	inWord := false
	rs := []rune(line)
	for i := 0; i < len(rs); i++ {
		r := rs[i]
		switch {
		case unicode.IsSpace(r):
			if inWord {
				words = append(words, w.String())
				w.Reset()
				inWord = false
			}
		case r == '\'':
			inWord = true
			j := i + 1
			for j < len(rs) && rs[j] != '\'' {
				w.WriteRune(rs[j])
				j++
			}
			if j == len(rs) {
				return nil, errors.New("unterminated ' quote")
			}
			i = j
		case r == '"':
			inWord = true
			j := i + 1
			for ; j < len(rs) && rs[j] != '"'; j++ {
				if rs[j] == '\\' && j+1 < len(rs) && (rs[j+1] == '"' || rs[j+1] == '\\') {
					j++
				}
				w.WriteRune(rs[j])
			}
			if j == len(rs) {
				return nil, errors.New(`unterminated " quote`)
			}
			i = j
		case r == '\\':
			inWord = true
			if i+1 < len(rs) {
				i++
				w.WriteRune(rs[i])
			}
		default:
			inWord = true
			w.WriteRune(r)
		}
	}
	if inWord {
		words = append(words, w.String())
	}
	return words, nil
}

// quoteWord quotes s for the shell when it needs it, so that splitWords
// reads it back as one word.
func quoteWord(s string) string {
	if s != "" && !strings.ContainsFunc(s, func(r rune) bool {
		return unicode.IsSpace(r) || r == '\'' || r == '"' || r == '\\'
	}) {
		return s
	}
	if !strings.Contains(s, "'") {
		return "'" + s + "'"
	}
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}
