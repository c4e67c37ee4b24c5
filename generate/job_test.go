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
		{"samples in alpaca_eval", Job{Model: "m", Input: good, Format: FormatAlpacaEval, Options: Options{MaxNewTokens: 2, NumReturnSequences: 2}}, false, "several answers per prompt are written as jsonl rows"},
		{"negative samples", Job{Model: "m", Input: good, Options: Options{MaxNewTokens: 2, NumReturnSequences: -1}}, false, "num return sequences -1"},
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

// With NumReturnSequences a job writes one row per prompt with its K
// samples, its id and its reference; sample 0 is the answer a one-answer
// job gives with the same seed.
func TestJobRunSamples(t *testing.T) {
	dir := testutil.SharedPath(t, "fixtures", "models", "tiny-random-llama")
	in := writePrompts(t, "{\"id\": \"a\", \"prompt_input_ids\": [0,0,0,52], \"answer\": \"#### 4\"}\n{\"prompt_input_ids\": [0,0,195,731]}\n")
	opt := Options{MaxNewTokens: 5, IgnoreEOS: true, Seed: 3, Sampling: Sampling{Temperature: 1}}
	run := func(k int) string {
		var out bytes.Buffer
		o := opt
		o.NumReturnSequences = k
		var plan Plan
		sum, err := Job{Model: dir, Input: in, Out: &out, Options: o, Threads: 1, OnStart: func(p Plan) { plan = p }}.Run(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if sum.Answers != 2*max(k, 1) || plan.Samples != max(k, 1) {
			t.Errorf("K %d: summary %+v, plan %+v", k, sum, plan)
		}
		return out.String()
	}
	var single []JSONLRecord
	for _, l := range strings.Split(strings.TrimSpace(run(0)), "\n") {
		var r JSONLRecord
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatal(err)
		}
		single = append(single, r)
	}
	lines := strings.Split(strings.TrimSpace(run(3)), "\n")
	if len(lines) != 2 {
		t.Fatalf("output %q", lines)
	}
	for i, l := range lines {
		var r SamplesRecord
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatal(err)
		}
		wantID, wantRef := []string{"a", "2"}[i], []string{"#### 4", ""}[i]
		if r.ID != wantID || r.Reference != wantRef || len(r.Responses) != 3 || len(r.OutputIDs) != 3 || len(r.FinishReasons) != 3 || len(r.PromptInputIDs) != 4 {
			t.Fatalf("line %d: %s", i+1, l)
		}
		if !slices.Equal(r.OutputIDs[0], single[i].OutputIDs) || r.Responses[0] != single[i].Output {
			t.Errorf("line %d: sample 0 %v, want the single answer %v", i+1, r.OutputIDs[0], single[i].OutputIDs)
		}
		if slices.Equal(r.OutputIDs[0], r.OutputIDs[1]) && slices.Equal(r.OutputIDs[1], r.OutputIDs[2]) {
			t.Errorf("line %d: the 3 samples are equal: %v", i+1, r.OutputIDs)
		}
	}
	// One sample asked for explicitly still writes the row layout.
	var r SamplesRecord
	if err := json.Unmarshal([]byte(strings.SplitN(run(1), "\n", 2)[0]), &r); err != nil || len(r.Responses) != 1 || !slices.Equal(r.OutputIDs[0], single[0].OutputIDs) {
		t.Errorf("K 1: %+v (%v)", r, err)
	}
}
