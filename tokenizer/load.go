package tokenizer

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/dlclark/regexp2"
	"golang.org/x/text/unicode/norm"
)

// gpt2Pattern is the pre-tokenization pattern of GPT-2, which the ByteLevel
// pre-tokenizer applies when use_regex is set.
const gpt2Pattern = `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`

type fileJSON struct {
	AddedTokens   []addedTokenJSON `json:"added_tokens"`
	Normalizer    json.RawMessage  `json:"normalizer"`
	PreTokenizer  json.RawMessage  `json:"pre_tokenizer"`
	PostProcessor json.RawMessage  `json:"post_processor"`
	Decoder       json.RawMessage  `json:"decoder"`
	Model         json.RawMessage  `json:"model"`
}

type addedTokenJSON struct {
	ID         *int    `json:"id"`
	Content    *string `json:"content"`
	SingleWord bool    `json:"single_word"`
	LStrip     bool    `json:"lstrip"`
	RStrip     bool    `json:"rstrip"`
	Normalized bool    `json:"normalized"`
	Special    bool    `json:"special"`
}

// component holds the fields of every normalizer, pre-tokenizer,
// post-processor and decoder that this package implements.
type component struct {
	Type string `json:"type"`

	// Sequences.
	Normalizers   []json.RawMessage `json:"normalizers"`
	PreTokenizers []json.RawMessage `json:"pretokenizers"`
	Processors    []json.RawMessage `json:"processors"`
	Decoders      []json.RawMessage `json:"decoders"`

	Prepend        *string         `json:"prepend"`
	Pattern        json.RawMessage `json:"pattern"`
	Content        *string         `json:"content"`
	Behavior       string          `json:"behavior"`
	Invert         bool            `json:"invert"`
	AddPrefixSpace *bool           `json:"add_prefix_space"`
	UseRegex       *bool           `json:"use_regex"`
	Individual     bool            `json:"individual_digits"`
	Replacement    *string         `json:"replacement"`
	PrependScheme  *string         `json:"prepend_scheme"`
	Split          *bool           `json:"split"`
	StripLeft      *bool           `json:"strip_left"`
	StripRight     *bool           `json:"strip_right"`
	Start          int             `json:"start"`
	Stop           int             `json:"stop"`

	Single        []json.RawMessage          `json:"single"`
	SpecialTokens map[string]specialTokenDef `json:"special_tokens"`
	Sep           []json.RawMessage          `json:"sep"`
	Cls           []json.RawMessage          `json:"cls"`
}

type specialTokenDef struct {
	ID  string `json:"id"`
	IDs []int  `json:"ids"`
}

type modelJSON struct {
	Type                    string          `json:"type"`
	Vocab                   map[string]int  `json:"vocab"`
	Merges                  json.RawMessage `json:"merges"`
	UnkToken                *string         `json:"unk_token"`
	FuseUnk                 bool            `json:"fuse_unk"`
	ByteFallback            bool            `json:"byte_fallback"`
	IgnoreMerges            bool            `json:"ignore_merges"`
	ContinuingSubwordPrefix *string         `json:"continuing_subword_prefix"`
	EndOfWordSuffix         *string         `json:"end_of_word_suffix"`
	Dropout                 *float64        `json:"dropout"`
}

func isNull(raw json.RawMessage) bool {
	raw = bytes.TrimSpace(raw)
	return len(raw) == 0 || bytes.Equal(raw, []byte("null"))
}

