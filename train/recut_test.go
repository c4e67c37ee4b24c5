package train

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/relupo/relupo/data"
	"github.com/relupo/relupo/pref"
)

// The tiny model and pairs of testdata/multistep (vocab 64), for tests
// that run the whole pipeline from files.
var (
	msPolicy = filepath.Join("testdata", "multistep", "policy")
	msPairs  = filepath.Join("testdata", "multistep", "pairs.jsonl")
)

// fileOptions are training options over the multistep files.
func fileOptions(t *testing.T) Options {
	o := DefaultOptions()
	o.Model, o.Data, o.OutputDir = msPolicy, []string{msPairs}, t.TempDir()
	o.MaxSteps, o.PerDeviceTrainBatchSize, o.Threads = 1, 2, 2
	return o
}

// writeFile writes text to a new file in a temporary folder.
func writeFile(t *testing.T, name, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// --ref-logps covers the training data; the evaluation data gets its
// reference log-probs from the reference model. Before the re-cut, the
// evaluation set's values were read from the training file and the run
// stopped with an error.
func TestRefLogpsWithEvalData(t *testing.T) {
	ctx := context.Background()
	o := fileOptions(t)
	o.LossType = "sigmoid" // TRL's name for DPO
	f, err := Logps(ctx, o, nil)
	if err != nil {
		t.Fatal(err)
	}
	refPath := filepath.Join(t.TempDir(), "ref.jsonl")
	if err := f.WriteFile(refPath); err != nil {
		t.Fatal(err)
	}
	o.RefLogps = refPath
	o.EvalData = []string{writeFile(t, "eval.jsonl", `{"prompt_input_ids": [5, 6], "chosen_input_ids": [7, 8], "rejected_input_ids": [9, 10, 11]}`+"\n")}
	tr, err := Setup(ctx, o, func(s string) { t.Log(s) })
	if err != nil {
		t.Fatal(err)
	}
	if tr.Config.Loss.LossType != pref.LossDPO {
		t.Errorf("loss_type sigmoid became %q, want dpo", tr.Config.Loss.LossType)
	}
	for i, e := range tr.Train {
		if !e.HasRef() || *e.RefChosen != f.Lines[i].ChosenLogps || *e.RefRejected != f.Lines[i].RejectedLogps {
			t.Fatalf("pair %d: reference %v/%v, the file's %v/%v", i, e.RefChosen, e.RefRejected, f.Lines[i].ChosenLogps, f.Lines[i].RejectedLogps)
		}
	}
	if len(tr.Eval) != 1 || !tr.Eval[0].HasRef() {
		t.Fatalf("evaluation examples %+v: want one with reference log-probs", tr.Eval)
	}
	sum, err := tr.Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := sum.Eval["eval_loss"]; !ok {
		t.Errorf("no eval_loss in %v", sum.Eval)
	}
}

// A reference log-prob file is refused when it was made from other data
// or other data options, naming what differs; a file without provenance is
// refused with what to do instead.
func TestRefLogpsProvenance(t *testing.T) {
	ctx := context.Background()
	base := fileOptions(t)
	base.LossType = "dpo"
	f, err := Logps(ctx, base, nil)
	if err != nil {
		t.Fatal(err)
	}
	good := filepath.Join(t.TempDir(), "ref.jsonl")
	if err := f.WriteFile(good); err != nil {
		t.Fatal(err)
	}
	tampered := *f
	tampered.Lines = append([]LogpsLine(nil), f.Lines...)
	tampered.Lines[2].IDs = "0000000000000000"
	bad := filepath.Join(t.TempDir(), "tampered.jsonl")
	if err := tampered.WriteFile(bad); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(msPairs)
	otherData := writeFile(t, "pairs.jsonl", string(b)+`{"prompt_input_ids": [5], "chosen_input_ids": [7, 8], "rejected_input_ids": [9, 10]}`+"\n")
	for _, tc := range []struct {
		name   string
		change func(o *Options)
		want   string
	}{
		{"same data", func(o *Options) {}, ""},
		{"moved data file", func(o *Options) { o.Data = []string{writeFile(t, "moved.jsonl", string(b))} }, ""},
		{"other max_length", func(o *Options) { o.MaxLength, o.MaxPromptLength = 8, 4 }, "made with max_length 1024, this run uses 8"},
		{"other data", func(o *Options) { o.Data = []string{otherData} }, "its data file 1 is"},
		{"a pair differs", func(o *Options) { o.RefLogps = bad }, "pair 3 (" + msPairs + ":3) differs"},
		{"no provenance", func(o *Options) {
			o.RefLogps = writeFile(t, "old.jsonl", `{"chosen_logps": -1, "rejected_logps": -2}`+"\n")
		}, "no provenance header"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := base
			o.OutputDir, o.RefLogps = t.TempDir(), good
			tc.change(&o)
			_, err := Setup(ctx, o, nil)
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

// A record the run would refuse (here a token id past the vocabulary in
// the last record) stops the run before step 1, even with max_steps 1 and
// a batch that never reaches it; with skip_invalid it is counted and
// skipped. Before the re-cut such a run trained and wrote a model.
func TestInvalidRecordFoundBeforeStepOne(t *testing.T) {
	b, _ := os.ReadFile(msPairs)
	path := writeFile(t, "pairs.jsonl", string(b)+`{"prompt_input_ids": [5], "chosen_input_ids": [7, 64], "rejected_input_ids": [9, 10]}`+"\n")
	o := fileOptions(t)
	o.Data = []string{path}
	_, err := Setup(context.Background(), o, nil)
	if err == nil || !strings.Contains(err.Error(), "pairs.jsonl:5: chosen token 1: id 64 is outside the model's vocabulary [0, 64)") {
		t.Fatalf("got %v, want the bad record named before training", err)
	}
	if _, err := os.Stat(filepath.Join(o.OutputDir, "model.safetensors")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a model was written: %v", err)
	}
	o.SkipInvalid = true
	var notes []string
	tr, err := Setup(context.Background(), o, func(s string) { notes = append(notes, s) })
	if err != nil {
		t.Fatal(err)
	}
	if len(tr.Train) != 4 || len(notes) != 1 || !strings.Contains(notes[0], "pairs.jsonl:5") {
		t.Fatalf("%d examples, notes %q: want 4 and the skipped record named", len(tr.Train), notes)
	}
}

// Engine.Step is the trainer's step: one optimizer step of the trainer
// and one Engine.Step on the same micro-batch leave identical weights.
func TestStepIsTheTrainersStep(t *testing.T) {
	exs := tinyExamples(4, 21)
	o := testOptions(t)
	o.MaxSteps, o.PerDeviceTrainBatchSize, o.LRSchedulerType, o.WarmupRatio = 1, 4, "constant", 0
	trained := tinyModel(5)
	tr := &Trainer{Config: mustConfig(t, o), Policy: trained, Train: exs}
	if _, err := tr.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	c := mustConfig(t, o)
	stepped := tinyModel(5)
	e := NewEngine(stepped, c.Compute)
	defer e.Close()
	e.Optimizer = c.Loop.adamW()
	order := epochOrder(o.Seed, 0, len(exs))
	mb := make([]data.Example, len(exs))
	for i, idx := range order {
		mb[i] = exs[idx]
	}
	r, err := e.Step(Batch{Micro: [][]data.Example{mb}, Accumulation: 1, SharePrompt: true}, c.Loss.Config, o.LearningRate, o.MaxGradNorm)
	if err != nil {
		t.Fatal(err)
	}
	if !(r.GradNorm > 0) || len(r.Metrics) != 1 || r.Tokens == 0 {
		t.Fatalf("step result %+v", r)
	}
	if d := maxAbsDiff(trained.Params.Mem, stepped.Params.Mem); d != 0 {
		t.Fatalf("weights differ by %g", d)
	}
}

// The last optimizer step of an epoch, with fewer micro-batches than
// gradient_accumulation_steps, divides each by the number it really has
// (current transformers' current_gradient_accumulation_steps): with 4
// pairs, batch 1 and accumulation 3, step 2 is pair order[3] alone, and
// its logged loss is that pair's loss, not a third of it.
func TestPartialAccumulationStep(t *testing.T) {
	exs := tinyExamples(4, 31)
	o := testOptions(t)
	o.PerDeviceTrainBatchSize, o.GradientAccumulationSteps, o.MaxSteps, o.LearningRate = 1, 3, 2, 0
	m := tinyModel(8)
	if _, err := runTrainer(t, o, m, exs); err != nil {
		t.Fatal(err)
	}
	last := exs[epochOrder(o.Seed, 0, len(exs))[3]]
	e := NewEngine(m, Compute{Threads: 2})
	defer e.Close()
	lp, _, err := e.ForwardNoGrad([]data.Example{last}, true)
	if err != nil {
		t.Fatal(err)
	}
	want, err := pref.Compute(mustConfig(t, o).Loss.Config, lp.inputs([]data.Example{last}))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(filepath.Join(o.OutputDir, "metrics.jsonl"))
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	var r map[string]float64
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &r); err != nil {
		t.Fatal(err)
	}
	if r["step"] != 2 || math.Abs(r["loss"]-want.Loss) > 1e-6*math.Max(1, want.Loss) {
		t.Fatalf("step %v loss %v, want step 2 with the last pair's loss %v (not divided by 3: %v)", r["step"], r["loss"], want.Loss, want.Loss/3)
	}
}

// The chat template a run trained with, when it overrode the model's, is
// saved with the model (chat_template.jinja, and tokenizer_config.json's
// chat_template when the model has one) and named in the model card.
func TestChatTemplateSaved(t *testing.T) {
	o := fileOptions(t)
	o.ChatTemplate = "simpo-mistral"
	tr, err := Setup(context.Background(), o, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	want, _ := data.TemplateOverride("simpo-mistral")
	got, err := os.ReadFile(filepath.Join(o.OutputDir, "chat_template.jinja"))
	if err != nil || string(got) != want || want == "" {
		t.Fatalf("chat_template.jinja %q (%v), want the simpo-mistral template", got, err)
	}
	card, _ := os.ReadFile(filepath.Join(o.OutputDir, "README.md"))
	if !strings.Contains(string(card), "simpo-mistral") {
		t.Errorf("the model card does not name the template:\n%s", card)
	}
}

// A run refuses a non-empty output folder unless asked to overwrite it
// (then the earlier run's checkpoints and metrics go first) or to resume;
// a resume refuses a checkpoint written by another run, listing what
// differs, but accepts the options that may change. Before, a second run
// truncated the first's metrics, kept its checkpoints, and "latest"
// resumed the other run with other options.
func TestOutputFolderBelongsToOneRun(t *testing.T) {
	ctx := context.Background()
	o := fileOptions(t)
	o.MaxSteps, o.SaveSteps, o.PerDeviceTrainBatchSize = 2, 1, 2
	run := func(o Options) error {
		tr, err := Setup(ctx, o, nil)
		if err != nil {
			return err
		}
		_, err = tr.Run(ctx)
		return err
	}
	if err := run(o); err != nil {
		t.Fatal(err)
	}
	err := run(o)
	var ue *UsageError
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), "is not empty") || !strings.Contains(err.Error(), "--overwrite-output-dir") {
		t.Fatalf("a second run into the folder: %v", err)
	}

	other := o
	other.LearningRate, other.ResumeFrom = 5e-3, filepath.Join(o.OutputDir, "checkpoint-1")
	if err := run(other); err == nil || !strings.Contains(err.Error(), "belongs to another run") || !strings.Contains(err.Error(), "learning_rate was 1e-06, now 0.005") {
		t.Fatalf("resume with another learning rate: %v", err)
	}
	same := o
	same.LoggingSteps, same.ResumeFrom = 7, filepath.Join(o.OutputDir, "checkpoint-1")
	if err := run(same); err != nil {
		t.Fatalf("resume with another logging_steps: %v", err)
	}

	fresh := o
	fresh.Overwrite, fresh.MaxSteps, fresh.SaveSteps = true, 1, 0
	if err := run(fresh); err != nil {
		t.Fatal(err)
	}
	if cks, _ := filepath.Glob(filepath.Join(o.OutputDir, "checkpoint-*")); len(cks) != 0 {
		t.Errorf("the earlier run's checkpoints survived --overwrite-output-dir: %v", cks)
	}
}

// A reference log-prob file made with other chat template variables is
// refused by name (its token ids would differ too, but the message says
// why).
func TestProvenanceTemplateKwargs(t *testing.T) {
	var c DataConfig
	plain := c.provenance("m", nil, 3)
	c.Encode.TemplateVars = map[string]any{"enable_thinking": false}
	off := c.provenance("m", nil, 3)
	if off.ChatTemplateKwargs != `{"enable_thinking":false}` || plain.ChatTemplateKwargs != "" {
		t.Fatalf("kwargs %q and %q", off.ChatTemplateKwargs, plain.ChatTemplateKwargs)
	}
	if err := plain.check(off); err == nil || !strings.Contains(err.Error(), `it was made with chat_template_kwargs , this run uses {"enable_thinking":false}`) {
		t.Errorf("got %v", err)
	}
	if err := off.check(off); err != nil {
		t.Error(err)
	}
}

// A datasets save_to_disk folder is identified by its data files' bytes in
// state.json's order (every run hashes its data), not refused as a folder.
func TestHashSavedDatasetFolder(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("state.json", `{"_data_files": [{"filename": "data-00000-of-00002.arrow"}, {"filename": "data-00001-of-00002.arrow"}]}`)
	write("data-00000-of-00002.arrow", "first")
	write("data-00001-of-00002.arrow", "second")
	got, err := hashFiles([]data.Source{{Path: dir, Fraction: 0.5}})
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte("firstsecond"))
	if len(got) != 1 || got[0].Bytes != 11 || got[0].SHA256 != hex.EncodeToString(sum[:]) || got[0].Fraction != 0.5 {
		t.Errorf("got %+v", got)
	}
	write("data-00001-of-00002.arrow", "changed")
	if again, _ := hashFiles([]data.Source{{Path: dir}}); again[0].SHA256 == got[0].SHA256 {
		t.Error("a changed data file kept the folder's hash")
	}
	if _, err := hashFiles([]data.Source{{Path: t.TempDir()}}); err == nil || !strings.Contains(err.Error(), "is a folder") {
		t.Errorf("a plain folder: got %v", err)
	}
}
