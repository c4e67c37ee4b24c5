package tokenizer

import (
	"sync"
	"testing"

	"github.com/relupo/relupo/internal/testutil"
)

// The fixtures are large; each is loaded once per test binary.
var (
	qwen3Once sync.Once
	qwen3Tok  *Tokenizer
	qwen3Err  error
	llamaOnce sync.Once
	llamaTok  *Tokenizer
	llamaErr  error
)

func loadQwen3(t testing.TB) *Tokenizer {
	t.Helper()
	path := testutil.SharedPath(t, "fixtures", "tokenizers", "qwen3", "tokenizer.json")
	qwen3Once.Do(func() { qwen3Tok, qwen3Err = Load(path) })
	if qwen3Err != nil {
		t.Fatal(qwen3Err)
	}
	return qwen3Tok
}

func loadLlama(t testing.TB) *Tokenizer {
	t.Helper()
	path := testutil.SharedPath(t, "fixtures", "models", "tiny-random-llama")
	llamaOnce.Do(func() { llamaTok, llamaErr = Load(path) })
	if llamaErr != nil {
		t.Fatal(llamaErr)
	}
	return llamaTok
}

func loadTinyGPT2(t testing.TB) *Tokenizer {
	t.Helper()
	tk, err := Load(testutil.SharedPath(t, "fixtures", "models", "tiny-random-gpt2"))
	if err != nil {
		t.Fatal(err)
	}
	return tk
}
