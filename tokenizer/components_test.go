package tokenizer

import (
	"strings"
	"testing"
)

// tinyJSON is a small character-level BPE tokenizer.json: a-e, space, "▁",
// "<0x..>" bytes for "é", the merges "a b" and "ab c", and fields that tests
// replace with their own.
func tinyJSON(normalizer, preTokenizer, decoder, added, modelExtra string) string {
	return `{
	"added_tokens": [` + added + `],
	"normalizer": ` + normalizer + `,
	"pre_tokenizer": ` + preTokenizer + `,
	"post_processor": null,
	"decoder": ` + decoder + `,
	"model": {"type": "BPE", ` + modelExtra + `
		"vocab": {"a": 0, "b": 1, "c": 2, "d": 3, "e": 4, " ": 5, "▁": 6, "ab": 7, "abc": 8, "<unk>": 9,
			"<0xC3>": 10, "<0xA9>": 11, "1": 12, "2": 13, "<x>": 14, "▁a": 15},
		"merges": ["a b", "ab c", "▁ a"]}
}`
}

func mustParse(t *testing.T, js string) *Tokenizer {
	t.Helper()
	tk, err := Parse([]byte(js), "test.json")
	if err != nil {
		t.Fatal(err)
	}
	return tk
}

func TestComponents(t *testing.T) {
	const xTok = `{"id": 14, "content": "<x>", "special": true, "normalized": false, "single_word": %SW%, "lstrip": %L%, "rstrip": %R%}`
	tok := func(sw, l, r string) string {
		return strings.NewReplacer("%SW%", sw, "%L%", l, "%R%", r).Replace(xTok)
	}
	tests := []struct {
		name string
		js   string
		text string
		want []int
	}{
		{"merges by rank", tinyJSON("null", "null", "null", "", ""), "abcab", []int{8, 7}},
		{"unknown dropped, neighbours merge", tinyJSON("null", "null", "null", "", ""), "azb", []int{7}},
		{"fused unk", tinyJSON("null", "null", "null", "", `"unk_token": "<unk>", "fuse_unk": true,`), "azzb", []int{0, 9, 1}},
		{"unfused unk", tinyJSON("null", "null", "null", "", `"unk_token": "<unk>",`), "azzb", []int{0, 9, 9, 1}},
		{"byte fallback", tinyJSON("null", "null", "null", "", `"unk_token": "<unk>", "byte_fallback": true,`), "aéz", []int{0, 10, 11, 9}},
		{"added token plain", tinyJSON("null", "null", "null", tok("false", "false", "false"), ""), "a <x> b", []int{0, 5, 14, 5, 1}},
		{"added token lstrip rstrip", tinyJSON("null", "null", "null", tok("false", "true", "true"), ""), "a  <x>  b", []int{0, 14, 1}},
		{"added token single word rejected, its characters dropped", tinyJSON("null", "null", "null", tok("true", "false", "false"), ""), "a<x>", []int{0}},
		{"added token single word accepted", tinyJSON("null", "null", "null", tok("true", "false", "false"), ""), "a <x>", []int{0, 5, 14}},
		{"digits individual", tinyJSON("null", `{"type": "Digits", "individual_digits": true}`, "null", "", ""), "ab12", []int{7, 12, 13}},
		{"split removed", tinyJSON("null", `{"type": "Split", "pattern": {"String": " "}, "behavior": "Removed", "invert": false}`, "null", "", ""), "ab c", []int{7, 2}},
		{"split merged with previous", tinyJSON("null", `{"type": "Split", "pattern": {"Regex": "b"}, "behavior": "MergedWithPrevious", "invert": false}`, "null", "", ""), "abc", []int{7, 2}},
		{"split merged with next", tinyJSON("null", `{"type": "Split", "pattern": {"Regex": "b"}, "behavior": "MergedWithNext", "invert": false}`, "null", "", ""), "abc", []int{0, 1, 2}},
		{"split contiguous inverted", tinyJSON("null", `{"type": "Split", "pattern": {"Regex": "[ab]"}, "behavior": "Contiguous", "invert": true}`, "null", "", ""), "abab", []int{7, 7}},
		{"metaspace always", tinyJSON("null", `{"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always", "split": true}`, "null", "", ""), "a a", []int{15, 15}},
		{"metaspace first after added token", tinyJSON("null", `{"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first", "split": true}`, "null", tok("false", "false", "false"), ""), "a<x>a", []int{15, 14, 0}},
		{"metaspace never", tinyJSON("null", `{"type": "Metaspace", "replacement": "▁", "prepend_scheme": "never", "split": false}`, "null", "", ""), "a", []int{0}},
		{"normalizer sequence", tinyJSON(`{"type": "Sequence", "normalizers": [{"type": "NFC"}, {"type": "Lowercase"}, {"type": "Prepend", "prepend": "▁"}, {"type": "Replace", "pattern": {"Regex": "d+"}, "content": "e"}]}`, "null", "null", "", ""), "ADDb", []int{15, 4, 1}},
		{"ignore merges", tinyJSON("null", "null", "null", "", `"ignore_merges": true,`), "abc", []int{8}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tk := mustParse(t, tt.js)
			got, err := tk.Encode(tt.text, true)
			if err != nil {
				t.Fatal(err)
			}
			if !equalInts(got, tt.want) {
				t.Errorf("Encode(%q) = %v, want %v", tt.text, got, tt.want)
			}
		})
	}
}

