package tokenizer

import (
	"strconv"
	"strings"
)

// decoder turns a list of tokens into a list of strings; the strings of the
// last decoder are concatenated.
type decoder interface {
	decode(tokens []string) []string
}

// byteLevelDecoder maps byte-level code points back to bytes.
type byteLevelDecoder struct{ table *byteLevelTable }

func (d byteLevelDecoder) decode(tokens []string) []string {
	var buf []byte
	for _, tok := range tokens {
		buf = d.table.decodeToken(buf, tok)
	}
	return []string{lossyString(buf)}
}

// metaspaceDecoder turns "▁" back into spaces, dropping it in the first
// token when the pre-tokenizer would have prepended it.
type metaspaceDecoder struct {
	replacement string
	scheme      prependScheme
}

func (d metaspaceDecoder) decode(tokens []string) []string {
	out := make([]string, len(tokens))
	for i, tok := range tokens {
		with := " "
		if i == 0 && d.scheme != prependNever {
			with = ""
		}
		out[i] = strings.ReplaceAll(tok, d.replacement, with)
	}
	return out
}

type replaceDecoder struct{ p pattern }

func (d replaceDecoder) decode(tokens []string) []string {
	out := make([]string, len(tokens))
	for i, tok := range tokens {
		out[i] = d.p.replaceAll(tok)
	}
	return out
}

// byteFallbackDecoder turns runs of "<0xXX>" tokens into the text they
// encode, or into one U+FFFD per byte when the run is not valid UTF-8.
type byteFallbackDecoder struct{}

func (byteFallbackDecoder) decode(tokens []string) []string {
	out := make([]string, 0, len(tokens))
	var pending []byte
	flush := func() {
		if len(pending) == 0 {
			return
		}
		if s := string(pending); isValidUTF8(s) {
			out = append(out, s)
		} else {
			for range pending {
				out = append(out, "\uFFFD")
			}
		}
		pending = pending[:0]
	}
	for _, tok := range tokens {
		if b, ok := parseByteToken(tok); ok {
			pending = append(pending, b)
			continue
		}
		flush()
		out = append(out, tok)
	}
	flush()
	return out
}

func parseByteToken(tok string) (byte, bool) {
	if len(tok) != 6 || !strings.HasPrefix(tok, "<0x") || tok[5] != '>' {
		return 0, false
	}
	v, err := strconv.ParseUint(tok[3:5], 16, 8)
	if err != nil {
		return 0, false
	}
	return byte(v), true
}

// fuseDecoder joins all tokens into one.
type fuseDecoder struct{}

func (fuseDecoder) decode(tokens []string) []string { return []string{strings.Join(tokens, "")} }

// stripDecoder removes up to start leading and stop trailing copies of a
// character from every token.
type stripDecoder struct {
	content     rune
	start, stop int
}

func (d stripDecoder) decode(tokens []string) []string {
	out := make([]string, len(tokens))
	for i, tok := range tokens {
		r := []rune(tok)
		lo := 0
		for lo < d.start && lo < len(r) && r[lo] == d.content {
			lo++
		}
		hi := len(r)
		for n := 0; n < d.stop && hi > lo && r[hi-1] == d.content; n++ {
			hi--
		}
		out[i] = string(r[lo:hi])
	}
	return out
}

type sequenceDecoder []decoder

func (seq sequenceDecoder) decode(tokens []string) []string {
	for _, d := range seq {
		tokens = d.decode(tokens)
	}
	return tokens
}

// postProcessor adds special tokens around an encoded sequence.
type postProcessor interface {
	process(ids []int) []int
}

// templateProcessor is TemplateProcessing's single-sequence template.
type templateProcessor struct {
	items []templateItem
}

// templateItem is either the sequence itself or a special token's ids.
type templateItem struct {
	sequence bool
	ids      []int
}

func (p templateProcessor) process(ids []int) []int {
	out := make([]int, 0, len(ids)+4)
	for _, it := range p.items {
		if it.sequence {
			out = append(out, ids...)
		} else {
			out = append(out, it.ids...)
		}
	}
	return out
}

// noopProcessor is ByteLevel's post-processor: it only adjusts offsets,
// which this package does not compute.
type noopProcessor struct{}

func (noopProcessor) process(ids []int) []int { return ids }

type sequenceProcessor []postProcessor

func (seq sequenceProcessor) process(ids []int) []int {
	for _, p := range seq {
		ids = p.process(ids)
	}
	return ids
}
