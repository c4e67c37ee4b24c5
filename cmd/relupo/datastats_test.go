package main

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/relupo/relupo/internal/testutil"
	"github.com/relupo/relupo/train"
)

func TestDataStatsCommand(t *testing.T) {
	llama := testutil.SharedPath(t, "fixtures", "models", "tiny-random-llama")
	path := filepath.Join(t.TempDir(), "d.jsonl")
	lines := []string{
		`{"prompt": [{"role": "user", "content": "Hi"}], "chosen": [{"role": "assistant", "content": "Hello there, my friend. How are you today? I hope the weather is fine where you are."}], "rejected": [{"role": "assistant", "content": "No."}]}`,
		`{"prompt": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}, {"role": "user", "content": "Tell me a story about a long road and a tired traveller."}], "chosen": [{"role": "assistant", "content": "Once upon a time."}], "rejected": [{"role": "assistant", "content": "No."}]}`,
		// Llama-2's template refuses two user turns in a row: invalid.
		`{"prompt": [{"role": "user", "content": "Hi"}, {"role": "user", "content": "Again"}], "chosen": [{"role": "assistant", "content": "Yes"}], "rejected": [{"role": "assistant", "content": "No"}]}`,
		// Identical responses: skipped by the reader.
		`{"prompt": [{"role": "user", "content": "Hi"}], "chosen": [{"role": "assistant", "content": "Same"}], "rejected": [{"role": "assistant", "content": "Same"}]}`,
	}
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	stdout, stderr, code := relupo(t, "data", "stats", "--model", llama, "--data", path, "--max-length", "24", "--max-prompt-length", "16", "--margins", "--gamma", "0", "--threads", "1")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var st train.DataStats
	if err := json.Unmarshal([]byte(stdout), &st); err != nil {
		t.Fatalf("%v:\n%s", err, stdout)
	}
	if st.Count != 2 || st.Skipped != 1 || st.Invalid != 1 || len(st.InvalidReasons) != 1 || !strings.Contains(st.InvalidReasons[0], "d.jsonl:3") {
		t.Errorf("count %d, skipped %d, invalid %d %q", st.Count, st.Skipped, st.Invalid, st.InvalidReasons)
	}
	// Record 1: 9 prompt tokens ("<s>[INST] Hi [/INST]") and a long chosen
	// response: more than 24, so the responses are cut to 24 − 16. Record
	// 2's prompt is longer than 16 tokens and is cut to 16; its responses
	// then fit.
	if st.Truncated.Pairs != 2 || st.Truncated.PromptCut != 1 || st.Truncated.ResponsesCut != 1 {
		t.Errorf("truncated %+v", st.Truncated)
	}
	if st.Turns == nil || st.Turns.Min != 1 || st.Turns.Max != 2 {
		t.Errorf("turns %+v", st.Turns)
	}
	if st.PromptTokens == nil || st.PromptTokens.Min < 2 || st.ChosenTokens.Max < st.ChosenTokens.Min {
		t.Errorf("lengths %+v %+v", st.PromptTokens, st.ChosenTokens)
	}
	m := st.Margins
	if m == nil || math.IsNaN(m.Mean) || !(m.P10 <= m.P50 && m.P50 <= m.P90) || len(m.FilteredAtGrid) != len(train.GammaGrid) {
		t.Fatalf("margins %+v", m)
	}
	if m.Gamma != 0 || (m.FilteredFraction != 0 && m.FilteredFraction != 0.5 && m.FilteredFraction != 1) {
		t.Errorf("filtered fraction %v at γ = %v over 2 pairs", m.FilteredFraction, m.Gamma)
	}

	// Pre-tokenized data needs no tokenizer.
	stdout, stderr, code = relupo(t, "data", "stats", "--model", tinyModel, "--data", pairs(t, 3))
	if code != 0 || !strings.Contains(stdout, `"count": 3`) || strings.Contains(stdout, `"turns"`) {
		t.Errorf("tokenized data: exit %d, %s%s", code, stdout, stderr)
	}

	for _, tc := range []struct {
		args   []string
		code   int
		stderr string
	}{
		{[]string{"data"}, 2, "give a subcommand"},
		{[]string{"data", "stats", "--data", path}, 2, "--model is required"},
		{[]string{"data", "stats", "--model", llama}, 2, "--data is required"},
		{[]string{"data", "stats", "--model", llama, "--data", path, "--data-format", "csv"}, 2, "unknown format"},
		{[]string{"data", "stats", "--model", llama, "--data", path, "--gamma", "x"}, 2, "invalid argument"},
		{[]string{"data", "stats", "--model", llama, "--data", "nope.jsonl"}, 1, "nope.jsonl: no such file"},
		{[]string{"data", "stats", "--model", t.TempDir(), "--data", path}, 1, "no tokenizer.json"},
	} {
		_, stderr, code := relupo(t, tc.args...)
		if code != tc.code || !strings.Contains(stderr, tc.stderr) {
			t.Errorf("%v: exit %d, stderr %q; want %d and %q", tc.args, code, stderr, tc.code, tc.stderr)
		}
	}
}
