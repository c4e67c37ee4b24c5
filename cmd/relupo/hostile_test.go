package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/relupo/relupo/internal/testutil"
)

// TestHostileFilesOnTheTerminal: text a file supplies reaches the
// terminal without escape sequences or line breaks (a template's
// raise_exception could clear the screen and fake a success line), and a
// recursive template macro is an ordinary error, not a Go stack overflow.
func TestHostileFilesOnTheTerminal(t *testing.T) {
	llama := testutil.SharedPath(t, "fixtures", "models", "tiny-random-llama")
	dir := t.TempDir()
	data := filepath.Join(dir, "pairs.jsonl")
	rec := `{"prompt": [{"role": "user", "content": "Hi"}], "chosen": [{"role": "assistant", "content": "Hello."}], "rejected": [{"role": "assistant", "content": "No."}]}` + "\n"
	if err := os.WriteFile(data, []byte(rec), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, template string
		want           string
	}{
		{"escape sequences", "{{ raise_exception('\x1b[2J\x1b[H\x1b[1;32mrelupo: training finished\\n\x1b]0;title\x07done') }}", "relupo: training finished done"},
		{"recursive macro", "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", "macros nested more than 64 deep"},
		{"huge range", "{% for i in range(10**9) %}x{% endfor %}", "the power operator (**) is not allowed"},
	} {
		t.Run(c.name, func(t *testing.T) {
			tmpl := filepath.Join(t.TempDir(), "chat_template.jinja")
			if err := os.WriteFile(tmpl, []byte(c.template), 0o644); err != nil {
				t.Fatal(err)
			}
			_, stderr, code := relupo(t, "train", "--model", llama, "--data", data, "--chat-template", tmpl,
				"--output-dir", filepath.Join(t.TempDir(), "out"), "--max-steps", "1", "--threads", "1")
			if code != 1 || !strings.Contains(stderr, c.want) {
				t.Fatalf("exit %d, stderr:\n%q\nwant exit 1 and %q", code, stderr, c.want)
			}
			if strings.ContainsAny(stderr, "\x1b\a\r") || strings.Contains(stderr, "goroutine ") {
				t.Fatalf("stderr carries control characters or a stack dump:\n%q", stderr)
			}
		})
	}
}
