package tokenizer

import (
	"strings"
	"unicode"
)

// piece is a pre-token: a part of the normalized text that the model
// encodes on its own. first marks the piece that begins the input text,
// which Metaspace's "first" prepend scheme needs.
type piece struct {
	text  string
	first bool
}

// preTokenizer splits pieces into smaller pieces, possibly rewriting them.
type preTokenizer interface {
	preTokenize(pieces []piece) ([]piece, error)
}

// splitBehavior says what happens to the matched parts of a split.
type splitBehavior int

const (
	splitRemoved splitBehavior = iota
	splitIsolated
	splitMergedWithPrevious
	splitMergedWithNext
	splitContiguous
)

var splitBehaviors = map[string]splitBehavior{
	"Removed":            splitRemoved,
	"Isolated":           splitIsolated,
	"MergedWithPrevious": splitMergedWithPrevious,
	"MergedWithNext":     splitMergedWithNext,
	"Contiguous":         splitContiguous,
}

// span is a [start, end) range of runes, marked when the pattern matched it.
type span struct {
	start, end int
	match      bool
}

// splitPieces splits each piece at the matches of p, as Hugging Face's
// NormalizedString::split does.
func splitPieces(pieces []piece, p pattern, behavior splitBehavior, invert bool) []piece {
	out := make([]piece, 0, len(pieces))
	for _, pc := range pieces {
		runes := []rune(pc.text)
		var spans []span
		prev := 0
		for _, m := range p.findAll(runes) {
			if m[0] > prev {
				spans = append(spans, span{prev, m[0], invert})
			}
			spans = append(spans, span{m[0], m[1], !invert})
			prev = m[1]
		}
		if prev < len(runes) {
			spans = append(spans, span{prev, len(runes), invert})
		}
		spans = applyBehavior(spans, behavior)
		first := pc.first
		for _, s := range spans {
			if s.end > s.start {
				out = append(out, piece{text: string(runes[s.start:s.end]), first: first && s.start == 0})
			}
		}
	}
	return out
}

func applyBehavior(spans []span, behavior splitBehavior) []span {
	var out []span
	switch behavior {
	case splitIsolated:
		return spans
	case splitRemoved:
		for _, s := range spans {
			if !s.match {
				out = append(out, s)
			}
		}
	case splitMergedWithPrevious:
		prevMatch := false
		for _, s := range spans {
			if s.match && !prevMatch && len(out) > 0 {
				out[len(out)-1].end = s.end
			} else {
				out = append(out, s)
			}
			prevMatch = s.match
		}
	case splitMergedWithNext:
		prevMatch := false
		for i := len(spans) - 1; i >= 0; i-- {
			s := spans[i]
			if s.match && !prevMatch && len(out) > 0 {
				out[len(out)-1].start = s.start
			} else {
				out = append(out, s)
			}
			prevMatch = s.match
		}
		for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
			out[i], out[j] = out[j], out[i]
		}
	case splitContiguous:
		prevMatch := false
		for i, s := range spans {
			if i > 0 && s.match == prevMatch {
				out[len(out)-1].end = s.end
			} else {
				out = append(out, s)
			}
			prevMatch = s.match
		}
	}
	return out
}

// splitPreTokenizer is the Split pre-tokenizer.
type splitPreTokenizer struct {
	p        pattern
	behavior splitBehavior
	invert   bool
}

func (s *splitPreTokenizer) preTokenize(pieces []piece) ([]piece, error) {
	return splitPieces(pieces, s.p, s.behavior, s.invert), nil
}

// byteLevelPreTokenizer optionally splits with GPT-2's pattern, then maps
// every byte to its printable code point.
type byteLevelPreTokenizer struct {
	addPrefixSpace bool
	useRegex       bool
	re             pattern
	table          *byteLevelTable
}

func (b *byteLevelPreTokenizer) preTokenize(pieces []piece) ([]piece, error) {
	if b.addPrefixSpace {
		for i := range pieces {
			if !strings.HasPrefix(pieces[i].text, " ") {
				pieces[i].text = " " + pieces[i].text
			}
		}
	}
	if b.useRegex {
		pieces = splitPieces(pieces, b.re, splitIsolated, false)
	}
	for i := range pieces {
		pieces[i].text = b.table.encode(pieces[i].text)
	}
	return pieces, nil
}

// digitsPreTokenizer splits ASCII digits from the rest, one by one or in runs.
type digitsPreTokenizer struct{ individual bool }

func (d digitsPreTokenizer) preTokenize(pieces []piece) ([]piece, error) {
	var out []piece
	for _, pc := range pieces {
		runes := []rune(pc.text)
		var spans []span
		for i, r := range runes {
			isDigit := r >= '0' && r <= '9'
			spans = append(spans, span{i, i + 1, isDigit})
		}
		behavior := splitContiguous
		if d.individual {
			behavior = splitIsolated
			// Isolated keeps each digit alone but must group the non-digits.
			spans = groupNonMatches(spans)
		}
		spans = applyBehavior(spans, behavior)
		for _, s := range spans {
			out = append(out, piece{text: string(runes[s.start:s.end]), first: pc.first && s.start == 0})
		}
	}
	return out, nil
}

// groupNonMatches merges adjacent unmatched single-rune spans.
func groupNonMatches(spans []span) []span {
	var out []span
	for _, s := range spans {
		if !s.match && len(out) > 0 && !out[len(out)-1].match {
			out[len(out)-1].end = s.end
			continue
		}
		out = append(out, s)
	}
	return out
}

// prependScheme says when Metaspace adds the replacement character in front.
type prependScheme int

const (
	prependAlways prependScheme = iota
	prependFirst
	prependNever
)

// metaspacePreTokenizer replaces spaces with "▁", optionally prepends one,
// and optionally splits before each "▁".
type metaspacePreTokenizer struct {
	replacement string
	scheme      prependScheme
	split       bool
}

func (m *metaspacePreTokenizer) preTokenize(pieces []piece) ([]piece, error) {
	for i := range pieces {
		s := strings.ReplaceAll(pieces[i].text, " ", m.replacement)
		if !strings.HasPrefix(s, m.replacement) &&
			(m.scheme == prependAlways || (m.scheme == prependFirst && pieces[i].first)) {
			s = m.replacement + s
		}
		pieces[i].text = s
	}
	if m.split {
		pieces = splitPieces(pieces, pattern{literal: m.replacement}, splitMergedWithNext, false)
	}
	return pieces, nil
}

// whitespaceSplitPreTokenizer splits on whitespace, dropping it.
type whitespaceSplitPreTokenizer struct{}

func (whitespaceSplitPreTokenizer) preTokenize(pieces []piece) ([]piece, error) {
	var out []piece
	for _, pc := range pieces {
		for j, f := range strings.FieldsFunc(pc.text, isSpace) {
			out = append(out, piece{text: f, first: pc.first && j == 0 && !strings.HasPrefix(pc.text, " ")})
		}
	}
	return out, nil
}

type sequencePreTokenizer []preTokenizer

func (seq sequencePreTokenizer) preTokenize(pieces []piece) ([]piece, error) {
	var err error
	for _, p := range seq {
		if pieces, err = p.preTokenize(pieces); err != nil {
			return nil, err
		}
	}
	return pieces, nil
}

func isSpace(r rune) bool { return unicode.IsSpace(r) }
