// Package textsafe makes text read from a file safe to print in a message
// on a terminal: a chat template's raise_exception text, a record's
// content or anything else a model folder or data file supplies could
// otherwise clear the screen, move the cursor, or fake a line of relupo's
// own output with escape sequences and line breaks.
package textsafe

import (
	"strings"
	"unicode/utf8"
)

// Clean returns s with terminal escape sequences (CSI "ESC [ … final",
// OSC "ESC ] … BEL or ESC \", and the other two-byte ESC sequences)
// removed, line breaks and tabs turned into spaces, and every other control
// character (C0, DEL, C1), invalid UTF-8 byte and bidirectional override
// dropped. Printable text is unchanged.
func Clean(s string) string { return clean(s, false) }

// CleanLines is Clean that keeps line breaks ("\n"): for a whole message
// of relupo's own that may span lines, as a last guard before it is
// printed.
func CleanLines(s string) string { return clean(s, true) }

func clean(s string, keepLines bool) string {
	if isClean(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == 0x1b || r == 0x9b || r == 0x9d: // ESC, or a C1 CSI/OSC
			i = skipEscape(s, i, size)
			continue
		case r == '\n' && keepLines:
			b.WriteByte('\n')
		case r == '\n' || r == '\r' || r == '\t':
			b.WriteByte(' ')
		case r == utf8.RuneError && size <= 1, isControl(r):
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

// Limit is Clean followed by cutting the result to at most n bytes (at a
// character boundary), marking the cut with "…".
func Limit(s string, n int) string {
	s = Clean(s)
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

func isClean(s string) bool {
	for _, r := range s {
		if r == utf8.RuneError || isControl(r) || r == '\n' || r == '\r' || r == '\t' || r == 0x9b || r == 0x9d {
			return false
		}
	}
	return true
}

// isControl reports the characters that are never printed: C0 and C1
// controls, DEL, and the bidirectional embeddings, overrides and isolates
// (which can reorder what a terminal shows).
func isControl(r rune) bool {
	return r < 0x20 || r == 0x7f || r >= 0x80 && r < 0xa0 ||
		r >= 0x202a && r <= 0x202e || r >= 0x2066 && r <= 0x2069
}

// skipEscape returns the index just past the escape sequence that starts
// at s[i] (its introducer is size bytes long).
func skipEscape(s string, i, size int) int {
	intro := s[i:]
	j := i + size
	var kind byte // '[' CSI, ']' OSC
	switch {
	case intro[0] == 0x1b && j < len(s) && (s[j] == '[' || s[j] == ']' || s[j] == 'P' || s[j] == '_' || s[j] == '^'):
		kind = s[j]
		j++
	case intro[0] == 0x1b:
		if j < len(s) {
			j++ // a two-byte sequence such as ESC c (reset)
		}
		return j
	default: // C1 CSI (U+009B) or OSC (U+009D)
		kind = '['
		if r, _ := utf8.DecodeRuneInString(intro); r == 0x9d {
			kind = ']'
		}
	}
	if kind == '[' { // parameters and intermediates, then one final byte
		for j < len(s) && s[j] >= 0x20 && s[j] < 0x40 {
			j++
		}
		if j < len(s) && s[j] >= 0x40 && s[j] < 0x7f {
			j++
		}
		return j
	}
	// A string sequence (OSC, DCS, APC, PM) ends at BEL or ESC \.
	for j < len(s) {
		switch {
		case s[j] == 0x07:
			return j + 1
		case s[j] == 0x1b && j+1 < len(s) && s[j+1] == '\\':
			return j + 2
		case s[j] == '\n':
			return j // an unterminated sequence ends at the line
		}
		j++
	}
	return j
}
