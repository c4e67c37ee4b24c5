package tokenizer

import (
	"github.com/dlclark/regexp2"
	"strings"
	"testing"
	"unicode/utf8"
)

// Two small tokenizers in the two families relupo supports, written for the
// fuzz targets: byte-level BPE with a GPT-2-style split, and
// SentencePiece-style BPE with byte fallback.
const fuzzByteLevel = `{
 "version": "1.0",
 "added_tokens": [{"id": 9, "content": "<|end|>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true}],
 "normalizer": null,
 "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
   {"type": "Split", "pattern": {"Regex": "'s|'t| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"}, "behavior": "Isolated", "invert": false},
   {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false}]},
 "post_processor": null,
 "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
 "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null, "end_of_word_suffix": null,
   "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
   "vocab": {"ab": 3, "Ġa": 4, "Ġab": 6, "cd": 8 ALPHABET},
   "merges": ["a b", "Ġ a", "Ġa b", "c d"]}
}`

const fuzzByteFallback = `{
 "version": "1.0",
 "added_tokens": [{"id": 0, "content": "<unk>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true},
                  {"id": 1, "content": "<s>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true}],
 "normalizer": {"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": "▁"}, {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]},
 "pre_tokenizer": null,
 "post_processor": {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
   "pair": [{"Sequence": {"id": "A", "type_id": 0}}], "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}},
 "decoder": {"type": "Sequence", "decoders": [{"type": "Replace", "pattern": {"String": "▁"}, "content": " "}, {"type": "ByteFallback"}, {"type": "Fuse"}, {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
 "model": {"type": "BPE", "dropout": null, "unk_token": "<unk>", "continuing_subword_prefix": null, "end_of_word_suffix": null,
   "fuse_unk": true, "byte_fallback": true, "ignore_merges": false,
   "vocab": {"<unk>": 0, "<s>": 1, "▁": 2, "a": 3, "b": 4, "▁a": 5, "ab": 6 BYTES},
   "merges": ["▁ a", "a b"]}
}`

// byteVocab lists the 256 <0xNN> byte tokens from id 7 on.
func byteVocab() string {
	var sb strings.Builder
	for b := 0; b < 256; b++ {
		sb.WriteString(`, "<0x`)
		sb.WriteString(strings.ToUpper(string("0123456789abcdef"[b>>4]) + string("0123456789abcdef"[b&15])))
		sb.WriteString(`>": `)
		sb.WriteString(itoa(7 + b))
	}
	return sb.String()
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var d []byte
	for ; n > 0; n /= 10 {
		d = append([]byte{byte('0' + n%10)}, d...)
	}
	return string(d)
}

// byteLevelVocab lists the 256 characters of the byte-level alphabet from id 10 on.
func byteLevelVocab() string {
	var sb strings.Builder
	table := newByteLevelTable()
	for b := 0; b < 256; b++ {
		sb.WriteString(`, "`)
		r := table.toRune[b]
		if r == '"' || r == '\\' {
			sb.WriteByte('\\')
		}
		sb.WriteRune(r)
		sb.WriteString(`": `)
		sb.WriteString(itoa(10 + b))
	}
	return sb.String()
}

func fuzzSources() []string {
	return []string{
		strings.Replace(fuzzByteLevel, " ALPHABET", byteLevelVocab(), 1),
		strings.Replace(fuzzByteFallback, " BYTES", byteVocab(), 1),
	}
}

func fuzzTokenizers(t testing.TB) []*Tokenizer {
	var out []*Tokenizer
	for _, src := range fuzzSources() {
		tok, err := Parse([]byte(src), "fuzz.json")
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, tok)
	}
	return out
}

// FuzzEncode: encoding never fails or panics on any text, and decoding
// gives back valid UTF-8 input exactly (both tokenizers can spell every
// byte: the byte-level one through its byte alphabet, the other through
// byte fallback), except a literal ▁ for the SentencePiece-style one.
func FuzzEncode(f *testing.F) {
	for _, s := range []string{"", "ab ab", "abcd <|end|> a", "héllo 🦙\n\tz", "  a  b  ", "'s 12 ab", "\x00\xff"} {
		f.Add(s)
	}
	toks := fuzzTokenizers(f)
	f.Fuzz(func(t *testing.T, s string) {
		for i, tok := range toks {
			ids, err := tok.Encode(s, false)
			if err != nil {
				t.Fatalf("tokenizer %d: Encode(%q): %v", i, s, err)
			}
			if !utf8.ValidString(s) || i == 1 && strings.Contains(s, "▁") {
				// A literal ▁ in the text decodes as a space with a
				// SentencePiece-style tokenizer, in HF tokenizers as in
				// sentencepiece: it is the meta symbol.
				continue
			}
			if got := tok.Decode(ids, false); got != s {
				t.Fatalf("tokenizer %d: Decode(Encode(%q)) = %q (ids %v)", i, s, got, ids)
			}
		}
	})
}

// FuzzParse: any bytes as tokenizer.json give a tokenizer or an error, never
// a panic, and a tokenizer that loads can encode.
func FuzzParse(f *testing.F) {
	for _, src := range fuzzSources() {
		f.Add([]byte(src))
	}
	f.Add([]byte(`{"model": {"type": "WordPiece"}}`))
	f.Add([]byte(`{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": [["a", "a"]]}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		tok, err := Parse(data, "fuzz.json")
		if err != nil {
			return
		}
		if _, err := tok.Encode("ab cd ▁ 🦙", true); err != nil {
			return
		}
		tok.Decode([]int{0, 1, 2, 1 << 30, -1}, false)
	})
}

// FuzzAtomicPossessive: the rewrite never panics, and leaves every pattern
// regexp2 already parses (which therefore has no possessive quantifier)
// unchanged.
func FuzzAtomicPossessive(f *testing.F) {
	for _, s := range []string{qwen2Pattern, llama3Pattern, gpt2Pattern, `[^\r\n\p{L}\p{N}]?+\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]++[\r\n]*`, `(a|b)*+c{2,3}+[]x]++`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out, err := atomicPossessive(s)
		if err != nil {
			return
		}
		if _, perr := regexp2.Compile(s, regexp2.None); perr == nil && out != s {
			t.Fatalf("%q parses as it is but was rewritten to %q", s, out)
		}
	})
}
