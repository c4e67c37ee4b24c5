package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/relupo/relupo/internal/testutil"
)

// weightsOnly copies a model folder's config.json and model.safetensors
// (no tokenizer files) into a temporary folder.
func weightsOnly(t *testing.T, src string) string {
	t.Helper()
	dir := t.TempDir()
	for _, name := range []string{"config.json", "model.safetensors"} {
		b, err := os.ReadFile(filepath.Join(src, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// Every command that tokenizes takes --tokenizer DIR for a model folder
// without tokenizer files (a checkpoint written before they were copied,
// or a bare weights folder); pre-tokenized data needs no tokenizer at all.
func TestTokenizerFlag(t *testing.T) {
	llama := testutil.SharedPath(t, "fixtures", "models", "tiny-random-llama")
	weights := weightsOnly(t, llama)
	text := writeLines(t,
		`{"prompt": [{"role": "user", "content": "Hi"}], "chosen": [{"role": "assistant", "content": "Hello world"}], "rejected": [{"role": "assistant", "content": "No"}]}`)
	prompts := writeLines(t, `{"instruction": "Say hi"}`)
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"logps", []string{"logps", "--model", weights, "--data", text}},
		{"eval", []string{"eval", "--model", weights, "--data", text}},
		{"data stats", []string{"data", "stats", "--model", weights, "--data", text}},
		{"data preview", []string{"data", "preview", "--model", weights, "--data", text, "-n", "1"}},
		{"generate", []string{"generate", "--model", weights, "--input", prompts, "--max-new-tokens", "2"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, stderr, code := relupo(t, tc.args...); code == 0 {
				t.Fatalf("without --tokenizer: exit 0, stderr %q; want an error (the folder has no tokenizer)", stderr)
			}
			_, stderr, code := relupo(t, append(tc.args, "--tokenizer", llama)...)
			if code != 0 {
				t.Fatalf("with --tokenizer: exit %d: %s", code, stderr)
			}
		})
	}
	t.Run("pre-tokenized data without a tokenizer", func(t *testing.T) {
		ids := writeLines(t, `{"prompt_input_ids": [1, 5, 9], "chosen_input_ids": [7, 2], "rejected_input_ids": [8, 3, 2]}`)
		for _, args := range [][]string{
			{"logps", "--model", weights, "--data", ids},
			{"eval", "--model", weights, "--data", ids},
			{"data", "stats", "--model", weights, "--data", ids},
			{"data", "preview", "--model", weights, "--data", ids},
		} {
			if _, stderr, code := relupo(t, args...); code != 0 {
				t.Errorf("%s: exit %d: %s", strings.Join(args[:2], " "), code, stderr)
			}
		}
	})
	t.Run("tokenizer folder without tokenizer.json", func(t *testing.T) {
		_, stderr, code := relupo(t, "logps", "--model", weights, "--data", text, "--tokenizer", t.TempDir())
		if code != 2 || !strings.Contains(stderr, "no tokenizer.json") {
			t.Fatalf("exit %d, stderr %q; want a usage error naming tokenizer.json", code, stderr)
		}
	})
}

// Flags accept the Hugging Face scripts' spellings ('_' for '-', and
// --model_name_or_path for --model) on every command, and a misspelt flag
// gets the nearest one suggested.
func TestFlagSpellings(t *testing.T) {
	data := pairs(t, 2)
	for _, tc := range []struct {
		name   string
		args   []string
		code   int
		stderr string
	}{
		{"underscores", []string{"train", "--model_name_or_path", tinyModel, "--data", data, "--output_dir", t.TempDir(), "--max_steps", "1", "--learning_rate", "1e-5"}, 0, ""},
		{"nested command", []string{"data", "stats", "--model_name_or_path", tinyModel, "--data", data, "--max_length", "64", "--max_prompt_length", "32"}, 0, ""},
		{"generate's alias", []string{"generate", "--model_name_or_path", tinyModel, "--max_new_tokens", "1"}, 2, "--input are required"},
		{"typo", []string{"train", "--lerning-rate", "1"}, 2, "unknown flag: --lerning-rate (did you mean --learning-rate?)"},
		{"typo with underscores", []string{"logps", "--max_lenght", "1"}, 2, "(did you mean --max-length?)"},
		{"nothing near", []string{"eval", "--bogus"}, 2, "unknown flag: --bogus (see"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, stderr, code := relupo(t, tc.args...)
			if code != tc.code || !strings.Contains(stderr, tc.stderr) {
				t.Fatalf("exit %d, stderr %q; want exit %d and %q", code, stderr, tc.code, tc.stderr)
			}
		})
	}
}

// The train recipe (--config) drives logps, eval, data stats and data
// preview as it drives train, so the data they show is the data trained
// on; flags still override it. generate takes its model from it.
func TestConfigOnEveryCommand(t *testing.T) {
	data := pairs(t, 3)
	recipe := filepath.Join(t.TempDir(), "recipe.yaml")
	yaml := "model_name_or_path: " + tinyModel + "\ndata: " + data + "\nmax_length: 5\nmax_prompt_length: 2\nlearning_rate: 1.0e-6\n"
	if err := os.WriteFile(recipe, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"logps", []string{"logps", "--config", recipe}, `"max_length":5`},
		{"logps, flag overrides", []string{"logps", "--config", recipe, "--max-length", "7"}, `"max_length":7`},
		{"eval", []string{"eval", "--config", recipe}, `"rewards/accuracies"`},
		{"data stats", []string{"data", "stats", "--config", recipe}, `"max_length": 5`},
		{"data preview", []string{"data", "preview", "--config", recipe, "-n", "1"}, "prompt cut from 3 to 2 tokens"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stdout, stderr, code := relupo(t, tc.args...)
			if code != 0 || !strings.Contains(stdout, tc.want) {
				t.Fatalf("exit %d, stdout %q, stderr %q; want %q", code, stdout, stderr, tc.want)
			}
		})
	}
	t.Run("generate", func(t *testing.T) {
		llama := testutil.SharedPath(t, "fixtures", "models", "tiny-random-llama")
		r := filepath.Join(t.TempDir(), "recipe.yaml")
		if err := os.WriteFile(r, []byte("model_name_or_path: "+llama+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		in := writeLines(t, `{"prompt_input_ids": [1, 52]}`)
		stdout, stderr, code := relupo(t, "generate", "--config", r, "--input", in, "--max-new-tokens", "2", "--ignore-eos")
		if code != 0 || !strings.Contains(stdout, "output_ids") {
			t.Fatalf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
		}
	})
}

// train says how many pairs truncation cuts, when it starts and in its
// summary (text and JSON).
func TestTrainReportsTruncation(t *testing.T) {
	data := pairs(t, 4) // prompts of 3 tokens, responses of 2 and 3
	args := []string{"train", "--model", tinyModel, "--data", data, "--max-steps", "1", "--max-length", "5", "--max-prompt-length", "2"}
	stdout, stderr, code := relupo(t, append(args, "--output-dir", t.TempDir())...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	want := "4 of 4 training pairs (100.0%)"
	if !strings.Contains(stderr, "truncation cuts "+want+" (max_length 5, max_prompt_length 2, keep_end)") {
		t.Errorf("stderr does not report the truncation at the start: %q", stderr)
	}
	if !strings.Contains(stdout, "truncation cut "+want) {
		t.Errorf("summary does not report the truncation: %q", stdout)
	}
	stdout, stderr, code = relupo(t, append(args, "--output-dir", t.TempDir(), "--json")...)
	if code != 0 || !strings.Contains(stdout, `"pairs":4,"truncated_pairs":4`) {
		t.Errorf("exit %d, JSON summary %q: want pairs 4 and truncated_pairs 4 (%s)", code, stdout, stderr)
	}
	_, stderr, _ = relupo(t, "train", "--model", tinyModel, "--data", data, "--max-steps", "1", "--output-dir", t.TempDir())
	if strings.Contains(stderr, "truncation cuts") {
		t.Errorf("truncation reported where nothing is cut: %q", stderr)
	}
}

// generate --format arena_hard writes the style-control metadata, and
// --token-len-tokenizer counts token_len with another tokenizer.
func TestGenerateArenaHardMetadata(t *testing.T) {
	llama := testutil.SharedPath(t, "fixtures", "models", "tiny-random-llama")
	in := writeLines(t, `{"uid": "abc", "prompt": "Say hi"}`)
	for _, extra := range [][]string{nil, {"--token-len-tokenizer", llama}} {
		args := append([]string{"generate", "--model", llama, "--input", in, "--format", "arena_hard", "--max-new-tokens", "4", "--ignore-eos"}, extra...)
		stdout, stderr, code := relupo(t, args...)
		if code != 0 || !strings.Contains(stdout, `"header_count":{"h1":`) || !strings.Contains(stdout, `"bold_count":{"**":`) || !strings.Contains(stdout, `"token_len":`) {
			t.Fatalf("%v: exit %d, stdout %q, stderr %q", extra, code, stdout, stderr)
		}
	}
	_, stderr, code := relupo(t, "generate", "--model", llama, "--input", in, "--format", "arena_hard", "--token-len-tokenizer", t.TempDir())
	if code != 1 || !strings.Contains(stderr, "--token-len-tokenizer") {
		t.Fatalf("missing tokenizer: exit %d, stderr %q", code, stderr)
	}
}
