package tokenizer

import (
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"
)

// addedToken is an entry of tokenizer.json's added_tokens.
type addedToken struct {
	id         int
	content    string
	pattern    string // what is searched for: content, normalized when normalized is set
	special    bool
	singleWord bool
	lstrip     bool
	rstrip     bool
	normalized bool
}

// addedMatcher finds added tokens in text, leftmost first and longest at a
// position, like the Aho-Corasick (leftmost-longest) search of Hugging Face
// tokenizers.
type addedMatcher struct {
	byFirst map[byte][]*addedToken // candidates by first byte, longest first
}

// segment is a piece of text: either an added token (tok != nil) or text
// between added tokens. start is its byte offset in the searched text.
type segment struct {
	text  string
	start int
	tok   *addedToken
}

func newAddedMatcher(tokens []*addedToken) *addedMatcher {
	m := &addedMatcher{byFirst: map[byte][]*addedToken{}}
	for _, t := range tokens {
		if t.pattern == "" {
			continue
		}
		m.byFirst[t.pattern[0]] = append(m.byFirst[t.pattern[0]], t)
	}
	for _, list := range m.byFirst {
		sort.SliceStable(list, func(i, j int) bool { return len(list[i].pattern) > len(list[j].pattern) })
	}
	return m
}

// split cuts text into added tokens and the text between them. Empty text
// segments are dropped. base is added to the reported offsets.
func (m *addedMatcher) split(text string, base int) []segment {
	if m == nil || len(m.byFirst) == 0 {
		return []segment{{text: text, start: base}}
	}
	var segs []segment
	last := 0 // end of the previous match
	for i := 0; i < len(text); {
		tok := m.matchAt(text, i)
		if tok == nil {
			i++
			continue
		}
		start, stop := i, i+len(tok.pattern)
		if tok.singleWord && (endsWithWordChar(text[:start]) || startsWithWordChar(text[stop:])) {
			i = stop
			continue
		}
		if tok.lstrip {
			trimmed := strings.TrimRightFunc(text[last:start], unicode.IsSpace)
			start = last + len(trimmed)
		}
		if tok.rstrip {
			rest := text[stop:]
			stop += len(rest) - len(strings.TrimLeftFunc(rest, unicode.IsSpace))
		}
		if start > last {
			segs = append(segs, segment{text: text[last:start], start: base + last})
		}
		segs = append(segs, segment{text: text[start:stop], start: base + start, tok: tok})
		last, i = stop, stop
	}
	if last < len(text) || len(segs) == 0 {
		segs = append(segs, segment{text: text[last:], start: base + last})
	}
	return segs
}

func (m *addedMatcher) matchAt(text string, i int) *addedToken {
	for _, t := range m.byFirst[text[i]] {
		if strings.HasPrefix(text[i:], t.pattern) {
			return t
		}
	}
	return nil
}

func isWordChar(r rune) bool { return r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r) }

func endsWithWordChar(s string) bool {
	r, n := utf8.DecodeLastRuneInString(s)
	return n > 0 && isWordChar(r)
}

func startsWithWordChar(s string) bool {
	r, n := utf8.DecodeRuneInString(s)
	return n > 0 && isWordChar(r)
}
