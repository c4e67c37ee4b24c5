package data

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Every error that --skip-invalid would turn into a skipped record says
// so; errors it would not skip (a broken file) do not suggest it.
func TestSkipInvalidHint(t *testing.T) {
	for _, tc := range []struct {
		name, record string
		hint         bool // the error suggests --skip-invalid, and SkipInvalid skips the record
	}{
		{"empty response (HH-RLHF)", `{"prompt_input_ids": [1, 2], "chosen_input_ids": [], "rejected_input_ids": [3]}`, true},
		{"identical responses", `{"prompt_input_ids": [1, 2], "chosen_input_ids": [3], "rejected_input_ids": [3]}`, true},
		{"id outside the vocabulary", `{"prompt_input_ids": [1, 2], "chosen_input_ids": [99], "rejected_input_ids": [3]}`, true},
		{"broken JSON", `{"prompt_input_ids": [1, 2`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "d.jsonl")
			good := `{"prompt_input_ids": [1, 2], "chosen_input_ids": [4], "rejected_input_ids": [5]}`
			if err := os.WriteFile(path, []byte(good+"\n"+tc.record+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			c := LoadConfig{Sources: []Source{{Path: path, Fraction: 1}}, Limits: Limits{VocabSize: 10}, Strict: true}
			_, err := Load(context.Background(), c)
			if err == nil {
				t.Fatal("no error")
			}
			if got := strings.Contains(err.Error(), "--skip-invalid"); got != tc.hint {
				t.Fatalf("error %q: suggests --skip-invalid = %v, want %v", err, got, tc.hint)
			}
			if !tc.hint {
				return
			}
			c.SkipInvalid, c.Strict = true, false
			var skipped int
			c.OnSkip = func(error) { skipped++ }
			c.OnInvalid = func(error) { skipped++ }
			exs, err := Load(context.Background(), c)
			if err != nil || len(exs) != 1 || skipped != 1 {
				t.Fatalf("with SkipInvalid: %d examples, %d skipped, %v; want 1 example and 1 skipped", len(exs), skipped, err)
			}
		})
	}
}
