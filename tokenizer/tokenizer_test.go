package tokenizer

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/relupo/relupo/internal/testutil"
)

// Llama-2's tokenizer (SentencePiece-style BPE with byte fallback). The
// expected ids are those of Hugging Face's LlamaTokenizerFast (legacy
// behaviour, which is what this tokenizer.json encodes).
func TestLlama2Encode(t *testing.T) {
	tk := loadLlama(t)
	tests := []struct {
		text string
		want []int
	}{
		{"", []int{1}},
		{"Hello", []int{1, 15043}},
		{" Hello", []int{1, 29871, 15043}},
		{"Hello world", []int{1, 15043, 3186}},
		{"The quick brown fox", []int{1, 450, 4996, 17354, 1701, 29916}},
		{"\n", []int{1, 29871, 13}},
		{"Hello\nworld", []int{1, 15043, 13, 11526}},
		// Added tokens are matched before the model runs; the text after
		// one is normalized on its own, so it gets its own "▁".
		{"<s>Hello</s>", []int{1, 1, 15043, 2}},
		{"Hello</s>world", []int{1, 15043, 2, 3186}},
		{"<unk>", []int{1, 0}},
		// Byte fallback: 🦙 is not in the vocabulary, its UTF-8 bytes are.
		{"🦙", []int{1, 29871, 243, 162, 169, 156}},
		{"I love 🦙s", []int{1, 306, 5360, 29871, 243, 162, 169, 156, 29879}},
		{"日本語", []int{1, 29871, 30325, 30346, 30968}},
		{"  leading", []int{1, 259, 8236}},
	}
	for _, tt := range tests {
		t.Run(tt.text, func(t *testing.T) {
			got, err := tk.Encode(tt.text, true)
			if err != nil {
				t.Fatal(err)
			}
			if !equalInts(got, tt.want) {
				t.Errorf("Encode(%q) = %v, want %v", tt.text, got, tt.want)
			}
			noSpecial, err := tk.Encode(tt.text, false)
			if err != nil {
				t.Fatal(err)
			}
			if !equalInts(noSpecial, tt.want[1:]) {
				t.Errorf("Encode(%q, false) = %v, want %v", tt.text, noSpecial, tt.want[1:])
			}
		})
	}
}

func TestByteFallbackTokens(t *testing.T) {
	tk := loadLlama(t)
	for b, want := range map[byte]int{0x00: 3, 0x0A: 13, 0xF0: 243, 0xFF: 258} {
		id, ok := tk.TokenID(byteToken(b))
		if !ok || id != want {
			t.Errorf("TokenID(%s) = %d, %v; want %d", byteToken(b), id, ok, want)
		}
	}
	// A lone fallback byte that is not valid UTF-8 decodes to U+FFFD.
	if got := tk.Decode([]int{15043, 243, 3186}, false); got != "Hello\uFFFD world" {
		t.Errorf("Decode of a truncated byte sequence = %q", got)
	}
}

// readInp returns the test strings of a llama.cpp answer key.
func readInp(t *testing.T) []string {
	t.Helper()
	dir := testutil.SharedPath(t, "fixtures", "tokenizers", "answer-keys")
	cases, _ := readAnswerKey(t, filepath.Join(dir, "ggml-vocab-gpt-2.gguf.inp"), filepath.Join(dir, "ggml-vocab-gpt-2.gguf.out"))
	return append(cases,
		"Ünïcödé — “quotes” … 😀👍🏽 \u00a0non-breaking\u3000space",
		"tabs\tand\r\nCRLF",
	)
}

func TestDecodeRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		load func(t testing.TB) *Tokenizer
		// covered reports whether the vocabulary can spell text; a
		// character it cannot spell is dropped, as Hugging Face does for
		// BPE without byte fallback or unknown token.
		covered func(tk *Tokenizer, text string) bool
	}{
		{name: "tiny-random-llama", load: loadLlama},
		{name: "qwen3", load: loadQwen3},
		{name: "gpt2", load: func(t testing.TB) *Tokenizer {
			tk, err := Load(testutil.SharedPath(t, "fixtures", "tokenizers", "gpt2", "tokenizer.json"))
			if err != nil {
				t.Fatal(err)
			}
			return tk
		}},
		{name: "tiny-random-gpt2", load: loadTinyGPT2, covered: func(tk *Tokenizer, text string) bool {
			table := newByteLevelTable()
			for _, r := range table.encode(text) {
				if _, ok := tk.TokenID(string(r)); !ok {
					return false
				}
			}
			return true
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tk := tt.load(t)
			n := 0
			for i, text := range readInp(t) {
				if tt.covered != nil && !tt.covered(tk, text) {
					continue
				}
				n++
				ids, err := tk.Encode(text, false)
				if err != nil {
					t.Fatalf("case %d: %v", i, err)
				}
				if got := tk.Decode(ids, false); got != text {
					t.Errorf("case %d: decode(encode(%q)) = %q (ids %v)", i, text, got, ids)
				}
			}
			if n < 20 {
				t.Errorf("only %d cases checked", n)
			}
		})
	}
}

func TestLlama2Decode(t *testing.T) {
	tk := loadLlama(t)
	ids, err := tk.Encode("<s>[INST] Hi [/INST] Hello</s>", false)
	if err != nil {
		t.Fatal(err)
	}
	want := []int{1, 518, 25580, 29962, 6324, 518, 29914, 25580, 29962, 15043, 2}
	if !equalInts(ids, want) {
		t.Errorf("Encode = %v, want %v", ids, want)
	}
	// The text after an added token is normalized on its own and gets a
	// "▁", which decodes to a space.
	if got := tk.Decode(ids, false); got != "<s> [INST] Hi [/INST] Hello</s>" {
		t.Errorf("Decode = %q", got)
	}
	if got := tk.Decode(ids, true); got != "[INST] Hi [/INST] Hello" {
		t.Errorf("Decode skipping special = %q", got)
	}
}

// tiny-random-gpt2's 1000-token vocabulary lacks some bytes: characters
// made of them are dropped.
func TestDroppedCharacters(t *testing.T) {
	tk := loadTinyGPT2(t)
	ids, err := tk.Encode("a\tb", false)
	if err != nil {
		t.Fatal(err)
	}
	if got := tk.Decode(ids, false); got != "ab" {
		t.Errorf("decode(encode(\"a\\tb\")) = %q, want %q", got, "ab")
	}
}

