package tokenizer

import (
	"encoding/json"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/relupo/relupo/internal/testutil"
)

// readAnswerKey reads llama.cpp's tokenizer test cases: in the .inp file
// every case is followed by a line "__ggml_vocab_test__" (the newline
// before that line belongs to the separator, not to the case); the .out
// file has one line of space-separated ids per case.
func readAnswerKey(t *testing.T, inpPath, outPath string) ([]string, [][]int) {
	t.Helper()
	inp, err := os.ReadFile(inpPath)
	if err != nil {
		t.Fatal(err)
	}
	out, err := os.ReadFile(outPath)
	if err != nil {
		t.Fatal(err)
	}
	const sep = "\n__ggml_vocab_test__\n"
	if !strings.HasSuffix(string(inp), sep) {
		t.Fatalf("%s: does not end with the case separator", inpPath)
	}
	cases := strings.Split(strings.TrimSuffix(string(inp), sep), sep)
	lines := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
	if len(lines) != len(cases) {
		t.Fatalf("%d cases but %d answer lines", len(cases), len(lines))
	}
	want := make([][]int, len(lines))
	for i, line := range lines {
		want[i] = []int{}
		for _, f := range strings.Fields(line) {
			id, err := strconv.Atoi(f)
			if err != nil {
				t.Fatalf("%s line %d: %v", outPath, i+1, err)
			}
			want[i] = append(want[i], id)
		}
	}
	return cases, want
}

// withoutAddedTokensFrom loads a tokenizer.json and drops the added tokens
// whose id is at least minID.
func withoutAddedTokensFrom(t testing.TB, path string, minID int) *Tokenizer {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	var added []map[string]any
	if err := json.Unmarshal(doc["added_tokens"], &added); err != nil {
		t.Fatal(err)
	}
	kept := added[:0]
	for _, a := range added {
		if int(a["id"].(float64)) < minID {
			kept = append(kept, a)
		}
	}
	if doc["added_tokens"], err = json.Marshal(kept); err != nil {
		t.Fatal(err)
	}
	if data, err = json.Marshal(doc); err != nil {
		t.Fatal(err)
	}
	tk, err := Parse(data, path)
	if err != nil {
		t.Fatal(err)
	}
	return tk
}

func TestAnswerKeys(t *testing.T) {
	keys := testutil.SharedPath(t, "fixtures", "tokenizers", "answer-keys")
	tests := []struct {
		name string
		key  string
		load func(t testing.TB) *Tokenizer
	}{
		{
			// The gpt2 fixture carries 38 extra added tokens (runs of
			// 2-31 spaces and 2-9 tabs, ids 50257-50294, as CodeGen's
			// tokenizer has) that GPT-2's own tokenizer, which produced
			// the answer key, lacks; they are dropped here.
			// TestWhitespaceAddedTokens checks them.
			name: "gpt-2",
			key:  "ggml-vocab-gpt-2.gguf",
			load: func(t testing.TB) *Tokenizer {
				return withoutAddedTokensFrom(t, testutil.SharedPath(t, "fixtures", "tokenizers", "gpt2", "tokenizer.json"), 50257)
			},
		},
		{
			// Qwen3 shares Qwen2's vocabulary, merges and pre-tokenizer.
			name: "qwen2",
			key:  "ggml-vocab-qwen2.gguf",
			load: func(t testing.TB) *Tokenizer { return loadQwen3(t) },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tk := tt.load(t)
			cases, want := readAnswerKey(t, keys+"/"+tt.key+".inp", keys+"/"+tt.key+".out")
			for i, text := range cases {
				got, err := tk.Encode(text, false)
				if err != nil {
					t.Fatalf("case %d %q: %v", i, text, err)
				}
				if !equalInts(got, want[i]) {
					t.Errorf("case %d %q:\n got %v\nwant %v", i, text, got, want[i])
				}
				if dec := tk.Decode(got, false); dec != text {
					t.Errorf("case %d: decode(encode(%q)) = %q", i, text, dec)
				}
			}
		})
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
