package tokenizer

import (
	"strings"
	"testing"
)

func benchmarkEncode(b *testing.B, load func(t testing.TB) *Tokenizer) {
	tk := load(b)
	text := strings.Repeat("The quick brown fox jumps over the lazy dog, doesn't it? 12345 times.\n", 20)
	b.SetBytes(int64(len(text)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := tk.Encode(text, true); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncodeQwen3(b *testing.B) { benchmarkEncode(b, loadQwen3) }
func BenchmarkEncodeLlama(b *testing.B) { benchmarkEncode(b, loadLlama) }