// The gpt2 fixture's extra added tokens (runs of spaces and tabs) are
// non-special, normalized added tokens: they are matched before the
// pre-tokenizer, leftmost and longest first.
func TestWhitespaceAddedTokens(t *testing.T) {
	tk, err := Load(testutil.SharedPath(t, "fixtures", "tokenizers", "gpt2", "tokenizer.json"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		text string
		want []int
	}{
		{"  ", []int{50286}},
		{"   Hello", []int{50285, 15496}},
		{"\t\t", []int{50294}},
		{"a <|endoftext|>b", []int{64, 220, 50256, 65}},
	}
	for _, tt := range tests {
		got, err := tk.Encode(tt.text, true)
		if err != nil {
			t.Fatal(err)
		}
		if !equalInts(got, tt.want) {
			t.Errorf("Encode(%q) = %v, want %v", tt.text, got, tt.want)
		}
		if dec := tk.Decode(got, false); dec != tt.text {
			t.Errorf("Decode(%v) = %q, want %q", got, dec, tt.text)
		}
	}
	if got := tk.Decode([]int{64, 50256, 65}, true); got != "ab" {
		t.Errorf("Decode skipping special = %q, want %q", got, "ab")
	}
}

func TestQwen3SpecialTokens(t *testing.T) {
	tk := loadQwen3(t)
	text := "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
	got, err := tk.Encode(text, true)
	if err != nil {
		t.Fatal(err)
	}
	want := []int{151644, 872, 198, 13048, 151645, 198, 151644, 77091, 198}
	if !equalInts(got, want) {
		t.Errorf("Encode = %v, want %v", got, want)
	}
	if dec := tk.Decode(got, false); dec != text {
		t.Errorf("Decode = %q", dec)
	}
	if dec := tk.Decode(got, true); dec != "user\nHi\nassistant\n" {
		t.Errorf("Decode skipping special = %q", dec)
	}
	if id, ok := tk.TokenID("<|im_end|>"); !ok || id != 151645 || !tk.IsSpecial(id) {
		t.Errorf("TokenID(<|im_end|>) = %d, %v", id, ok)
	}
	if tok, ok := tk.Token(151643); !ok || tok != "<|endoftext|>" {
		t.Errorf("Token(151643) = %q, %v", tok, ok)
	}
	if n := tk.VocabSize(); n != 151669 {
		t.Errorf("VocabSize = %d, want 151669", n)
	}
}

func TestConcurrentEncode(t *testing.T) {
	tk := loadLlama(t)
	want, err := tk.Encode("The quick brown fox jumps over the lazy dog", true)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan string, 8)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 100; i++ {
				got, err := tk.Encode("The quick brown fox jumps over the lazy dog", true)
				if err != nil || !equalInts(got, want) {
					errs <- "concurrent Encode differs"
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Fatal(e)
	}
}

func TestLoadConfig(t *testing.T) {
	t.Run("llama", func(t *testing.T) {
		c, err := LoadConfig(testutil.SharedPath(t, "fixtures", "models", "tiny-random-llama"))
		if err != nil {
			t.Fatal(err)
		}
		if c.BOSToken != "<s>" || c.EOSToken != "</s>" || c.PadToken != "<unk>" || c.UNKToken != "<unk>" {
			t.Errorf("tokens = %q %q %q %q", c.BOSToken, c.EOSToken, c.PadToken, c.UNKToken)
		}
		if c.AddBOSToken == nil || !*c.AddBOSToken || c.AddEOSToken == nil || *c.AddEOSToken {
			t.Errorf("add_bos/add_eos = %v %v", c.AddBOSToken, c.AddEOSToken)
		}
		if c.ModelMaxLength != 2048 || !strings.Contains(c.ChatTemplate, "[INST]") {
			t.Errorf("ModelMaxLength = %d, ChatTemplate = %.40q", c.ModelMaxLength, c.ChatTemplate)
		}
	})
	t.Run("qwen3", func(t *testing.T) {
		c, err := LoadConfig(testutil.SharedPath(t, "fixtures", "tokenizers", "qwen3", "tokenizer.json"))
		if err != nil {
			t.Fatal(err)
		}
		if c.BOSToken != "" || c.EOSToken != "<|im_end|>" || c.PadToken != "<|endoftext|>" || len(c.AdditionalSpecialTokens) != 13 {
			t.Errorf("config = %+v", c)
		}
		if got := c.SpecialTokens(); len(got) != 2 || got["eos_token"] != "<|im_end|>" {
			t.Errorf("SpecialTokens = %v", got)
		}
	})
	tests := []struct {
		name    string
		files   map[string]string
		check   func(c *Config) bool
		wantErr string
	}{
		{
			name: "objects and template list",
			files: map[string]string{"tokenizer_config.json": `{"bos_token": {"content": "<b>", "lstrip": false},
				"chat_template": [{"name": "tool_use", "template": "T"}, {"name": "default", "template": "D"}],
				"model_max_length": 1000000000000000019884624838656}`},
			check: func(c *Config) bool { return c.BOSToken == "<b>" && c.ChatTemplate == "D" && c.ModelMaxLength == 0 },
		},
		{
			name: "jinja file wins, special_tokens_map fills gaps",
			files: map[string]string{
				"tokenizer_config.json":   `{"chat_template": "old", "eos_token": "</e>"}`,
				"chat_template.jinja":     "new",
				"special_tokens_map.json": `{"eos_token": "ignored", "pad_token": {"content": "<p>"}}`,
			},
			check: func(c *Config) bool { return c.ChatTemplate == "new" && c.EOSToken == "</e>" && c.PadToken == "<p>" },
		},
		{
			name:    "bad token",
			files:   map[string]string{"tokenizer_config.json": `{"eos_token": 3}`},
			wantErr: "eos_token",
		},
		{
			name:    "no default template",
			files:   map[string]string{"tokenizer_config.json": `{"chat_template": [{"name": "x", "template": "T"}]}`},
			wantErr: "chat_template",
		},
		{
			name:    "missing",
			files:   map[string]string{},
			wantErr: "tokenizer_config.json",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, content := range tt.files {
				if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			c, err := LoadConfig(dir)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one mentioning %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !tt.check(c) {
				t.Errorf("config = %+v", c)
			}
		})
	}
}