func parse(data []byte) (*Tokenizer, error) {
	var f fileJSON
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("invalid JSON: %w", err)
	}
	t := &Tokenizer{
		addedByID:   map[int]*addedToken{},
		addedByText: map[string]*addedToken{},
	}
	table := newByteLevelTable()
	var err error
	if isNull(f.Model) {
		return nil, errors.New("model: missing")
	}
	if t.model, err = parseModel(f.Model); err != nil {
		return nil, fmt.Errorf("model: %w", err)
	}
	if !isNull(f.Normalizer) {
		if t.normalizer, err = parseNormalizer(f.Normalizer, "normalizer"); err != nil {
			return nil, err
		}
	}
	if !isNull(f.PreTokenizer) {
		if t.preTok, err = parsePreTokenizer(f.PreTokenizer, "pre_tokenizer", table); err != nil {
			return nil, err
		}
	}
	if !isNull(f.Decoder) {
		if t.decoder, err = parseDecoder(f.Decoder, "decoder", table); err != nil {
			return nil, err
		}
	}
	for id := range t.model.inv {
		if _, ok := t.model.token(id); ok {
			t.maxID = max(t.maxID, id)
		}
	}
	var raw, normed []*addedToken
	for i, a := range f.AddedTokens {
		if a.ID == nil || a.Content == nil {
			return nil, fmt.Errorf("added_tokens[%d]: missing id or content", i)
		}
		if *a.ID < 0 {
			return nil, fmt.Errorf("added_tokens[%d]: negative id %d", i, *a.ID)
		}
		at := &addedToken{id: *a.ID, content: *a.Content, pattern: *a.Content, special: a.Special,
			singleWord: a.SingleWord, lstrip: a.LStrip, rstrip: a.RStrip, normalized: a.Normalized}
		t.added = append(t.added, at)
		t.addedByID[at.id] = at
		t.addedByText[at.content] = at
		t.maxID = max(t.maxID, at.id)
		if at.normalized {
			if t.normalizer != nil {
				at.pattern = t.normalizer.normalize(at.content)
			}
			normed = append(normed, at)
		} else {
			raw = append(raw, at)
		}
	}
	t.rawAdded = newAddedMatcher(raw)
	t.normAdded = newAddedMatcher(normed)
	if t.model.unkToken != "" {
		if id, ok := t.TokenID(t.model.unkToken); ok {
			t.model.unkID = id
		} else {
			return nil, fmt.Errorf("model.unk_token: %q is not in the vocabulary", t.model.unkToken)
		}
	}
	if !isNull(f.PostProcessor) {
		if t.post, err = parsePostProcessor(f.PostProcessor, "post_processor", t); err != nil {
			return nil, err
		}
	}
	return t, nil
}

// unkToken is kept on the model until the added tokens are known.
func parseModel(raw json.RawMessage) (*bpe, error) {
	var mj modelJSON
	if err := json.Unmarshal(raw, &mj); err != nil {
		return nil, err
	}
	if mj.Type == "" && mj.Merges != nil {
		mj.Type = "BPE"
	}
	if mj.Type != "BPE" {
		return nil, fmt.Errorf("type: unsupported model type %q (only BPE is implemented)", mj.Type)
	}
	if mj.Dropout != nil && *mj.Dropout != 0 {
		return nil, fmt.Errorf("dropout: BPE dropout %v is not supported", *mj.Dropout)
	}
	if mj.Vocab == nil {
		return nil, errors.New("vocab: missing")
	}
	m := &bpe{vocab: mj.Vocab, unkID: -1, fuseUnk: mj.FuseUnk, byteFallback: mj.ByteFallback,
		ignoreMerges: mj.IgnoreMerges, cache: map[string][]int{}}
	if mj.ContinuingSubwordPrefix != nil {
		m.prefix = *mj.ContinuingSubwordPrefix
	}
	if mj.EndOfWordSuffix != nil {
		m.suffix = *mj.EndOfWordSuffix
	}
	if mj.UnkToken != nil {
		m.unkToken = *mj.UnkToken
	}
	maxID := -1
	for tok, id := range m.vocab {
		if id < 0 {
			return nil, fmt.Errorf("vocab: token %q has negative id %d", tok, id)
		}
		maxID = max(maxID, id)
	}
	m.inv = make([]string, maxID+1)
	for tok, id := range m.vocab {
		m.inv[id] = tok
	}
	for b := 0; b < 256; b++ {
		m.byteIDs[b] = -1
		if id, ok := m.vocab[byteToken(byte(b))]; ok {
			m.byteIDs[b] = id
		}
	}
	pairs, err := parseMerges(mj.Merges)
	if err != nil {
		return nil, err
	}
	m.merges = make(map[uint64]merge, len(pairs))
	for i, p := range pairs {
		a, okA := m.vocab[p[0]]
		b, okB := m.vocab[p[1]]
		if !okA || !okB {
			return nil, fmt.Errorf("merges[%d]: %q %q: token not in the vocabulary", i, p[0], p[1])
		}
		right := p[1]
		if m.prefix != "" {
			right = strings.TrimPrefix(right, m.prefix)
		}
		id, ok := m.vocab[p[0]+right]
		if !ok {
			return nil, fmt.Errorf("merges[%d]: merged token %q not in the vocabulary", i, p[0]+right)
		}
		m.merges[pairKey(a, b)] = merge{rank: int32(i), id: int32(id)}
	}
	m.splitMeta = splitsAtMeta(m, pairs)
	return m, nil
}

