package train

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/relupo/relupo/data"
	"github.com/relupo/relupo/kernels"
	"github.com/relupo/relupo/model"
	"github.com/relupo/relupo/pref"
)

// Every checkpoint-N is a model folder: it carries the input's tokenizer
// files and the chat template the run trains with, as the final model does.
func TestCheckpointHasTokenizer(t *testing.T) {
	in := t.TempDir()
	files := map[string]string{
		"tokenizer.json":          `{"model": {}}`,
		"tokenizer_config.json":   `{"eos_token": "</s>"}`,
		"special_tokens_map.json": `{}`,
	}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(in, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	o := testOptions(t)
	o.Model = in
	o.SaveSteps = 2
	o.MaxSteps = 3 // the last step saves the final model, not a checkpoint
	o.ChatTemplate = "{{ messages }}"
	if _, err := runTrainer(t, o, tinyModel(1), tinyExamples(4, 1)); err != nil {
		t.Fatal(err)
	}
	ck := filepath.Join(o.OutputDir, "checkpoint-2")
	for name := range files {
		if _, err := os.Stat(filepath.Join(ck, name)); err != nil {
			t.Errorf("checkpoint lacks %s: %v", name, err)
		}
	}
	b, err := os.ReadFile(filepath.Join(ck, "chat_template.jinja"))
	if err != nil || string(b) != o.ChatTemplate {
		t.Errorf("checkpoint's chat_template.jinja = %q, %v; want the run's template", b, err)
	}
}

// eval_steps asks for evaluations; without evaluation data none could run,
// so the options are refused instead of silently never evaluating.
func TestEvalStepsNeedEvalData(t *testing.T) {
	for _, tc := range []struct {
		name  string
		set   func(*Options)
		valid bool
	}{
		{"eval_steps alone", func(o *Options) { o.EvalSteps = 10 }, false},
		{"with eval_data", func(o *Options) { o.EvalSteps, o.EvalData = 10, []string{"held-out.jsonl"} }, true},
		{"with eval_split_ratio", func(o *Options) { o.EvalSteps, o.EvalSplitRatio = 10, 0.1 }, true},
		{"no eval_steps", func(o *Options) {}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := testOptions(t)
			tc.set(&o)
			err := o.Validate()
			if (err == nil) != tc.valid {
				t.Fatalf("Validate() = %v, want valid %v", err, tc.valid)
			}
			if err != nil && !strings.Contains(err.Error(), "no evaluation data") {
				t.Fatalf("error %q does not say why", err)
			}
		})
	}
}

// logits/chosen and logits/rejected are TRL's: the mean logit over the
// vocabulary and over every label row of a micro-batch's chosen (rejected)
// responses, pooled over the micro-batch (logits[loss_mask].mean()), then
// averaged over micro-batches like every metric. The expected value comes
// from the model's generation path (LastLogits at each label row), an
// independent computation of the same logits; float32 logits summed in
// different orders agree to ~1e-6.
func TestLogitMetrics(t *testing.T) {
	m := tinyModel(5)
	exs := tinyExamples(4, 6)
	ws := &model.Workspace{Pool: kernels.NewPool(2)}
	defer ws.Pool.Close()
	// want is the pooled mean logit over the label rows of the responses.
	want := func(exs []data.Example, response func(data.Example) []int32) float64 {
		var sum float64
		var n int
		for _, e := range exs {
			seq := append(slices.Clone(e.Prompt), response(e)...)
			for t0 := max(len(e.Prompt), 1); t0 < len(seq); t0++ {
				b := &model.Batch{}
				b.Add(seq[:t0], nil)
				lg, err := m.LastLogits(ws, b)
				if err != nil {
					t.Fatal(err)
				}
				var s float64
				for _, v := range lg[0] {
					s += float64(v)
				}
				sum += s / float64(len(lg[0]))
				n++
			}
		}
		return sum / float64(n)
	}
	chosen := func(e data.Example) []int32 { return e.Chosen }
	rejected := func(e data.Example) []int32 { return e.Rejected }
	for _, share := range []bool{true, false} {
		e := NewEngine(m, Compute{Threads: 2})
		r, err := e.Step(Batch{Micro: [][]data.Example{exs[:2], exs[2:]}, Accumulation: 2, SharePrompt: share}, pref.Config{LossType: "repo", Beta: 2, Gamma: 2}, 0, -1)
		e.Close()
		if err != nil {
			t.Fatal(err)
		}
		for i, mb := range [][]data.Example{exs[:2], exs[2:]} {
			for key, resp := range map[string]func(data.Example) []int32{"logits/chosen": chosen, "logits/rejected": rejected} {
				got, ok := r.Metrics[i][key]
				if w := want(mb, resp); !ok || math.Abs(got-w) > 1e-5 {
					t.Errorf("share %v, micro-batch %d: %s = %v (present %v), want %v", share, i, key, got, ok, w)
				}
			}
		}
	}
	e := NewEngine(m, Compute{Threads: 2})
	defer e.Close()
	row, err := e.Evaluate(exs, pref.Config{LossType: "repo", Beta: 2, Gamma: 2}, 2)
	if err != nil {
		t.Fatal(err)
	}
	if w := (want(exs[:2], chosen) + want(exs[2:], chosen)) / 2; math.Abs(row["logits/chosen"]-w) > 1e-5 {
		t.Errorf("Evaluate: logits/chosen = %v, want the mean of the batches' %v", row["logits/chosen"], w)
	}
}

