package tokenizer

import (
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/relupo/relupo/internal/testutil"
)

// The hand-written matchers find exactly what regexp2 finds with the same
// pattern, on the answer-key texts and on random strings drawn from an
// alphabet of every character class the patterns distinguish (letters of
// several scripts and cases, ſ and the Kelvin sign that fold to s and k,
// digits of the Nd, Nl and No categories, ASCII and Unicode white space,
// line breaks, apostrophes, punctuation, marks and emoji).
func TestFastSplitMatchesRegexp(t *testing.T) {
	alphabet := []rune("aZsStTrReEvVmMlLdDſKéÉßж中文" + "0959٣²Ⅻ½" + " \t\n\r\u00a0\u2003\u3000\u0085\u180e\v\f" + "''’.,!?-_()\"#@" + "\u0301🦙🙂")
	texts := []string{"", "'s", "'S", "'ll'LL'Ve", "  hello\n\n world  ", "a  \n  b", "x\r\n\r\n y", "1234567", "½²Ⅻ"}
	if dir, err := testutil.RepoRoot(); err == nil {
		if b, err := os.ReadFile(dir + "/../shared/fixtures/tokenizers/answer-keys/ggml-vocab-qwen2.gguf.inp"); err == nil {
			texts = append(texts, strings.Split(string(b), "\n__ggml_vocab_test__\n")...)
		}
	}
	r := rand.New(rand.NewPCG(3, 4))
	for i := 0; i < 20000; i++ {
		n := r.IntN(24)
		s := make([]rune, n)
		for j := range s {
			s[j] = alphabet[r.IntN(len(alphabet))]
		}
		texts = append(texts, string(s))
	}
	for name, expr := range map[string]string{"qwen2": qwen2Pattern, "llama3": llama3Pattern} {
		re, err := compileRegex(expr)
		if err != nil {
			t.Fatal(err)
		}
		slow := pattern{re: re}
		fast := fastMatcher(expr)
		for _, text := range texts {
			runes := []rune(text)
			want, got := slow.findAll(runes), fast(runes)
			if !slices.Equal(want, got) {
				t.Fatalf("%s: %q: regexp2 %v, hand-written %v", name, text, want, got)
			}
		}
	}
}
