package data

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/relupo/relupo/internal/testutil"
)

func seq(n int, base int32) []int32 {
	s := make([]int32, n)
	for i := range s {
		s[i] = base + int32(i)
	}
	return s
}

// Truncation at and around the limits, following the official rule: with
// L = 10 and P = 6, a pair is cut only when prompt + longer response > L;
// then the prompt keeps P tokens (its end, or its start with keep_start),
// and if it is still too long both responses keep their first L − P = 4.
func TestTruncate(t *testing.T) {
	const L, P = 10, 6
	for _, tc := range []struct {
		prompt, chosen, rejected int
		mode                     string
		wantP, wantC, wantR      int
		promptFromEnd            bool
	}{
		{4, 6, 3, "keep_end", 4, 6, 3, true},    // exactly L: untouched
		{5, 6, 3, "keep_end", 5, 4, 3, true},    // L+1, prompt ≤ P: responses cut to L−P
		{8, 2, 1, "keep_end", 8, 2, 1, true},    // prompt > P but fits: untouched
		{9, 2, 1, "keep_end", 6, 2, 1, true},    // L+1 with a long prompt: prompt cut to P, now fits
		{9, 2, 1, "keep_start", 6, 2, 1, false}, // the same, keeping the start
		{12, 7, 5, "keep_end", 6, 4, 4, true},   // both cuts
		{12, 3, 5, "keep_end", 6, 3, 4, true},   // both cuts, the shorter response kept whole
		{6, 4, 4, "keep_end", 6, 4, 4, true},    // exactly L after nothing
		{7, 4, 0, "keep_end", 6, 4, 0, true},    // L+1 via the chosen side only
	} {
		t.Run(fmt.Sprintf("%d+%d/%d %s", tc.prompt, tc.chosen, tc.rejected, tc.mode), func(t *testing.T) {
			e := Example{Prompt: seq(tc.prompt, 100), Chosen: seq(tc.chosen, 200), Rejected: seq(tc.rejected, 300)}
			Truncation{MaxLength: L, MaxPromptLength: P, Mode: tc.mode}.Apply(&e)
			if len(e.Prompt) != tc.wantP || len(e.Chosen) != tc.wantC || len(e.Rejected) != tc.wantR {
				t.Fatalf("lengths %d/%d/%d, want %d/%d/%d", len(e.Prompt), len(e.Chosen), len(e.Rejected), tc.wantP, tc.wantC, tc.wantR)
			}
			full := seq(tc.prompt, 100)
			want := full[:tc.wantP]
			if tc.promptFromEnd {
				want = full[len(full)-tc.wantP:]
			}
			if !slices.Equal(e.Prompt, want) || !slices.Equal(e.Chosen, seq(tc.chosen, 200)[:tc.wantC]) {
				t.Fatalf("kept the wrong tokens: prompt %v chosen %v", e.Prompt, e.Chosen)
			}
		})
	}
	t.Run("disabled", func(t *testing.T) {
		e := Example{Prompt: seq(50, 0), Chosen: seq(50, 0), Rejected: seq(50, 0)}
		Truncation{Mode: "keep_end"}.Apply(&e)
		if len(e.Prompt)+len(e.Chosen)+len(e.Rejected) != 150 {
			t.Fatal("max_length 0 must not truncate")
		}
	})
}

// A response with nothing left to score is refused with the record named.
func TestCheckEmptyResponse(t *testing.T) {
	for _, e := range []Example{
		{Prompt: seq(3, 1), Chosen: nil, Rejected: seq(2, 1), Source: "f.jsonl:7"},
		{Prompt: nil, Chosen: seq(1, 1), Rejected: seq(2, 1), Source: "f.jsonl:7"}, // the first token of a sequence is never scored
	} {
		err := e.Check(Limits{})
		if err == nil || !strings.Contains(err.Error(), "f.jsonl:7") || !strings.Contains(err.Error(), "no tokens to score") {
			t.Errorf("got %v", err)
		}
	}
	ok := Example{Prompt: nil, Chosen: seq(2, 1), Rejected: seq(2, 1)}
	if err := ok.Check(Limits{}); err != nil {
		t.Error(err)
	}
}

