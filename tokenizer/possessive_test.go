package tokenizer

import (
	"math/rand/v2"
	"slices"
	"testing"
)

func TestAtomicPossessive(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`a?+b`, `(?>a?)b`},
		{`[^\s\p{L}\p{N}]++[\r\n]*`, `(?>[^\s\p{L}\p{N}]+)[\r\n]*`},
		{`[^\r\n\p{L}\p{N}]?+\p{L}+`, `(?>[^\r\n\p{L}\p{N}]?)\p{L}+`},
		{`(ab)*+c`, `(?>(ab)*)c`},
		{`\p{N}{1,3}+x`, `(?>\p{N}{1,3})x`},
		{`x+?y{2}`, `x+?y{2}`},  // lazy and plain repetition stay
		{`\+++`, `(?>\++)`},     // an escaped plus, a repetition, possessive
		{`[]+]++`, `(?>[]+]+)`}, // a ] first in a class is a literal
		{`a{b}+`, `a{b}+`},      // { not starting a repetition is a literal
		{`(?i:'s|'t)|é++`, `(?i:'s|'t)|(?>é+)`},
		{`\s+(?!\S)|\s+`, `\s+(?!\S)|\s+`},
	} {
		got, err := atomicPossessive(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("%s: got %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{`a\`, `[ab`, `a)`, `\p{L`} {
		if _, err := atomicPossessive(bad); err == nil {
			t.Errorf("%s: no error", bad)
		}
	}
}

// tiktoken's cl100k pattern with its possessive quantifiers splits text as
// the same pattern written without them (how Hugging Face conversions
// usually spell it): on these patterns the two are equivalent, so the
// rewrite must keep them so.
func TestPossessivePatternSplits(t *testing.T) {
	const possessive = `'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]++[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+`
	const plain = `'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+`
	a, err := compileRegex(possessive)
	if err != nil {
		t.Fatal(err)
	}
	b, err := compileRegex(plain)
	if err != nil {
		t.Fatal(err)
	}
	alphabet := []rune("aZsStTrReEvVmMlLdDé中" + "059٣½" + " \t\n\r\u00a0" + "'’.,!?-_()\"#@" + "🦙")
	r := rand.New(rand.NewPCG(7, 8))
	for range 5000 {
		s := make([]rune, r.IntN(20))
		for j := range s {
			s[j] = alphabet[r.IntN(len(alphabet))]
		}
		if got, want := (pattern{re: a}).findAll(s), (pattern{re: b}).findAll(s); !slices.Equal(got, want) {
			t.Fatalf("%q: possessive %v, plain %v", string(s), got, want)
		}
	}
}
