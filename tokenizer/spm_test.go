package tokenizer

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
)

// spmKey is testdata/llama2_spm.json, written by testdata/gen_spm.py.
type spmKey struct {
	Generator string `json:"generator"`
	Cases     []struct {
		Text string `json:"text"`
		IDs  []int  `json:"ids"`
	} `json:"cases"`
}

// TestLlama2SentencePiece checks Llama-2's tokenizer.json against
// SentencePiece: the expected ids were computed by SentencePiece's BPE
// encoder on a model rebuilt from the same vocabulary and merge order (see
// testdata/gen_spm.py), so the test covers our merging, the "▁" dummy
// prefix and space escaping, and byte fallback. Every case must be exact,
// and decoding must give the text back, except where the text holds a
// literal "▁": it encodes like a space, and decodes as one (as in Hugging
// Face and SentencePiece).
func TestLlama2SentencePiece(t *testing.T) {
	tk := loadLlama(t)
	const path = "testdata/llama2_spm.json"
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var key spmKey
	if err := json.Unmarshal(data, &key); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if len(key.Cases) < 40 {
		t.Fatalf("%s: %d cases, want at least 40", path, len(key.Cases))
	}
	for i, c := range key.Cases {
		t.Run(fmt.Sprintf("%02d_%.20q", i, c.Text), func(t *testing.T) {
			got, err := tk.Encode(c.Text, false)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, c.IDs) {
				t.Errorf("Encode(%q)\n got %v\nwant %v (%s)", c.Text, got, c.IDs, key.Generator)
			}
			want := strings.ReplaceAll(c.Text, "▁", " ")
			if back := tk.Decode(c.IDs, false); back != want {
				t.Errorf("Decode(%v) = %q, want %q", c.IDs, back, want)
			}
			// With BOS, the ids are the same after it, and skipping
			// special tokens decodes to the same text.
			withBOS, err := tk.Encode(c.Text, true)
			if err != nil {
				t.Fatal(err)
			}
			if len(withBOS) != len(c.IDs)+1 || withBOS[0] != 1 || !slices.Equal(withBOS[1:], c.IDs) {
				t.Errorf("Encode(%q, true) = %v, want 1 then %v", c.Text, withBOS, c.IDs)
			}
			if back := tk.Decode(withBOS, true); back != want {
				t.Errorf("Decode(%v, skip special) = %q, want %q", withBOS, back, want)
			}
		})
	}
}
