package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/relupo/relupo/internal/testutil"
)

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// The check the issue asks for: greedy goldens of tiny-random-llama
// through the command, read from output_ids.
func TestGenerateGreedyGoldens(t *testing.T) {
	dir := testutil.SharedPath(t, "fixtures", "models", "tiny-random-llama")
	in := writeFile(t, "F.jsonl", "{\"prompt_input_ids\": [0,0,0,52]}\n{\"prompt_input_ids\": [0,0,195,731]}\n")
	stdout, stderr, code := relupo(t, "generate", "--model", dir, "--input", in, "--max-new-tokens", "6", "--temperature", "0", "--ignore-eos")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	want := [][]int{{12102, 30463, 4666, 17192, 3266, 18061}, {29592, 4877, 18112, 22607, 12936, 997}}
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	if len(lines) != 2 {
		t.Fatalf("stdout %q", stdout)
	}
	for i, l := range lines {
		var r struct {
			OutputIDs []int `json:"output_ids"`
			Output    string
		}
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(r.OutputIDs, want[i]) || r.Output == "" {
			t.Errorf("line %d: %s, want ids %v", i+1, l, want[i])
		}
	}
	if !strings.Contains(stderr, "tokens/s") {
		t.Errorf("no progress on stderr: %q", stderr)
	}
}

// An AlpacaEval-format file written with --output, from AlpacaEval's own
// instructions (JSON list input).
func TestGenerateAlpacaEvalFile(t *testing.T) {
	dir := testutil.SharedPath(t, "fixtures", "models", "tiny-random-llama")
	src, err := os.ReadFile(testutil.SharedPath(t, "fixtures", "eval", "alpaca_eval", "gpt4_1106_preview_outputs.json"))
	if err != nil {
		t.Fatal(err)
	}
	var all []map[string]string
	if err := json.Unmarshal(src, &all); err != nil {
		t.Fatal(err)
	}
	sub, _ := json.Marshal(all[:3])
	in := writeFile(t, "alpaca.json", string(sub))
	out := filepath.Join(t.TempDir(), "answers.json")
	_, stderr, code := relupo(t, "generate", "--model", dir, "--input", in, "--format", "alpaca_eval", "--output", out,
		"--max-new-tokens", "5", "--temperature", "0.8", "--top-k", "40", "--seed", "3", "--generator", "tiny")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var got []map[string]string
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 {
		t.Fatalf("%d records", len(got))
	}
	for i, g := range got {
		if g["instruction"] != all[i]["instruction"] || g["dataset"] != all[i]["dataset"] || g["generator"] != "tiny" {
			t.Errorf("record %d: %v", i, g)
		}
	}
	// same seed, same answers
	out2 := filepath.Join(t.TempDir(), "again.json")
	relupo(t, "generate", "--model", dir, "--input", in, "--format", "alpaca_eval", "--output", out2,
		"--max-new-tokens", "5", "--temperature", "0.8", "--top-k", "40", "--seed", "3", "--generator", "tiny", "--batch-size", "1")
	if b2, _ := os.ReadFile(out2); string(b2) != string(b) {
		t.Errorf("a rerun with the same seed and another batch size differs:\n%s\n%s", b, b2)
	}
}

func TestGenerateErrors(t *testing.T) {
	good := writeFile(t, "in.jsonl", "{\"prompt_input_ids\": [1, 2]}\n")
	bad := writeFile(t, "bad.jsonl", "{\"prompt_input_ids\": [1, 2]}\n{\"oops\": 1}\n")
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no model", []string{"--input", good}, 2, "--model and --input are required"},
		{"bad format", []string{"--model", tinyModel, "--input", good, "--format", "csv"}, 2, "unknown format"},
		{"bad top-p", []string{"--model", tinyModel, "--input", good, "--top-p", "2"}, 2, "top-p"},
		{"bad max tokens", []string{"--model", tinyModel, "--input", good, "--max-new-tokens", "0"}, 2, "--max-new-tokens"},
		{"bad line", []string{"--model", tinyModel, "--input", bad}, 1, "bad.jsonl:2: no prompt"},
		{"missing input", []string{"--model", tinyModel, "--input", "nope.jsonl"}, 1, "nope.jsonl"},
		{"ids for alpaca_eval", []string{"--model", tinyModel, "--input", good, "--format", "alpaca_eval"}, 1, "in.jsonl:1: the alpaca_eval format needs an instruction"},
		{"zero samples", []string{"--model", tinyModel, "--input", good, "--num-return-sequences", "0"}, 2, "--num-return-sequences must be ≥ 1"},
		{"samples in arena_hard", []string{"--model", tinyModel, "--input", good, "--num-return-sequences", "2", "--format", "arena_hard"}, 2, "not --format arena_hard"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, stderr, code := relupo(t, append([]string{"generate"}, tc.args...)...)
			if code != tc.code || !strings.Contains(stderr, tc.want) {
				t.Errorf("exit %d, stderr %q; want exit %d mentioning %q", code, stderr, tc.code, tc.want)
			}
		})
	}
}

// --num-return-sequences writes one row per prompt with its K samples.
func TestGenerateReturnSequences(t *testing.T) {
	dir := testutil.SharedPath(t, "fixtures", "models", "tiny-random-llama")
	in := writeFile(t, "F.jsonl", "{\"prompt_input_ids\": [0,0,0,52], \"reference\": \"r\"}\n{\"prompt_input_ids\": [0,0,195,731]}\n")
	stdout, stderr, code := relupo(t, "generate", "--model", dir, "--input", in, "--max-new-tokens", "3", "--temperature", "1", "--num-return-sequences", "4", "--batch-size", "3")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	if len(lines) != 2 || !strings.Contains(stderr, "2 prompts × 4 samples") || !strings.Contains(stderr, "8/8 answers") {
		t.Fatalf("stdout %q, stderr %q", stdout, stderr)
	}
	for i, l := range lines {
		var r struct {
			ID        string
			Responses []string
			Reference string
			OutputIDs [][]int `json:"output_ids"`
		}
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatal(err)
		}
		if r.ID != []string{"1", "2"}[i] || r.Reference != []string{"r", ""}[i] || len(r.Responses) != 4 || len(r.OutputIDs) != 4 {
			t.Errorf("line %d: %s", i+1, l)
		}
	}
}

func TestGenerateIDOutsideVocabulary(t *testing.T) {
	dir := testutil.SharedPath(t, "fixtures", "models", "tiny-random-llama")
	big := writeFile(t, "big.jsonl", "{\"prompt_input_ids\": [1, 2]}\n{\"prompt_input_ids\": [1, 32000]}\n")
	_, stderr, code := relupo(t, "generate", "--model", dir, "--input", big)
	if code != 1 || !strings.Contains(stderr, "big.jsonl:2: token id 32000") {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}
}

func TestBenchDecode(t *testing.T) {
	stdout, stderr, code := relupo(t, "bench", "--mode", "decode", "--shape", "256,32,64,2,4,2", "--seq", "32", "--steps", "1", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var r map[string]any
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &r); err != nil {
		t.Fatal(err)
	}
	if r["mode"] != "decode" || r["new_tokens"] != 8.0 || !(r["tokens_per_s"].(float64) > 0) {
		t.Errorf("result %v", r)
	}
}