// parseMerges reads merges written as "a b" strings or as ["a", "b"] pairs.
func parseMerges(raw json.RawMessage) ([][2]string, error) {
	if isNull(raw) {
		return nil, nil
	}
	var asPairs [][]string
	if err := json.Unmarshal(raw, &asPairs); err == nil {
		out := make([][2]string, len(asPairs))
		for i, p := range asPairs {
			if len(p) != 2 {
				return nil, fmt.Errorf("merges[%d]: want 2 tokens, got %d", i, len(p))
			}
			out[i] = [2]string{p[0], p[1]}
		}
		return out, nil
	}
	var asStrings []string
	if err := json.Unmarshal(raw, &asStrings); err != nil {
		return nil, fmt.Errorf("merges: want a list of \"a b\" strings or [a, b] pairs: %w", err)
	}
	out := make([][2]string, len(asStrings))
	for i, s := range asStrings {
		parts := strings.Split(s, " ")
		if len(parts) != 2 {
			return nil, fmt.Errorf("merges[%d]: %q is not two tokens separated by a space", i, s)
		}
		out[i] = [2]string{parts[0], parts[1]}
	}
	return out, nil
}

func parseComponent(raw json.RawMessage, field string) (*component, error) {
	var c component
	if err := json.Unmarshal(raw, &c); err != nil {
		return nil, fmt.Errorf("%s: %w", field, err)
	}
	return &c, nil
}

// parsePattern reads {"String": s} or {"Regex": r}.
func parsePattern(raw json.RawMessage, field string) (pattern, error) {
	var pj struct {
		String *string `json:"String"`
		Regex  *string `json:"Regex"`
	}
	if err := json.Unmarshal(raw, &pj); err != nil || isNull(raw) {
		return pattern{}, fmt.Errorf("%s: want {\"String\": ...} or {\"Regex\": ...}", field)
	}
	switch {
	case pj.String != nil:
		return pattern{literal: *pj.String}, nil
	case pj.Regex != nil:
		re, err := compileRegex(*pj.Regex)
		if err != nil {
			return pattern{}, fmt.Errorf("%s: %w", field, err)
		}
		return pattern{re: re, fast: fastMatcher(*pj.Regex)}, nil
	}
	return pattern{}, fmt.Errorf("%s: want {\"String\": ...} or {\"Regex\": ...}", field)
}

// compileRegex compiles an Oniguruma pattern from tokenizer.json. The .NET
// syntax of regexp2 (without its RE2 mode, whose \s is ASCII only) matches
// Oniguruma's Unicode semantics for the constructs these patterns use:
// \s, \p{L}, \p{N}, (?i:...), lookahead and bounded repetition. Possessive
// quantifiers (tiktoken's x?+ and x++), which regexp2 does not parse, are
// rewritten as the atomic groups they abbreviate (atomicPossessive).
func compileRegex(expr string) (*regexp2.Regexp, error) {
	atomic, err := atomicPossessive(expr)
	if err != nil {
		return nil, err
	}
	return regexp2.Compile(atomic, regexp2.None)
}

