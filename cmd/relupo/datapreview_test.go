package main

import (
	"strings"
	"testing"

	"github.com/relupo/relupo/internal/testutil"
)

// TestDataPreviewCommand checks relupo data preview on Llama-2's template:
// the prompt "<s>[INST] Hi [/INST]" is context, and the response " Hello
// world </s>" (the template writes the spaces and EOS) is scored.
func TestDataPreviewCommand(t *testing.T) {
	llama := testutil.SharedPath(t, "fixtures", "models", "tiny-random-llama")
	path := writeLines(t,
		`{"prompt": [{"role": "user", "content": "Hi"}], "chosen": [{"role": "assistant", "content": "Hello world"}], "rejected": [{"role": "assistant", "content": "No"}]}`,
		`{"prompt": [{"role": "user", "content": "Hi"}], "chosen": [{"role": "assistant", "content": "Same"}], "rejected": [{"role": "assistant", "content": "Same"}]}`,
		`{"prompt": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}, {"role": "user", "content": "Tell me more about the road and the traveller."}], "chosen": [{"role": "assistant", "content": "Once upon a time."}], "rejected": [{"role": "assistant", "content": "No."}]}`,
	)
	prompt := "[<s>][▁[][INST][]][▁Hi][▁[][/][INST][]]"
	for _, tc := range []struct {
		name string
		args []string
		want []string // lines or fragments expected in stdout, in order
	}{
		{
			name: "first pair",
			args: []string{"-n", "1"},
			want: []string{
				"── pair 1 · " + path + ":1 ──",
				"prompt text:\n  │<s>[INST] Hi [/INST]\n",
				"chosen text:\n  │ Hello world </s>\n",
				"rejected text:\n  │ No </s>\n",
				"chosen tokens:\n  " + prompt + "|▁Hello|▁world|▁|</s>|\n",
				"rejected tokens:\n  " + prompt + "|▁No|▁|</s>|\n",
				"prompt tokens 9, chosen labels 4, rejected labels 3; truncation: nothing cut (max length 1024, max prompt length 512)\n",
			},
		},
		{
			// The second record is skipped by the reader and listed; the
			// third is pair 2. With L = 16 and P = 8 its 31-token prompt
			// keeps its last 8 tokens and the responses their first 8.
			name: "skipped record and truncation",
			args: []string{"--max-length", "16", "--max-prompt-length", "8"},
			want: []string{
				"── pair 1 ·",
				"skipped data: " + path + ":2: trl-conversational: chosen and rejected responses are identical\n",
				"── pair 2 · " + path + ":3 ──",
				"prompt text:\n  │<s>[INST] Hi [/INST] Hello </s><s>[INST] Tell me more",
				"chosen tokens:\n  [▁the][▁trav][eller][.][▁[][/][INST][]]|",
				"▁Once|▁upon|▁a|▁time|.|▁|</s>|\n",
				"prompt tokens 8, chosen labels 7, rejected labels 4; truncation: prompt cut from 31 to 8 tokens (23 removed from its start)\n",
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stdout, stderr, code := relupo(t, append([]string{"data", "preview", "--model", llama, "--data", path}, tc.args...)...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			if strings.Contains(stdout, "\x1b[") {
				t.Errorf("colour escapes in output to a pipe:\n%s", stdout)
			}
			rest := stdout
			for _, w := range tc.want {
				i := strings.Index(rest, w)
				if i < 0 {
					t.Fatalf("output lacks %q (in order):\n%s", w, stdout)
				}
				rest = rest[i+len(w):]
			}
		})
	}
}

// With --completion-only-assistant-content (TRL's convention) the
// assistant header that Qwen3's template writes moves from the labels to the
// prompt.
func TestDataPreviewAssistantHeader(t *testing.T) {
	qwen := testutil.SharedPath(t, "fixtures", "tokenizers", "qwen3")
	path := writeLines(t, `{"prompt": [{"role": "user", "content": "Hi"}], "chosen": [{"role": "assistant", "content": "Hello world"}], "rejected": [{"role": "assistant", "content": "No"}]}`)
	prompt := "[<|im_start|>][user][Ċ][Hi][<|im_end|>][Ċ]"
	header := "<|im_start|>|assistant|Ċ|"
	for _, tc := range []struct {
		name   string
		flags  []string
		chosen string
		counts string
	}{
		{"header scored", nil, prompt + "|" + header + "<think>|ĊĊ|</think>|ĊĊ|Hello|Ġworld|<|im_end|>|Ċ|<|im_end|>|", "prompt tokens 6, chosen labels 12, rejected labels 11;"},
		{"header in the prompt", []string{"--completion-only-assistant-content"}, prompt + "[<|im_start|>][assistant][Ċ]|<think>|ĊĊ|</think>|ĊĊ|Hello|Ġworld|<|im_end|>|Ċ|<|im_end|>|", "prompt tokens 9, chosen labels 9, rejected labels 8;"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stdout, stderr, code := relupo(t, append([]string{"data", "preview", "--model", qwen, "--data", path}, tc.flags...)...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			for _, w := range []string{"chosen tokens:\n  " + tc.chosen + "\n", tc.counts} {
				if !strings.Contains(stdout, w) {
					t.Errorf("output lacks %q:\n%s", w, stdout)
				}
			}
		})
	}
}

func TestDataPreviewShared(t *testing.T) {
	llama := testutil.SharedPath(t, "fixtures", "models", "tiny-random-llama")
	demo := testutil.SharedPath(t, "fixtures", "data", "dpo_en_demo.json")
	stdout, stderr, code := relupo(t, "data", "preview", "--model", llama, "--data", demo, "-n", "2", "--max-length", "64", "--max-prompt-length", "24")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, w := range []string{
		"── pair 1 · " + demo + ":record 0 ──",
		"prompt text:\n  │<s>[INST] Hi! I'd like to create a new language game",
		"chosen text:\n  │ That sounds like a fun and engaging idea!",
		"chosen tokens:\n  [▁like][▁to][▁create]",
		"[▁[][/][INST][]]|▁That|▁sounds|",
		"prompt tokens 24, chosen labels 40, rejected labels 40; truncation: prompt cut from 33 to 24 tokens (9 removed from its start); responses cut to their first 40 tokens (chosen had 375, rejected 129)",
		"── pair 2 · " + demo + ":record 1 ──",
	} {
		if !strings.Contains(stdout, w) {
			t.Errorf("output lacks %q", w)
		}
	}
	if strings.Contains(stdout, "pair 3") {
		t.Errorf("more than -n 2 pairs shown")
	}

	// --color always colours the tokens: dim prompt, green chosen and red
	// rejected labels.
	stdout, stderr, code = relupo(t, "data", "preview", "--model", llama, "--data", demo, "-n", "1", "--color", "always")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, w := range []string{"\x1b[2m[<s>]", "|\x1b[32m▁That\x1b[0m|", "|\x1b[31m▁Hello\x1b[0m|"} {
		if !strings.Contains(stdout, w) {
			t.Errorf("coloured output lacks %q", w)
		}
	}
}

// Pre-tokenized pairs are shown through the folder's tokenizer, or as ids
// when it has none.
func TestDataPreviewTokenized(t *testing.T) {
	llama := testutil.SharedPath(t, "fixtures", "models", "tiny-random-llama")
	path := writeLines(t, `{"prompt_input_ids": [1, 15043], "chosen_input_ids": [3186, 2], "rejected_input_ids": [29871, 13, 2]}`)
	stdout, stderr, code := relupo(t, "data", "preview", "--model", llama, "--data", path)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, w := range []string{
		"prompt (decoded):\n  │<s> Hello\n",
		"chosen (decoded):\n  │ world</s>\n",
		"rejected (decoded):\n  │ \n  │</s>\n",
		"chosen tokens:\n  [<s>][▁Hello]|▁world|</s>|\n",
		"rejected tokens:\n  [<s>][▁Hello]|▁|<0x0A>|</s>|\n",
		"prompt tokens 2, chosen labels 2, rejected labels 3;",
	} {
		if !strings.Contains(stdout, w) {
			t.Errorf("output lacks %q:\n%s", w, stdout)
		}
	}

	stdout, stderr, code = relupo(t, "data", "preview", "--model", tinyModel, "--data", pairs(t, 2), "-n", "5")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, w := range []string{
		"chosen tokens:\n  [#3][#7][#11]|#20|#5|\n",
		"rejected tokens:\n  [#3][#7][#11]|#30|#6|#9|\n",
		"prompt tokens 3, chosen labels 2, rejected labels 3;",
		"── pair 2 ·",
	} {
		if !strings.Contains(stdout, w) {
			t.Errorf("output lacks %q:\n%s", w, stdout)
		}
	}
	if strings.Contains(stdout, "decoded") {
		t.Errorf("decoded text without a tokenizer:\n%s", stdout)
	}
}

func TestDataPreviewErrors(t *testing.T) {
	llama := testutil.SharedPath(t, "fixtures", "models", "tiny-random-llama")
	ok := writeLines(t, `{"prompt": [{"role": "user", "content": "Hi"}], "chosen": [{"role": "assistant", "content": "Yes"}], "rejected": [{"role": "assistant", "content": "No"}]}`)
	// Llama-2's template refuses two user turns in a row.
	bad := writeLines(t,
		`{"prompt": [{"role": "user", "content": "Hi"}, {"role": "user", "content": "Again"}], "chosen": [{"role": "assistant", "content": "Yes"}], "rejected": [{"role": "assistant", "content": "No"}]}`,
		`{"prompt": [{"role": "user", "content": "Hi"}], "chosen": [{"role": "assistant", "content": "Yes"}], "rejected": [{"role": "assistant", "content": "No"}]}`,
	)
	for _, tc := range []struct {
		name   string
		args   []string
		code   int
		stderr string
		stdout string
	}{
		{"missing --model", []string{"--data", ok}, 2, "--model is required", ""},
		{"missing --data", []string{"--model", llama}, 2, "--data is required", ""},
		{"-n 0", []string{"--model", llama, "--data", ok, "-n", "0"}, 2, "-n must be at least 1", ""},
		{"bad --color", []string{"--model", llama, "--data", ok, "--color", "pink"}, 2, "--color must be auto, always or never", ""},
		{"bad format", []string{"--model", llama, "--data", ok, "--data-format", "csv"}, 2, "unknown format", ""},
		{"bad truncation mode", []string{"--model", llama, "--data", ok, "--truncation-mode", "middle"}, 2, "keep_end or keep_start", ""},
		{"missing file", []string{"--model", llama, "--data", "nope.jsonl"}, 1, "nope.jsonl: no such file", ""},
		{"text without tokenizer", []string{"--model", t.TempDir(), "--data", ok}, 1, "", "no tokenizer to encode it"},
		{"template error shown, then exit 1", []string{"--model", llama, "--data", bad}, 1, "training cannot use 1 of the 2 pairs shown", "Conversation roles must alternate"},
		{"truncation that would cut responses away", []string{"--model", llama, "--data", ok, "--max-length", "8", "--max-prompt-length", "8"}, 2, "max_prompt_length (8) must be smaller than max_length (8)", ""},
		{"empty file", []string{"--model", llama, "--data", writeLines(t)}, 1, "holds no pairs", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stdout, stderr, code := relupo(t, append([]string{"data", "preview"}, tc.args...)...)
			if code != tc.code || !strings.Contains(stderr, tc.stderr) || !strings.Contains(stdout, tc.stdout) {
				t.Fatalf("exit %d, stderr %q, stdout %q; want exit %d, %q and %q", code, stderr, stdout, tc.code, tc.stderr, tc.stdout)
			}
			if strings.Contains(stderr, "goroutine ") || strings.Contains(stderr, "panic:") {
				t.Fatalf("stack trace shown to the user:\n%s", stderr)
			}
		})
	}
}
