package tokenizer

import (
	"fmt"
	"strings"
)

// atomicPossessive rewrites Oniguruma's possessive quantifiers (x?+, x*+,
// x++, x{n,m}+), which tiktoken-derived patterns use and regexp2 does not
// parse, as the atomic groups they abbreviate: x?+ is (?>x?). Everything
// else is copied unchanged. An atom is an escape (\p{…} with its braces), a
// character class, a group or one character.
func atomicPossessive(expr string) (string, error) {
	var out strings.Builder
	var groups []int // output offsets of the open groups
	atom := -1       // output offset of the last atom, -1 when none
	for i := 0; i < len(expr); {
		c := expr[i]
		start := out.Len()
		switch {
		case c == '\\':
			j := i + 2
			if j > len(expr) {
				return "", fmt.Errorf("pattern %q ends with a backslash", expr)
			}
			if (expr[i+1] == 'p' || expr[i+1] == 'P' || expr[i+1] == 'x') && j < len(expr) && expr[j] == '{' {
				k := strings.IndexByte(expr[j:], '}')
				if k < 0 {
					return "", fmt.Errorf("pattern %q: unterminated \\%c{", expr, expr[i+1])
				}
				j += k + 1
			}
			out.WriteString(expr[i:j])
			atom, i = start, j
		case c == '[':
			j := classEnd(expr, i)
			if j < 0 {
				return "", fmt.Errorf("pattern %q: unterminated character class", expr)
			}
			out.WriteString(expr[i:j])
			atom, i = start, j
		case c == '(':
			groups = append(groups, start)
			out.WriteByte(c)
			atom, i = -1, i+1
		case c == ')':
			if len(groups) == 0 {
				return "", fmt.Errorf("pattern %q: unbalanced )", expr)
			}
			out.WriteByte(c)
			atom, groups, i = groups[len(groups)-1], groups[:len(groups)-1], i+1
		case c == '|' || c == '^' || c == '$':
			out.WriteByte(c)
			atom, i = -1, i+1
		case c == '?' || c == '*' || c == '+' || c == '{' && isRepeat(expr[i:]):
			j := i + 1
			if c == '{' {
				j = i + strings.IndexByte(expr[i:], '}') + 1
			}
			if j < len(expr) && expr[j] == '+' && atom >= 0 { // possessive
				s := out.String()
				out.Reset()
				out.WriteString(s[:atom] + "(?>" + s[atom:] + expr[i:j] + ")")
				atom, i = -1, j+1
				continue
			}
			if j < len(expr) && expr[j] == '?' { // lazy
				j++
			}
			out.WriteString(expr[i:j])
			atom, i = -1, j
		default:
			n := 1
			for n < len(expr)-i && expr[i+n]&0xC0 == 0x80 { // the rest of a UTF-8 character
				n++
			}
			out.WriteString(expr[i : i+n])
			atom, i = start, i+n
		}
	}
	return out.String(), nil
}

// classEnd returns the offset just past the character class that opens at
// i, or -1. A ] right after [ or [^ is a literal, as are escaped ones, and
// a nested [ opens a nested class ([[:alpha:]], Oniguruma's set operations).
func classEnd(expr string, i int) int {
	j := i + 1
	if j < len(expr) && expr[j] == '^' {
		j++
	}
	if j < len(expr) && expr[j] == ']' {
		j++
	}
	for depth := 1; j < len(expr); j++ {
		switch expr[j] {
		case '\\':
			j++
		case '[':
			depth++
		case ']':
			if depth--; depth == 0 {
				return j + 1
			}
		}
	}
	return -1
}

// isRepeat reports whether s starts with a bounded repetition {n}, {n,} or
// {n,m} (a { that starts none is a literal).
func isRepeat(s string) bool {
	k := strings.IndexByte(s, '}')
	if k < 2 {
		return false
	}
	digits := false
	for _, r := range s[1:k] {
		switch {
		case r >= '0' && r <= '9':
			digits = true
		case r == ',':
		default:
			return false
		}
	}
	return digits
}
