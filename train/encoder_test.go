package train

import (
	"bufio"
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/relupo/relupo/data"
	"github.com/relupo/relupo/internal/testutil"
	"github.com/relupo/relupo/model"
)

func TestNewEncoderWithoutTokenizer(t *testing.T) {
	o := DefaultOptions()
	o.Model = t.TempDir()
	enc, err := NewEncoder(o, model.Config{VocabSize: 10})
	if err != nil || enc != nil {
		t.Fatalf("NewEncoder = %v, %v; want nil, nil for a folder without tokenizer.json", enc, err)
	}
}

func TestNewEncoderMatchesDataEncoder(t *testing.T) {
	dir := testutil.SharedPath(t, "fixtures", "models", "tiny-random-llama")
	p := data.Pair{
		Prompt:   []data.Message{{Role: "system", Content: "Be kind."}, {Role: "user", Content: "Hi there"}},
		Chosen:   data.Message{Role: "assistant", Content: "Hello! How can I help?"},
		Rejected: data.Message{Role: "assistant", Content: "Go away."},
		Format:   data.FormatConversational, Source: "t.jsonl:1",
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
			o := DefaultOptions()
			o.Model, o.ChatTemplate, o.CompletionOnlyAssistantContent = dir, tc.template, tc.trl
			enc, err := NewEncoder(o, model.Config{VocabSize: 32000})
			if err != nil {
				t.Fatal(err)
			}
			got, err := enc.Encode(p)
			if err != nil {
				t.Fatal(err)
			}
			de, err := data.NewEncoder(dir, data.EncodeOptions{ChatTemplate: tc.template, AssistantHeaderInPrompt: tc.trl})
			if err != nil {
				t.Fatal(err)
			}
			prompt, chosen, rejected, err := de.Encode(p)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got.Prompt, conv(prompt)) || !slices.Equal(got.Chosen, conv(chosen)) || !slices.Equal(got.Rejected, conv(rejected)) || got.Source != p.Source {
				t.Errorf("train encoder %+v, data encoder %v %v %v", got, prompt, chosen, rejected)
			}
			if got.Prompt[0] != 1 || got.Chosen[len(got.Chosen)-1] != 2 {
				t.Errorf("want BOS (1) first and EOS (2) last: %v … %v", got.Prompt, got.Chosen)
			}
		})
	}

	o := DefaultOptions()
	o.Model = dir
	enc, err := NewEncoder(o, model.Config{VocabSize: 100})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := enc.Encode(p); err == nil || !strings.Contains(err.Error(), "t.jsonl:1: token id") {
		t.Errorf("ids beyond the model's vocabulary: error %v", err)
	}
	o.ChatTemplate = "{% if %}"
	if _, err := NewEncoder(o, model.Config{VocabSize: 32000}); err == nil {
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

func TestLoadExamplesSkipInvalid(t *testing.T) {
	dir := testutil.SharedPath(t, "fixtures", "models", "tiny-random-llama")
	o := DefaultOptions()
	o.Model = dir
	enc, err := NewEncoder(o, model.Config{VocabSize: 32000})
	if err != nil {
		t.Fatal(err)
	}
	path := writeLines(t,
		`{"prompt": [{"role": "user", "content": "Hi"}], "chosen": [{"role": "assistant", "content": "Hello there, friend."}], "rejected": [{"role": "assistant", "content": "No."}]}`,
		// Llama-2's template refuses two user turns in a row.
		`{"prompt": [{"role": "user", "content": "Hi"}, {"role": "user", "content": "Again"}], "chosen": [{"role": "assistant", "content": "Yes"}], "rejected": [{"role": "assistant", "content": "No"}]}`,
		// Identical responses: skipped by the reader in any case.
		`{"prompt": [{"role": "user", "content": "Hi"}], "chosen": [{"role": "assistant", "content": "Same"}], "rejected": [{"role": "assistant", "content": "Same"}]}`,
		`{"prompt": [{"role": "user", "content": "Bye"}], "chosen": [{"role": "assistant", "content": "See you."}], "rejected": [{"role": "assistant", "content": "Whatever."}]}`,
	)
	srcs := []data.Source{{Path: path, Fraction: 1}}
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
		// max_prompt_length ≥ max_length leaves the responses no tokens.
		{name: "truncation empties a response", maxLength: 12, wantErr: "d.jsonl:1: the chosen response has no tokens to score"},
		{name: "skip what truncation empties", skipInvalid: true, maxLength: 12, wantN: 0, wantSkipped: []string{"d.jsonl:3", "d.jsonl:1", "d.jsonl:2", "d.jsonl:4"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var skipped []string
			lo := LoadOptions{Encoder: enc, MaxLength: tc.maxLength, MaxPromptLength: 12, TruncationMode: "keep_end", SkipInvalid: tc.skipInvalid,
				OnSkip: func(err error) {
					s := err.Error()
					i := strings.Index(s, "d.jsonl:")
					skipped = append(skipped, s[i:i+len("d.jsonl:1")])
				}}
			exs, err := LoadExamples(context.Background(), srcs, lo)
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
	_, err = LoadExamples(context.Background(), srcs, LoadOptions{SkipInvalid: true})
	if err == nil || !strings.Contains(err.Error(), "no tokenizer") {
		t.Errorf("text without a tokenizer: error %v", err)
	}
}

// TestTrainSharedDatasets trains two steps on each shared data set with the
// tiny Llama through Setup, as `relupo train` does, and checks the metrics.
func TestTrainSharedDatasets(t *testing.T) {
	dir := testutil.SharedPath(t, "fixtures", "models", "tiny-random-llama")
	for _, ds := range []struct{ file, format string }{
		{"dpo_en_demo.json", "auto"},
		{"hh-rlhf-harmless-base-test.jsonl.gz", "auto"},
	} {
		t.Run(ds.file, func(t *testing.T) {
			// A fraction keeps the tokenization quick.
			path := testutil.SharedPath(t, "fixtures", "data", ds.file)
			o := DefaultOptions()
			o.Model = dir
			o.Data = []string{path + ":0.1"}
			o.DataFormat = ds.format
			o.OutputDir = t.TempDir()
			o.MaxSteps = 2
			o.MaxLength, o.MaxPromptLength = 128, 64
			o.LoggingSteps = 1
			o.LearningRate = 1e-3
			o.SkipInvalid = true
			o.Threads = 2
			var notes []string
			tr, err := Setup(context.Background(), o, func(s string) { notes = append(notes, s) })
			if err != nil {
				t.Fatal(err)
			}
			defer tr.Pool.Close()
			if len(tr.Train) < 4 {
				t.Fatalf("%d training examples", len(tr.Train))
			}
			for _, e := range tr.Train {
				if len(e.Prompt)+max(len(e.Chosen), len(e.Rejected)) > o.MaxLength {
					t.Fatalf("%s: %d+%d/%d tokens, over max_length", e.Source, len(e.Prompt), len(e.Chosen), len(e.Rejected))
				}
			}
			sum, err := tr.Run(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if sum.Steps != 2 || math.IsNaN(sum.TrainLoss) || math.IsInf(sum.TrainLoss, 0) {
				t.Errorf("summary %+v", sum)
			}
			f, err := os.Open(filepath.Join(o.OutputDir, "metrics.jsonl"))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			rows := 0
			sc := bufio.NewScanner(f)
			for sc.Scan() {
				var row map[string]float64
				if err := json.Unmarshal(sc.Bytes(), &row); err != nil {
					t.Fatalf("metrics line %q: %v", sc.Text(), err)
				}
				for k, v := range row {
					if math.IsNaN(v) || math.IsInf(v, 0) {
						t.Errorf("metric %s = %v", k, v)
					}
				}
				if _, ok := row["loss"]; ok {
					rows++
				}
			}
			if rows != 2 {
				t.Errorf("%d metrics rows with a loss, want 2", rows)
			}
		})
	}
}