func TestNewEncoderWithoutTokenizer(t *testing.T) {
	enc, err := LoadConfig{Tokenizer: t.TempDir()}.NewEncoder()
	if err != nil || enc != nil {
		t.Fatalf("NewEncoder = %v, %v; want nil, nil for a folder without tokenizer.json", enc, err)
	}
}

// Encoder.Example is Encode's ids as int32, with the record's source, and
// Check refuses ids the model has no embedding for.
func TestEncoderExample(t *testing.T) {
	dir := testutil.SharedPath(t, "fixtures", "models", "tiny-random-llama")
	p := Pair{
		Prompt:   []Message{{Role: "system", Content: "Be kind."}, {Role: "user", Content: "Hi there"}},
		Chosen:   Message{Role: "assistant", Content: "Hello! How can I help?"},
		Rejected: Message{Role: "assistant", Content: "Go away."},
		Format:   FormatConversational, Source: "t.jsonl:1",
	}
	conv := func(ids []int) []int32 {
		out := make([]int32, len(ids))
		for i, id := range ids {
			out[i] = int32(id)
		}
		return out
	}
	for _, tc := range []struct {
		name     string
		template string
		trl      bool
	}{{"model template", "", false}, {"simpo-mistral", "simpo-mistral", false}, {"TRL convention", "", true}} {
		t.Run(tc.name, func(t *testing.T) {
			enc, err := NewEncoder(dir, EncodeOptions{ChatTemplate: tc.template, AssistantHeaderInPrompt: tc.trl})
			if err != nil {
				t.Fatal(err)
			}
			got, err := enc.Example(p)
			if err != nil {
				t.Fatal(err)
			}
			if err := got.Check(Limits{VocabSize: 32000}); err != nil {
				t.Fatal(err)
			}
			prompt, chosen, rejected, err := enc.Encode(p)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got.Prompt, conv(prompt)) || !slices.Equal(got.Chosen, conv(chosen)) || !slices.Equal(got.Rejected, conv(rejected)) || got.Source != p.Source {
				t.Errorf("Example %+v, Encode %v %v %v", got, prompt, chosen, rejected)
			}
			if got.Prompt[0] != 1 || got.Chosen[len(got.Chosen)-1] != 2 {
				t.Errorf("want BOS (1) first and EOS (2) last: %v … %v", got.Prompt, got.Chosen)
			}
		})
	}

	enc, err := NewEncoder(dir, EncodeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	e, err := enc.Example(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Check(Limits{VocabSize: 100}); err == nil || !strings.Contains(err.Error(), "t.jsonl:1: prompt token") || !strings.Contains(err.Error(), "vocabulary") {
		t.Errorf("ids beyond the model's vocabulary: error %v", err)
	}
	if _, err := NewEncoder(dir, EncodeOptions{ChatTemplate: "{% if %}"}); err == nil {
		t.Error("a broken chat template was accepted")
	}
}

// writeLines writes JSON lines to a temporary file and returns its path.
func writeLines(t *testing.T, lines ...string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "d.jsonl")
	if err := os.WriteFile(p, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadSkipInvalid(t *testing.T) {
	dir := testutil.SharedPath(t, "fixtures", "models", "tiny-random-llama")
	path := writeLines(t,
		`{"prompt": [{"role": "user", "content": "Hi"}], "chosen": [{"role": "assistant", "content": "Hello there, friend."}], "rejected": [{"role": "assistant", "content": "No."}]}`,
		// Llama-2's template refuses two user turns in a row.
		`{"prompt": [{"role": "user", "content": "Hi"}, {"role": "user", "content": "Again"}], "chosen": [{"role": "assistant", "content": "Yes"}], "rejected": [{"role": "assistant", "content": "No"}]}`,
		// Identical responses: skipped by the reader in any case.
		`{"prompt": [{"role": "user", "content": "Hi"}], "chosen": [{"role": "assistant", "content": "Same"}], "rejected": [{"role": "assistant", "content": "Same"}]}`,
		`{"prompt": [{"role": "user", "content": "Bye"}], "chosen": [{"role": "assistant", "content": "See you."}], "rejected": [{"role": "assistant", "content": "Whatever."}]}`,
	)
	srcs := []Source{{Path: path, Fraction: 1}}
	tests := []struct {
		name        string
		skipInvalid bool
		maxLength   int
		wantErr     string
		wantN       int
		wantSkipped []string
	}{
		{name: "stop at the first invalid record", wantErr: "d.jsonl:2: rendering the prompt"},
		{name: "skip", skipInvalid: true, wantN: 2, wantSkipped: []string{"d.jsonl:3", "d.jsonl:2"}},
		// max_prompt_length ≥ max_length would leave the responses no
		// tokens: refused before any record is read.
		{name: "truncation that empties responses", skipInvalid: true, maxLength: 12, wantErr: "max_prompt_length (12) must be smaller than max_length (12)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var skipped []string
			skip := func(err error) {
				s := err.Error()
				i := strings.Index(s, "d.jsonl:")
				skipped = append(skipped, s[i:i+len("d.jsonl:1")])
			}
			lc := LoadConfig{Sources: srcs, Tokenizer: dir, Truncation: Truncation{MaxLength: tc.maxLength, MaxPromptLength: 12, Mode: "keep_end"},
				Limits: Limits{VocabSize: 32000}, SkipInvalid: tc.skipInvalid, OnSkip: skip, OnInvalid: skip}
			exs, err := Load(context.Background(), lc)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(exs) != tc.wantN || !slices.Equal(skipped, tc.wantSkipped) {
				t.Errorf("%d examples, skipped %v; want %d, %v", len(exs), skipped, tc.wantN, tc.wantSkipped)
			}
		})
	}

	// A text record without a tokenizer is never skipped.
	_, err := Load(context.Background(), LoadConfig{Sources: srcs, SkipInvalid: true})
	if err == nil || !strings.Contains(err.Error(), "no tokenizer") {
		t.Errorf("text without a tokenizer: error %v", err)
	}
}

// A --chat-template value is a keyword, template text, or a path: a
// folder, a tokenizer_config.json or a template file. A path that is none
// of these is an error; before, it was used as the template's text and
// trained on the literal path.
func TestChatTemplateSources(t *testing.T) {
	dir := t.TempDir()
	folder := filepath.Join(dir, "model")
	jinjaOnly := filepath.Join(dir, "jinja-only")
	for _, d := range []string{folder, jinjaOnly} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write := func(path, text string) string {
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	cfg := write(filepath.Join(folder, "tokenizer_config.json"), `{"chat_template": "{{ 'from config' }}"}`)
	write(filepath.Join(jinjaOnly, "chat_template.jinja"), "{{ 'from jinja' }}")
	file := write(filepath.Join(dir, "t.jinja"), "{{ 'from file' }}")
	plain := write(filepath.Join(dir, "notes.txt"), "just words")
	for _, tc := range []struct{ opt, want, err string }{
		{"", "own", ""},
		{"{{ 'inline' }}", "{{ 'inline' }}", ""},
		{folder, "{{ 'from config' }}", ""},
		{cfg, "{{ 'from config' }}", ""},
		{jinjaOnly, "{{ 'from jinja' }}", ""},
		{file, "{{ 'from file' }}", ""},
		{filepath.Join(dir, "missing"), "", "neither template text"},
		{plain, "", "holds no Jinja"},
		{t.TempDir(), "", "neither chat_template.jinja nor tokenizer_config.json"},
	} {
		got, err := templateText(tc.opt, "own")
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: got %q, %v; want an error containing %q", tc.opt, got, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%q: got %q, %v; want %q", tc.opt, got, err, tc.want)
		}
	}
}

// A template that drops the assistant's message renders both responses
// the same: such a pair is refused, not trained with zero margin.
func TestIdenticalAfterTemplate(t *testing.T) {
	dir := testutil.SharedPath(t, "fixtures", "models", "tiny-random-llama")
	enc, err := NewEncoder(dir, EncodeOptions{ChatTemplate: "{% for m in messages %}{% if m['role'] == 'user' %}[U] {{ m['content'] }}{% endif %}{% endfor %}"})
	if err != nil {
		t.Fatal(err)
	}
	p := Pair{Prompt: []Message{{Role: "user", Content: "Hi"}}, Chosen: Message{Role: "assistant", Content: "Hello"},
		Rejected: Message{Role: "assistant", Content: "Go away"}, Source: "t.jsonl:4"}
	if _, _, _, err := enc.Encode(p); err == nil || !strings.Contains(err.Error(), "t.jsonl:4: the chosen and rejected responses are identical") {
		t.Fatalf("got %v", err)
	}
}
