// Package tokenizer loads Hugging Face tokenizer.json files and encodes and
// decodes text exactly as the Hugging Face tokenizers library does, for the
// tokenizers that Llama-family models use: byte-level BPE (GPT-2, Llama-3,
// Qwen2, Qwen3) and SentencePiece-style BPE with byte fallback (Llama-2,
// Mistral, TinyLlama).
//
// A tokenizer.json describes a pipeline: added tokens are split off first,
// the rest is normalized, pre-tokenized into words, each word is encoded by
// the model (BPE), and a post-processor may add special tokens such as BOS.
// Decoding maps ids back to tokens and runs the decoder chain. Every
// component type this package does not implement is reported as an error
// naming it when the file is loaded; nothing is silently skipped.
//
// The truncation and padding sections of tokenizer.json are ignored, as
// transformers' fast tokenizers reset them on every call unless asked.
package tokenizer

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"unicode/utf8"
)

// Tokenizer encodes text to token ids and decodes ids to text. It is safe
// for concurrent use.
type Tokenizer struct {
	name string

	model      *bpe
	normalizer normalizer    // nil when absent
	preTok     preTokenizer  // nil when absent
	post       postProcessor // nil when absent
	decoder    decoder       // nil when absent

	added       []*addedToken
	addedByID   map[int]*addedToken
	addedByText map[string]*addedToken
	rawAdded    *addedMatcher // tokens matched on the original text
	normAdded   *addedMatcher // tokens matched on the normalized text
	maxID       int
}

// Load reads a Hugging Face tokenizer.json. path is the file itself or a
// model folder that contains one.
func Load(path string) (*Tokenizer, error) {
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		path = filepath.Join(path, "tokenizer.json")
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	return Parse(data, path)
}

// Parse builds a Tokenizer from the contents of a tokenizer.json; name
// identifies the source in error messages.
func Parse(data []byte, name string) (*Tokenizer, error) {
	t, err := parse(data)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %s: %w", name, err)
	}
	t.name = name
	return t, nil
}

// Encode converts text to token ids. With addSpecialTokens the
// post-processor runs, adding for example Llama's BOS token.
func (t *Tokenizer) Encode(text string, addSpecialTokens bool) ([]int, error) {
	ids := make([]int, 0, len(text)/3+2)
	var err error
	for _, seg := range t.rawAdded.split(text, 0) {
		if seg.tok != nil {
			ids = append(ids, seg.tok.id)
			continue
		}
		ids, err = t.encodeSegment(ids, seg.text, seg.start == 0)
		if err != nil {
			return nil, fmt.Errorf("tokenizer: %s: %w", t.name, err)
		}
	}
	if addSpecialTokens && t.post != nil {
		ids = t.post.process(ids)
	}
	return ids, nil
}

// encodeSegment encodes text that holds no non-normalized added token.
func (t *Tokenizer) encodeSegment(ids []int, text string, first bool) ([]int, error) {
	if t.normalizer != nil {
		text = t.normalizer.normalize(text)
	}
	for _, seg := range t.normAdded.split(text, 0) {
		if seg.tok != nil {
			ids = append(ids, seg.tok.id)
			continue
		}
		pieces := []piece{{text: seg.text, first: first && seg.start == 0}}
		if t.preTok != nil {
			var err error
			pieces, err = t.preTok.preTokenize(pieces)
			if err != nil {
				return nil, err
			}
		}
		for _, p := range pieces {
			if p.text != "" {
				ids = t.model.tokenize(ids, p.text)
			}
		}
	}
	return ids, nil
}

// Decode converts token ids back to text. With skipSpecialTokens, added
// tokens marked special (BOS, EOS, chat markers) are left out. Ids outside
// the vocabulary are skipped, as in Hugging Face tokenizers.
func (t *Tokenizer) Decode(ids []int, skipSpecialTokens bool) string {
	tokens := make([]string, 0, len(ids))
	for _, id := range ids {
		if at, ok := t.addedByID[id]; ok {
			if skipSpecialTokens && at.special {
				continue
			}
			tokens = append(tokens, at.content)
			continue
		}
		if tok, ok := t.model.token(id); ok {
			tokens = append(tokens, tok)
		}
	}
	if t.decoder == nil {
		return strings.Join(tokens, " ")
	}
	return strings.Join(t.decoder.decode(tokens), "")
}

// TokenID returns the id of a token string (as it appears in the vocabulary,
// for example "Ġthe" or "▁the", or an added token such as "<s>").
func (t *Tokenizer) TokenID(token string) (int, bool) {
	if at, ok := t.addedByText[token]; ok {
		return at.id, true
	}
	id, ok := t.model.vocab[token]
	return id, ok
}

// Token returns the token string of an id.
func (t *Tokenizer) Token(id int) (string, bool) {
	if at, ok := t.addedByID[id]; ok {
		return at.content, true
	}
	return t.model.token(id)
}

// VocabSize returns one more than the largest id of the vocabulary and the
// added tokens: the number of rows a model's embedding needs at least.
func (t *Tokenizer) VocabSize() int { return t.maxID + 1 }

// IsSpecial reports whether id is an added token marked special.
func (t *Tokenizer) IsSpecial(id int) bool {
	at, ok := t.addedByID[id]
	return ok && at.special
}

// lossyString converts b to a string, replacing each maximal ill-formed
// subsequence with U+FFFD, as Rust's String::from_utf8_lossy does.
func lossyString(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	var sb strings.Builder
	for i := 0; i < len(b); {
		r, size := utf8.DecodeRune(b[i:])
		if r != utf8.RuneError || size > 1 {
			sb.Write(b[i : i+size])
			i += size
			continue
		}
		i += 1 + validContinuations(b[i:])
		sb.WriteRune(utf8.RuneError)
	}
	return sb.String()
}

// validContinuations returns how many bytes after the lead byte b[0] still
// form a valid prefix of a UTF-8 sequence.
func validContinuations(b []byte) int {
	lo, hi, need := byte(0x80), byte(0xBF), 0
	switch c := b[0]; {
	case c >= 0xC2 && c <= 0xDF:
		need = 1
	case c == 0xE0:
		lo, need = 0xA0, 2
	case c == 0xED:
		hi, need = 0x9F, 2
	case c >= 0xE1 && c <= 0xEF:
		need = 2
	case c == 0xF0:
		lo, need = 0x90, 3
	case c >= 0xF1 && c <= 0xF3:
		need = 3
	case c == 0xF4:
		hi, need = 0x8F, 3
	}
	n := 0
	for n < need && 1+n < len(b) && b[1+n] >= lo && b[1+n] <= hi {
		n++
		lo, hi = 0x80, 0xBF
	}
	return n
}

func isValidUTF8(s string) bool { return utf8.ValidString(s) }
