package generate

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/relupo/relupo/internal/testutil"
)

func writePrompts(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "prompts.jsonl")
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestJobRun(t *testing.T) {
	dir := testutil.SharedPath(t, "fixtures", "models", "tiny-random-llama")
	const prompts = "{\"prompt_input_ids\": [0,0,0,52]}\n{\"prompt_input_ids\": [0,0,195,731]}\n"
	greedy := Options{MaxNewTokens: 6, IgnoreEOS: true}
	for _, tc := range []struct {
		name      string
		job       Job
		toFile    bool
		wantStops []int
	}{
		{"file to file", Job{Input: writePrompts(t, prompts), Options: greedy, Threads: 1}, true, []int{1, 2}},
		{"reader to writer", Job{Input: "-", In: strings.NewReader(prompts), Options: greedy, Threads: 1}, false, []int{1, 2}},
		{"extra stop tokens", Job{Input: writePrompts(t, prompts), Options: Options{MaxNewTokens: 6, IgnoreEOS: true, StopTokens: []int{7, 2}}}, false, []int{1, 2, 7}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			var plan Plan
			var done []int
			j := tc.job
			j.Model, j.Out = dir, &out
			j.OnStart = func(p Plan) { plan = p }
			j.OnDone = func(p Progress) { done = append(done, p.Done) }
			if tc.toFile {
				j.Output = filepath.Join(t.TempDir(), "answers.jsonl")
			}
			sum, err := j.Run(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if plan.Prompts != 2 || !plan.Sampling.Greedy() || !slices.Equal(plan.StopTokens, tc.wantStops) || plan.Threads < 1 ||
				(j.Threads > 0 && plan.Threads != j.Threads) {
				t.Errorf("plan %+v", plan)
			}
			if !slices.Equal(done, []int{1, 2}) {
				t.Errorf("progress reported done %v", done)
			}
			if sum.Answers != 2 || sum.PromptTokens != 8 || sum.GeneratedTokens != 12 || sum.Path != j.Output {
				t.Errorf("summary %+v", sum)
			}
			got := out.Bytes()
			if tc.toFile {
				if out.Len() > 0 {
					t.Errorf("wrote %q to Out as well as the file", out.String())
				}
				if got, err = os.ReadFile(j.Output); err != nil {
					t.Fatal(err)
				}
			}
			want := [][]int{{12102, 30463, 4666, 17192, 3266, 18061}, {29592, 4877, 18112, 22607, 12936, 997}}
			lines := strings.Split(strings.TrimSpace(string(got)), "\n")
			if len(lines) != 2 {
				t.Fatalf("output %q", got)
			}
			for i, l := range lines {
				var r JSONLRecord
				if err := json.Unmarshal([]byte(l), &r); err != nil || !slices.Equal(r.OutputIDs, want[i]) {
					t.Errorf("line %d: %s (%v), want ids %v", i+1, l, err, want[i])
				}
			}
		})
	}
}

func TestJobRunErrors(t *testing.T) {
	good := writePrompts(t, "{\"prompt_input_ids\": [1, 2]}\n")
	opt := Options{MaxNewTokens: 2}
	for _, tc := range []struct {
		name   string
		job    Job
		shared bool // needs the tiny-random-llama fixture
		want   string
	}{
		{"no model", Job{Input: good, Options: opt}, false, "needs a model folder and an input"},
		{"no input", Job{Model: "m", Options: opt}, false, "needs a model folder and an input"},
		{"bad format", Job{Model: "m", Input: good, Format: "csv", Options: opt}, false, `unknown format "csv"`},
		{"bad top-p", Job{Model: "m", Input: good, Options: Options{MaxNewTokens: 2, Sampling: Sampling{TopP: 2}}}, false, "top-p"},
		{"no max new tokens", Job{Model: "m", Input: good}, false, "max new tokens"},
		{"missing input", Job{Model: "m", Input: "nope.jsonl", Options: opt}, false, "nope.jsonl"},
		{"empty stdin", Job{Model: "m", Input: "-", In: strings.NewReader(""), Options: opt}, false, "stdin holds no prompts"},
		{"ids for alpaca_eval", Job{Model: "m", Input: good, Format: FormatAlpacaEval, Options: opt}, false, "prompts.jsonl:1: the alpaca_eval format needs an instruction"},
		{"no tokenizer", Job{Model: t.TempDir(), Input: good, Options: opt}, false, "tokenizer"},
		{"id outside the vocabulary", Job{Input: writePrompts(t, "{\"prompt_input_ids\": [1, 2]}\n{\"prompt_input_ids\": [1, 32000]}\n"), Options: opt}, true, "prompts.jsonl:2: token id 32000 outside the model's vocabulary"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			j := tc.job
			if tc.shared {
				j.Model = testutil.SharedPath(t, "fixtures", "models", "tiny-random-llama")
			}
			if _, err := j.Run(context.Background()); err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "generate: ") {
				t.Errorf("error %v, want one mentioning %q", err, tc.want)
			}
		})
	}
}

// A cancelled job stops with the context's error and leaves no output file.
func TestJobRunCancelled(t *testing.T) {
	dir := testutil.SharedPath(t, "fixtures", "models", "tiny-random-llama")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	out := filepath.Join(t.TempDir(), "answers.jsonl")
	j := Job{Model: dir, Input: writePrompts(t, "{\"prompt_input_ids\": [1, 2]}\n"), Output: out, Options: Options{MaxNewTokens: 4}}
	if _, err := j.Run(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("error %v, want context.Canceled", err)
	}
	if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("output file: %v", err)
	}
}
