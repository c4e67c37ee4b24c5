package data

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/relupo/relupo/internal/testutil"
)

// TestLoadStopsWhenCancelled cancels the context while Load converts the
// records into examples (after the file is read): it must stop there, not
// render and tokenize the rest.
func TestLoadStopsWhenCancelled(t *testing.T) {
	lines := []string{`{"prompt_input_ids": [1, 2], "chosen_input_ids": [999], "rejected_input_ids": [4]}`} // outside the vocabulary
	for i := 0; i < 20; i++ {
		lines = append(lines, fmt.Sprintf(`{"prompt_input_ids": [1, %d], "chosen_input_ids": [3], "rejected_input_ids": [4]}`, 5+i))
	}
	path := writeLines(t, lines...)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	invalid := 0
	lc := LoadConfig{Sources: []Source{{Path: path, Fraction: 1}}, Limits: Limits{VocabSize: 100}, SkipInvalid: true,
		OnInvalid: func(error) { invalid++; cancel() }}
	exs, err := Load(ctx, lc)
	if !errors.Is(err, context.Canceled) || invalid != 1 {
		t.Fatalf("got %d examples, error %v, %d invalid; want a stop after the first record", len(exs), err, invalid)
	}
	if !strings.Contains(err.Error(), "d.jsonl:2") {
		t.Errorf("error %v does not name the record it stopped at", err)
	}
}

// TestHugeRecordRefusedBeforeTokenizing: one record of more than
// MaxTextBytes is refused, naming it, before the template and tokenizer
// see it (tokenizing 200 MB took 9 GB).
func TestHugeRecordRefusedBeforeTokenizing(t *testing.T) {
	dir := testutil.SharedPath(t, "fixtures", "models", "tiny-random-llama")
	small := `{"prompt": [{"role": "user", "content": "Hi"}], "chosen": [{"role": "assistant", "content": "Hello."}], "rejected": [{"role": "assistant", "content": "No."}]}`
	huge := `{"prompt": [{"role": "user", "content": "` + strings.Repeat("a", MaxTextBytes) + `"}], "chosen": [{"role": "assistant", "content": "Yes."}], "rejected": [{"role": "assistant", "content": "No."}]}`
	path := writeLines(t, small, huge, small)
	for _, skip := range []bool{false, true} {
		t.Run(fmt.Sprint("skip_invalid=", skip), func(t *testing.T) {
			var skipped []error
			lc := LoadConfig{Sources: []Source{{Path: path, Fraction: 1}}, Tokenizer: dir, Limits: Limits{VocabSize: 32000},
				SkipInvalid: skip, OnInvalid: func(err error) { skipped = append(skipped, err) }}
			exs, err := Load(context.Background(), lc)
			if !skip {
				if err == nil || !strings.Contains(err.Error(), "d.jsonl:2: the record's text is 16.0 MiB") {
					t.Fatalf("got %v, want the huge record refused", err)
				}
				return
			}
			if err != nil || len(exs) != 2 || len(skipped) != 1 {
				t.Fatalf("got %d examples, %d skipped, error %v", len(exs), len(skipped), err)
			}
		})
	}
}
