package tokenizer

import (
	"strings"

	"github.com/dlclark/regexp2"
	"golang.org/x/text/unicode/norm"
)

// normalizer rewrites text before pre-tokenization.
type normalizer interface {
	normalize(s string) string
}

type unicodeNormalizer struct{ form norm.Form }

func (n unicodeNormalizer) normalize(s string) string { return n.form.String(s) }

type lowercaseNormalizer struct{}

func (lowercaseNormalizer) normalize(s string) string { return strings.ToLower(s) }

// prependNormalizer adds a prefix to non-empty text (SentencePiece's "▁").
type prependNormalizer struct{ prepend string }

func (n prependNormalizer) normalize(s string) string {
	if s == "" {
		return s
	}
	return n.prepend + s
}

// replaceNormalizer replaces every match of a literal or a regex.
type replaceNormalizer struct{ p pattern }

func (n replaceNormalizer) normalize(s string) string { return n.p.replaceAll(s) }

type stripNormalizer struct{ left, right bool }

func (n stripNormalizer) normalize(s string) string {
	if n.left {
		s = strings.TrimLeftFunc(s, isSpace)
	}
	if n.right {
		s = strings.TrimRightFunc(s, isSpace)
	}
	return s
}

type sequenceNormalizer []normalizer

func (seq sequenceNormalizer) normalize(s string) string {
	for _, n := range seq {
		s = n.normalize(s)
	}
	return s
}

// pattern is a tokenizer.json pattern: {"String": "..."} or {"Regex": "..."}.
type pattern struct {
	literal string
	re      *regexp2.Regexp // nil for a literal
	content string          // replacement, for Replace
	// fast, when set, finds the matches of re by hand (see fastsplit.go).
	fast func([]rune) [][2]int
}

// replaceAll replaces every non-overlapping match with p.content.
func (p pattern) replaceAll(s string) string {
	if p.re == nil {
		if p.literal == "" {
			return s
		}
		return strings.ReplaceAll(s, p.literal, p.content)
	}
	var sb strings.Builder
	last := 0
	runes := []rune(s)
	for _, m := range p.findAll(runes) {
		sb.WriteString(string(runes[last:m[0]]))
		sb.WriteString(p.content)
		last = m[1]
	}
	sb.WriteString(string(runes[last:]))
	return sb.String()
}

// findAll returns the [start, end) rune spans of the non-empty,
// non-overlapping matches in runes.
func (p pattern) findAll(runes []rune) [][2]int {
	var spans [][2]int
	if p.re == nil {
		lit := []rune(p.literal)
		if len(lit) == 0 {
			return nil
		}
		for i := 0; i+len(lit) <= len(runes); {
			if equalRunes(runes[i:i+len(lit)], lit) {
				spans = append(spans, [2]int{i, i + len(lit)})
				i += len(lit)
				continue
			}
			i++
		}
		return spans
	}
	if p.fast != nil {
		return p.fast(runes)
	}
	m, err := p.re.FindRunesMatch(runes)
	for err == nil && m != nil {
		if m.Length > 0 {
			spans = append(spans, [2]int{m.Index, m.Index + m.Length})
		}
		m, err = p.re.FindNextMatch(m)
	}
	return spans
}

func equalRunes(a, b []rune) bool {
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