func parseNormalizer(raw json.RawMessage, field string) (normalizer, error) {
	c, err := parseComponent(raw, field)
	if err != nil {
		return nil, err
	}
	switch c.Type {
	case "NFC":
		return unicodeNormalizer{norm.NFC}, nil
	case "NFD":
		return unicodeNormalizer{norm.NFD}, nil
	case "NFKC":
		return unicodeNormalizer{norm.NFKC}, nil
	case "NFKD":
		return unicodeNormalizer{norm.NFKD}, nil
	case "Lowercase":
		return lowercaseNormalizer{}, nil
	case "Prepend":
		if c.Prepend == nil {
			return nil, fmt.Errorf("%s.prepend: missing", field)
		}
		return prependNormalizer{*c.Prepend}, nil
	case "Replace":
		return parseReplace(c, field)
	case "Strip":
		return stripNormalizer{left: c.StripLeft == nil || *c.StripLeft, right: c.StripRight == nil || *c.StripRight}, nil
	case "Sequence":
		seq := sequenceNormalizer{}
		for i, sub := range c.Normalizers {
			n, err := parseNormalizer(sub, fmt.Sprintf("%s.normalizers[%d]", field, i))
			if err != nil {
				return nil, err
			}
			seq = append(seq, n)
		}
		return seq, nil
	}
	return nil, unsupported(field, "normalizer", c.Type)
}

func parseReplace(c *component, field string) (replaceNormalizer, error) {
	p, err := parsePattern(c.Pattern, field+".pattern")
	if err != nil {
		return replaceNormalizer{}, err
	}
	if c.Content == nil {
		return replaceNormalizer{}, fmt.Errorf("%s.content: missing", field)
	}
	p.content = *c.Content
	return replaceNormalizer{p}, nil
}

func unsupported(field, kind, typ string) error {
	if typ == "" {
		return fmt.Errorf("%s: missing type", field)
	}
	return fmt.Errorf("%s: unsupported %s type %q", field, kind, typ)
}

func parsePreTokenizer(raw json.RawMessage, field string, table *byteLevelTable) (preTokenizer, error) {
	c, err := parseComponent(raw, field)
	if err != nil {
		return nil, err
	}
	switch c.Type {
	case "Split":
		p, err := parsePattern(c.Pattern, field+".pattern")
		if err != nil {
			return nil, err
		}
		b, ok := splitBehaviors[c.Behavior]
		if !ok {
			return nil, fmt.Errorf("%s.behavior: unsupported value %q", field, c.Behavior)
		}
		return &splitPreTokenizer{p: p, behavior: b, invert: c.Invert}, nil
	case "ByteLevel":
		re, err := compileRegex(gpt2Pattern)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", field, err)
		}
		return &byteLevelPreTokenizer{
			addPrefixSpace: c.AddPrefixSpace == nil || *c.AddPrefixSpace,
			useRegex:       c.UseRegex == nil || *c.UseRegex,
			re:             pattern{re: re},
			table:          table,
		}, nil
	case "Digits":
		return digitsPreTokenizer{individual: c.Individual}, nil
	case "Metaspace":
		rep, scheme, err := parseMetaspace(c, field)
		if err != nil {
			return nil, err
		}
		return &metaspacePreTokenizer{replacement: rep, scheme: scheme, split: c.Split == nil || *c.Split}, nil
	case "WhitespaceSplit":
		return whitespaceSplitPreTokenizer{}, nil
	case "Sequence":
		seq := sequencePreTokenizer{}
		for i, sub := range c.PreTokenizers {
			p, err := parsePreTokenizer(sub, fmt.Sprintf("%s.pretokenizers[%d]", field, i), table)
			if err != nil {
				return nil, err
			}
			seq = append(seq, p)
		}
		return seq, nil
	}
	return nil, unsupported(field, "pre-tokenizer", c.Type)
}

// parseMetaspace reads the replacement and prepend scheme, accepting the
// older add_prefix_space flag.
func parseMetaspace(c *component, field string) (string, prependScheme, error) {
	rep := "▁"
	if c.Replacement != nil {
		rep = *c.Replacement
	}
	if utf8.RuneCountInString(rep) != 1 {
		return "", 0, fmt.Errorf("%s.replacement: want one character, got %q", field, rep)
	}
	scheme := prependAlways
	switch {
	case c.PrependScheme != nil:
		switch *c.PrependScheme {
		case "always":
			scheme = prependAlways
		case "first":
			scheme = prependFirst
		case "never":
			scheme = prependNever
		default:
			return "", 0, fmt.Errorf("%s.prepend_scheme: unsupported value %q", field, *c.PrependScheme)
		}
	case c.AddPrefixSpace != nil && !*c.AddPrefixSpace:
		scheme = prependNever
	}
	return rep, scheme, nil
}

