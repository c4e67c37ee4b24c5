package tokenizer

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/relupo/relupo/internal/testutil"
)

// Cutting a SentencePiece-style word before each "▁" (bpe.splitMeta) must
// not change a single id: it is compared with encoding the whole word on
// real dialogue, the SentencePiece cases and random strings rich in spaces,
// "▁" and characters outside the vocabulary.
func TestSplitMetaExact(t *testing.T) {
	split, err := Load(testutil.SharedPath(t, "fixtures", "models", "tiny-random-llama"))
	if err != nil {
		t.Fatal(err)
	}
	if !split.model.splitMeta {
		t.Fatal("Llama-2's merges should allow cutting words before \"▁\"")
	}
	whole, err := Load(testutil.SharedPath(t, "fixtures", "models", "tiny-random-llama"))
	if err != nil {
		t.Fatal(err)
	}
	whole.model.splitMeta = false

	texts := []string{"", " ", "▁", "a▁b", "a ▁ b", "  a  ", "a\n  b", "x▁▁▁y", "😀 😀  😀"}
	hh := hhChosen(t)
	texts = append(texts, hh[:min(len(hh), 300)]...)
	rng := rand.New(rand.NewPCG(1, 2))
	alphabet := []string{" ", "  ", "▁", "a", "b", "th", "e", "\n", "\t", ".", "的", "😀", "é", "\u0301", "ing", "x"}
	for range 2000 {
		var b strings.Builder
		for range rng.IntN(24) {
			b.WriteString(alphabet[rng.IntN(len(alphabet))])
		}
		texts = append(texts, b.String())
	}
	for _, s := range texts {
		got, err := split.Encode(s, false)
		if err != nil {
			t.Fatal(err)
		}
		want, err := whole.Encode(s, false)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("Encode(%q): cut %v, whole %v", s, got, want)
		}
	}
}

func TestSplitsAtMeta(t *testing.T) {
	vocab := map[string]int{"▁": 0, "a": 1, "▁a": 2, "a▁": 3, "▁▁": 4}
	for _, tc := range []struct {
		name   string
		m      *bpe
		merges [][2]string
		want   bool
	}{
		{"merges start at ▁", &bpe{vocab: vocab}, [][2]string{{"▁", "a"}, {"▁", "▁"}}, true},
		{"a merge joins a character to a following ▁", &bpe{vocab: vocab}, [][2]string{{"▁", "a"}, {"a", "▁"}}, false},
		{"no ▁ in the vocabulary", &bpe{vocab: map[string]int{"a": 0}}, nil, false},
		{"continuing subword prefix", &bpe{vocab: vocab, prefix: "##"}, nil, false},
		{"ignore_merges", &bpe{vocab: vocab, ignoreMerges: true}, nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := splitsAtMeta(tc.m, tc.merges); got != tc.want {
				t.Errorf("splitsAtMeta = %v, want %v", got, tc.want)
			}
		})
	}
	if loadQwen3(t).model.splitMeta {
		t.Error("Qwen3 (byte-level) has no ▁ and must not be cut")
	}
}
