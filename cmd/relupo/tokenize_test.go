package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/relupo/relupo/internal/testutil"
)

// writeLines writes lines to a JSONL file in a temporary folder and returns its path.
func writeLines(t *testing.T, lines ...string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "in.jsonl")
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestTokenizeCommand checks relupo tokenize on Llama-2's tokenizer. The
// expected ids are those of transformers' LlamaTokenizerFast:
// tok("Hello world", add_special_tokens=False).input_ids is [15043, 3186].
func TestTokenizeCommand(t *testing.T) {
	llama := testutil.SharedPath(t, "fixtures", "models", "tiny-random-llama")
	for _, tc := range []struct {
		name  string
		path  string // --tokenizer
		lines []string
		flags []string
		want  []string // output lines
	}{
		{
			name:  "text without special tokens by default",
			path:  llama,
			lines: []string{`{"text": "Hello world"}`},
			want:  []string{`{"ids":[15043,3186],"tokens":["▁Hello","▁world"]}`},
		},
		{
			name:  "text with --add-special-tokens gets BOS",
			path:  llama,
			lines: []string{`{"text": "Hello world"}`},
			flags: []string{"--add-special-tokens"},
			want:  []string{`{"ids":[1,15043,3186],"tokens":["<s>","▁Hello","▁world"]}`},
		},
		{
			name:  "tokenizer.json path, blank lines skipped, one output line per input line",
			path:  filepath.Join(llama, "tokenizer.json"),
			lines: []string{`{"text": "a"}`, ``, `{"text": "Hello"}`},
			want:  []string{`{"ids":[263],"tokens":["▁a"]}`, `{"ids":[15043],"tokens":["▁Hello"]}`},
		},
		{
			// The template writes <s> and </s> itself; --add-special-tokens
			// does not add a second BOS to a rendered conversation.
			name:  "messages rendered with the chat template",
			path:  llama,
			lines: []string{`{"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Yo"}]}`},
			flags: []string{"--add-special-tokens"},
			want:  []string{`{"text":"<s>[INST] Hi [/INST] Yo </s>","ids":[1,518,25580,29962,6324,518,29914,25580,29962,612,29877,29871,2]}`},
		},
		{
			name: "chat_template_kwargs reach the template (Qwen3's thinking switch)",
			path: testutil.SharedPath(t, "fixtures", "tokenizers", "qwen3"),
			lines: []string{`{"messages": [{"role": "user", "content": "Hi"}], "add_generation_prompt": true, "chat_template_kwargs": {"enable_thinking": false}}`,
				`{"messages": [{"role": "user", "content": "Hi"}], "add_generation_prompt": true}`},
			want: []string{`{"text":"<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n","ids":[151644,872,198,13048,151645,198,151644,77091,198,151667,271,151668,271]}`,
				`{"text":"<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n","ids":[151644,872,198,13048,151645,198,151644,77091,198]}`},
		},
		{
			name:  "decode",
			path:  llama,
			lines: []string{`{"ids": [1, 15043, 3186]}`},
			flags: []string{"--decode"},
			want:  []string{`{"text":"<s> Hello world"}`},
		},
		{
			name:  "decode skipping special tokens",
			path:  llama,
			lines: []string{`{"ids": [1, 15043, 3186]}`, `{"ids": []}`},
			flags: []string{"--decode", "--skip-special-tokens"},
			want:  []string{`{"text":"Hello world"}`, `{"text":""}`},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"tokenize", "--tokenizer", tc.path, "--input", writeLines(t, tc.lines...)}, tc.flags...)
			stdout, stderr, code := relupo(t, args...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			got := strings.Split(strings.TrimSuffix(stdout, "\n"), "\n")
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("output\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}

func TestTokenizeCommandErrors(t *testing.T) {
	llama := testutil.SharedPath(t, "fixtures", "models", "tiny-random-llama")
	for _, tc := range []struct {
		name   string
		args   []string
		code   int
		stderr string
		stdout string // what was written before the error
	}{
		{"missing --tokenizer", []string{"tokenize"}, 2, "--tokenizer is required", ""},
		{"unknown flag", []string{"tokenize", "--tokenizer", llama, "--bogus"}, 2, "unknown flag: --bogus", ""},
		{"missing tokenizer.json", []string{"tokenize", "--tokenizer", t.TempDir(), "--input", writeLines(t, `{"text": "a"}`)}, 1, "tokenizer.json", ""},
		{"bad JSON names its line", []string{"tokenize", "--tokenizer", llama, "--input", writeLines(t, `{"text": "a"}`, `{"text": 3}`)}, 1, "line 2: invalid JSON", `{"ids":[263],"tokens":["▁a"]}` + "\n"},
		{"text and messages", []string{"tokenize", "--tokenizer", llama, "--input", writeLines(t, `{"text": "a", "messages": []}`)}, 1, `line 1: want exactly one of "text" or "messages"`, ""},
		{"decode without ids", []string{"tokenize", "--tokenizer", llama, "--decode", "--input", writeLines(t, `{"text": "a"}`)}, 1, `line 1: with --decode each line needs "ids"`, ""},
		{"template refuses the conversation", []string{"tokenize", "--tokenizer", llama, "--input", writeLines(t, `{"messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]}`)}, 1, "line 1:", ""},
		{"missing input file", []string{"tokenize", "--tokenizer", llama, "--input", "nope.jsonl"}, 1, "nope.jsonl", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stdout, stderr, code := relupo(t, tc.args...)
			if code != tc.code || !strings.Contains(stderr, tc.stderr) {
				t.Fatalf("exit %d, stderr %q; want exit %d and %q", code, stderr, tc.code, tc.stderr)
			}
			if stdout != tc.stdout {
				t.Errorf("stdout %q, want %q", stdout, tc.stdout)
			}
			if strings.Contains(stderr, "goroutine ") || strings.Contains(stderr, "panic:") {
				t.Fatalf("stack trace shown to the user:\n%s", stderr)
			}
		})
	}
}