func TestDecoders(t *testing.T) {
	tests := []struct {
		name    string
		decoder string
		ids     []int
		want    string
	}{
		{"none joins with spaces", "null", []int{0, 1}, "a b"},
		{"metaspace", `{"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always"}`, []int{15, 15}, "a a"},
		{"byte fallback and fuse", `{"type": "Sequence", "decoders": [{"type": "ByteFallback"}, {"type": "Fuse"}]}`, []int{0, 10, 11, 1}, "aéb"},
		{"byte fallback invalid", `{"type": "ByteFallback"}`, []int{0, 10, 1}, "a\uFFFDb"},
		{"strip", `{"type": "Sequence", "decoders": [{"type": "Replace", "pattern": {"String": "a"}, "content": " "}, {"type": "Strip", "content": " ", "start": 1, "stop": 1}]}`, []int{0, 15, 5}, "▁"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tk := mustParse(t, tinyJSON("null", "null", tt.decoder, "", ""))
			if got := tk.Decode(tt.ids, false); got != tt.want {
				t.Errorf("Decode(%v) = %q, want %q", tt.ids, got, tt.want)
			}
		})
	}
}

func TestLossyString(t *testing.T) {
	tests := []struct {
		in   []byte
		want string
	}{
		{[]byte("ok"), "ok"},
		{[]byte{0xF0, 0x9F, 0x98}, "\uFFFD"},
		{[]byte{0x80, 0x80, 'a'}, "\uFFFD\uFFFDa"},
		{[]byte{0xE0, 0x80}, "\uFFFD\uFFFD"},
		{[]byte{'a', 0xF0, 0x9F, 0x98, 0x80, 'b'}, "a😀b"},
	}
	for _, tt := range tests {
		if got := lossyString(tt.in); got != tt.want {
			t.Errorf("lossyString(% x) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestMalformed(t *testing.T) {
	ok := tinyJSON("null", "null", "null", "", "")
	tests := []struct {
		name string
		js   string
		want string
	}{
		{"not JSON", "{", "invalid JSON"},
		{"no model", `{"added_tokens": []}`, "model: missing"},
		{"unknown model", strings.Replace(ok, `"type": "BPE"`, `"type": "Unigram"`, 1), `"Unigram"`},
		{"unknown normalizer", tinyJSON(`{"type": "BertNormalizer"}`, "null", "null", "", ""), `normalizer: unsupported normalizer type "BertNormalizer"`},
		{"unknown nested pre-tokenizer", tinyJSON("null", `{"type": "Sequence", "pretokenizers": [{"type": "Punctuation"}]}`, "null", "", ""), `pre_tokenizer.pretokenizers[0]: unsupported pre-tokenizer type "Punctuation"`},
		{"unknown decoder", tinyJSON("null", "null", `{"type": "WordPiece"}`, "", ""), `decoder: unsupported decoder type "WordPiece"`},
		{"bad behavior", tinyJSON("null", `{"type": "Split", "pattern": {"String": " "}, "behavior": "Sideways"}`, "null", "", ""), "pre_tokenizer.behavior"},
		{"bad regex", tinyJSON("null", `{"type": "Split", "pattern": {"Regex": "("}, "behavior": "Isolated"}`, "null", "", ""), "pre_tokenizer.pattern"},
		{"bad merge", strings.Replace(ok, `"ab c"`, `"ab z"`, 1), "merges[1]"},
		{"merge without result", strings.Replace(ok, `"▁ a"`, `"b a"`, 1), `merged token "ba"`},
		{"added token without id", tinyJSON("null", "null", "null", `{"content": "x"}`, ""), "added_tokens[0]"},
		{"unk not in vocab", tinyJSON("null", "null", "null", "", `"unk_token": "<nope>",`), "model.unk_token"},
		{"dropout", tinyJSON("null", "null", "null", "", `"dropout": 0.1,`), "dropout"},
		{"vocab wrong type", strings.Replace(ok, `"a": 0`, `"a": "zero"`, 1), "model"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.js), "bad.json")
			if err == nil {
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "bad.json") {
				t.Errorf("error %q does not name the file and %q", err, tt.want)
			}
		})
	}
	if _, err := Load("no/such/tokenizer.json"); err == nil {
		t.Error("Load of a missing file succeeded")
	}
}