func parseDecoder(raw json.RawMessage, field string, table *byteLevelTable) (decoder, error) {
	c, err := parseComponent(raw, field)
	if err != nil {
		return nil, err
	}
	switch c.Type {
	case "ByteLevel":
		return byteLevelDecoder{table}, nil
	case "Metaspace":
		rep, scheme, err := parseMetaspace(c, field)
		if err != nil {
			return nil, err
		}
		return metaspaceDecoder{replacement: rep, scheme: scheme}, nil
	case "Replace":
		r, err := parseReplace(c, field)
		if err != nil {
			return nil, err
		}
		return replaceDecoder{r.p}, nil
	case "ByteFallback":
		return byteFallbackDecoder{}, nil
	case "Fuse":
		return fuseDecoder{}, nil
	case "Strip":
		if c.Content == nil || utf8.RuneCountInString(*c.Content) != 1 {
			return nil, fmt.Errorf("%s.content: want one character", field)
		}
		r, _ := utf8.DecodeRuneInString(*c.Content)
		return stripDecoder{content: r, start: c.Start, stop: c.Stop}, nil
	case "Sequence":
		seq := sequenceDecoder{}
		for i, sub := range c.Decoders {
			d, err := parseDecoder(sub, fmt.Sprintf("%s.decoders[%d]", field, i), table)
			if err != nil {
				return nil, err
			}
			seq = append(seq, d)
		}
		return seq, nil
	}
	return nil, unsupported(field, "decoder", c.Type)
}

func parsePostProcessor(raw json.RawMessage, field string, t *Tokenizer) (postProcessor, error) {
	c, err := parseComponent(raw, field)
	if err != nil {
		return nil, err
	}
	switch c.Type {
	case "ByteLevel":
		return noopProcessor{}, nil
	case "TemplateProcessing":
		return parseTemplate(c, field)
	case "RobertaProcessing", "BertProcessing":
		cls, err := parseTokenPair(c.Cls, field+".cls")
		if err != nil {
			return nil, err
		}
		sep, err := parseTokenPair(c.Sep, field+".sep")
		if err != nil {
			return nil, err
		}
		return templateProcessor{items: []templateItem{{ids: []int{cls}}, {sequence: true}, {ids: []int{sep}}}}, nil
	case "Sequence":
		seq := sequenceProcessor{}
		for i, sub := range c.Processors {
			p, err := parsePostProcessor(sub, fmt.Sprintf("%s.processors[%d]", field, i), t)
			if err != nil {
				return nil, err
			}
			seq = append(seq, p)
		}
		return seq, nil
	}
	return nil, unsupported(field, "post-processor", c.Type)
}

// parseTokenPair reads a ["<s>", 0] pair and returns the id.
func parseTokenPair(raw []json.RawMessage, field string) (int, error) {
	var id int
	if len(raw) != 2 || json.Unmarshal(raw[1], &id) != nil {
		return 0, fmt.Errorf("%s: want [token, id]", field)
	}
	return id, nil
}

func parseTemplate(c *component, field string) (templateProcessor, error) {
	var p templateProcessor
	if c.Single == nil {
		return p, fmt.Errorf("%s.single: missing", field)
	}
	for i, raw := range c.Single {
		var item struct {
			SpecialToken *struct {
				ID string `json:"id"`
			} `json:"SpecialToken"`
			Sequence *struct {
				ID string `json:"id"`
			} `json:"Sequence"`
		}
		f := fmt.Sprintf("%s.single[%d]", field, i)
		if err := json.Unmarshal(raw, &item); err != nil {
			return p, fmt.Errorf("%s: %w", f, err)
		}
		switch {
		case item.Sequence != nil:
			p.items = append(p.items, templateItem{sequence: true})
		case item.SpecialToken != nil:
			def, ok := c.SpecialTokens[item.SpecialToken.ID]
			if !ok {
				return p, fmt.Errorf("%s: special token %q not in %s.special_tokens", f, item.SpecialToken.ID, field)
			}
			p.items = append(p.items, templateItem{ids: def.IDs})
		default:
			return p, fmt.Errorf("%s: want SpecialToken or Sequence", f)
		}
	}
	return p, nil
}