// hfTrainerStateKeys are the fields of transformers' TrainerState that
// relupo writes; TrainerState.load_from_json refuses any other top-level key.
var hfTrainerStateKeys = []string{"best_metric", "best_model_checkpoint", "epoch", "eval_steps", "global_step",
	"is_hyper_param_search", "is_local_process_zero", "is_world_process_zero", "log_history", "logging_steps",
	"max_steps", "num_input_tokens_seen", "num_train_epochs", "save_steps", "stateful_callbacks", "total_flos",
	"train_batch_size", "trial_name", "trial_params"}

// A checkpoint's trainer_state.json has the Hugging Face Trainer's layout
// (only TrainerState's keys, log_history holding every logged row), a
// resume from it is exact and continues its log_history, and a checkpoint
// in the layout relupo wrote before still resumes exactly.
func TestTrainerStateHFLayout(t *testing.T) {
	exs := tinyExamples(8, 9)
	base := testOptions(t)
	base.NumTrainEpochs = 2 // 8 steps
	base.LoggingSteps = 2
	base.WarmupSteps = 1

	full := tinyModel(3)
	if _, err := runTrainer(t, base, full, exs); err != nil {
		t.Fatal(err)
	}
	o := base
	o.OutputDir = t.TempDir()
	o.SaveSteps = 3
	if _, err := runTrainer(t, o, tinyModel(3), exs); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(o.OutputDir, "checkpoint-3", stateFile)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(b, &top); err != nil {
		t.Fatal(err)
	}
	for k := range top {
		if !slices.Contains(hfTrainerStateKeys, k) {
			t.Errorf("%s: key %q is not TrainerState's", stateFile, k)
		}
	}
	var hf struct {
		GlobalStep          int              `json:"global_step"`
		Epoch               float64          `json:"epoch"`
		BestModelCheckpoint *string          `json:"best_model_checkpoint"`
		LoggingSteps        int              `json:"logging_steps"`
		SaveSteps           int              `json:"save_steps"`
		MaxSteps            int              `json:"max_steps"`
		LogHistory          []map[string]any `json:"log_history"`
	}
	if err := json.Unmarshal(b, &hf); err != nil {
		t.Fatal(err)
	}
	if _, ok := top["best_model_checkpoint"]; !ok || hf.BestModelCheckpoint != nil {
		t.Errorf("best_model_checkpoint must be present and null")
	}
	if hf.GlobalStep != 3 || hf.MaxSteps != 8 || hf.LoggingSteps != 2 || hf.SaveSteps != 3 || math.Abs(hf.Epoch-0.75) > 1e-12 {
		t.Errorf("global_step %d, max_steps %d, logging_steps %d, save_steps %d, epoch %v; want 3, 8, 2, 3, 0.75", hf.GlobalStep, hf.MaxSteps, hf.LoggingSteps, hf.SaveSteps, hf.Epoch)
	}
	if len(hf.LogHistory) != 1 || hf.LogHistory[0]["step"] != 2.0 || hf.LogHistory[0]["loss"] == nil || hf.LogHistory[0]["epoch"] == nil {
		t.Errorf("log_history %v: want the row of step 2 with its loss and epoch", hf.LogHistory)
	}

	for _, layout := range []string{"hf", "before hf"} {
		t.Run(layout, func(t *testing.T) {
			r := o
			r.OutputDir = t.TempDir()
			src := filepath.Join(o.OutputDir, "checkpoint-3")
			dst := filepath.Join(r.OutputDir, "checkpoint-3")
			if err := os.MkdirAll(dst, 0o755); err != nil {
				t.Fatal(err)
			}
			entries, _ := os.ReadDir(src)
			for _, e := range entries {
				b, err := os.ReadFile(filepath.Join(src, e.Name()))
				if err != nil {
					t.Fatal(err)
				}
				if e.Name() == stateFile && layout == "before hf" {
					var st State
					if err := json.Unmarshal(b, &st); err != nil {
						t.Fatal(err)
					}
					if b, err = json.Marshal(relupoState(st)); err != nil { // relupo's fields at the top level
						t.Fatal(err)
					}
				}
				if err := os.WriteFile(filepath.Join(dst, e.Name()), b, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			r.ResumeFrom = "latest"
			r.SaveSteps = 6
			resumed := tinyModel(99)
			if _, err := runTrainer(t, r, resumed, exs); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(resumed.Params.Mem, full.Params.Mem) {
				t.Fatalf("resumed weights differ from the uninterrupted run by %g", maxAbsDiff(resumed.Params.Mem, full.Params.Mem))
			}
			b, err := os.ReadFile(filepath.Join(r.OutputDir, "checkpoint-6", stateFile))
			if err != nil {
				t.Fatal(err)
			}
			var later struct {
				LogHistory   []map[string]float64 `json:"log_history"`
				LoggingSteps int                  `json:"logging_steps"`
			}
			if err := json.Unmarshal(b, &later); err != nil {
				t.Fatal(err)
			}
			var steps []float64
			for _, row := range later.LogHistory {
				steps = append(steps, row["step"])
			}
			want := []float64{2, 4, 6}
			if layout == "before hf" {
				want = []float64{4, 6} // the old layout kept no history
			}
			if !slices.Equal(steps, want) || later.LoggingSteps != 2 {
				t.Errorf("checkpoint-6: log_history steps %v, logging_steps %d; want %v, 2", steps, later.LoggingSteps, want)
			}
		})
	}
}
