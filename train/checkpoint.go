package train

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/relupo/relupo/data"
	"github.com/relupo/relupo/internal/atomicfile"
	"github.com/relupo/relupo/kernels"
	"github.com/relupo/relupo/model"
	"github.com/relupo/relupo/optim"
	"github.com/relupo/relupo/peft"
	"github.com/relupo/relupo/safetensors"
)

// A checkpoint is a folder OUTPUT_DIR/checkpoint-STEP holding
//
//	config.json, model.safetensors   the float32 weights (transformers loads it)
//	  or, under LoRA (use_peft),
//	adapter_config.json,             the float32 adapter (PEFT loads it; the
//	adapter_model.safetensors        base is the run's unchanged model)
//	optimizer.safetensors            AdamW moments and step counts
//	trainer_state.json               the State: step, epoch, data position, log window
//	tokenizer files, chat template   as in the final model, so a checkpoint is a model folder
//
// It is written under a temporary name and renamed when complete, so a kill
// at any moment leaves either the previous checkpoints or the new one, never
// a partial one.

const stateFile = "trainer_state.json"

func checkpointDir(out string, step int) string {
	return filepath.Join(out, "checkpoint-"+strconv.Itoa(step))
}

// saveCheckpoint writes checkpoint-STEP. Every rank calls it (gathering a
// sharded optimizer state is a collective); rank 0 writes.
func (t *Trainer) saveCheckpoint() error {
	state, err := t.engine.OptimizerState()
	if err != nil || !t.writer() {
		return err
	}
	out := t.Config.Output.Dir
	dir := checkpointDir(out, t.state.GlobalStep)
	tmp := dir + ".tmp"
	if err := os.RemoveAll(tmp); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	fail := func(err error) error {
		os.RemoveAll(tmp)
		return fmt.Errorf("checkpoint: step %d not saved (the previous checkpoints are intact): %w", t.state.GlobalStep, err)
	}
	if err := t.saveWeights(tmp); err != nil {
		return fail(err)
	}
	var ts []safetensors.Tensor
	for _, st := range state {
		ts = append(ts, safetensors.Tensor{Name: st.Name, DType: safetensors.F32, Shape: []int{len(st.Data)}, Data: st.Data})
	}
	if err := safetensors.Write(filepath.Join(tmp, "optimizer.safetensors"), ts, nil); err != nil {
		return fail(err)
	}
	// The tokenizer files and the chat template the run trains with make
	// the checkpoint a model folder that generate, eval and logps accept.
	if err := CopyTokenizerFiles(tmp, t.Config.Model); err != nil {
		return fail(err)
	}
	if err := t.saveTemplate(tmp); err != nil {
		return fail(err)
	}
	b, err := json.MarshalIndent(t.state, "", "  ")
	if err != nil {
		return fail(err)
	}

	if err := atomicfile.WriteFile(filepath.Join(tmp, stateFile), b); err != nil {
		return fail(err)
	}
	if err := atomicfile.RemoveDir(dir); err != nil { // an older save of the same step
		return fail(err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		return fail(err)
	}
	if err := atomicfile.SyncDir(out); err != nil {
		return fail(err)
	}
	return t.pruneCheckpoints()
}

// checkpoints lists the complete checkpoint folders of out by step.
func checkpoints(out string) ([]int, error) {
	entries, err := os.ReadDir(out)
	if err != nil {
		return nil, err
	}
	var steps []int
	for _, e := range entries {
		s, ok := strings.CutPrefix(e.Name(), "checkpoint-")
		n, err := strconv.Atoi(s)
		if !ok || err != nil || !e.IsDir() {
			continue
		}
		if _, err := os.Stat(filepath.Join(out, e.Name(), stateFile)); err == nil {
			steps = append(steps, n)
		}
	}
	sort.Ints(steps)
	return steps, nil
}

func (t *Trainer) pruneCheckpoints() error {
	limit := t.Config.Loop.SaveTotalLimit
	if limit <= 0 {
		return nil
	}
	steps, err := checkpoints(t.Config.Output.Dir)
	if err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	for len(steps) > limit {
		if err := atomicfile.RemoveDir(checkpointDir(t.Config.Output.Dir, steps[0])); err != nil {
			return fmt.Errorf("checkpoint: %w", err)
		}
		steps = steps[1:]
	}
	return nil
}

// ResolveCheckpoint turns --resume-from-checkpoint into a folder: "latest"
// (or "true", as HF accepts) means the newest complete checkpoint in out.
func ResolveCheckpoint(spec, out string) (string, error) {
	if spec != "latest" && spec != "true" {
		return spec, nil
	}
	steps, err := checkpoints(out)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("resume: %w", err)
	}
	if len(steps) == 0 {
		return "", fmt.Errorf("resume: no checkpoint-N folder with a %s in %s", stateFile, out)
	}
	return checkpointDir(out, steps[len(steps)-1]), nil
}

func (t *Trainer) resume() error {
	dir, err := ResolveCheckpoint(t.Config.Loop.ResumeFrom, t.Config.Output.Dir)
	if err != nil {
		return err
	}
	b, err := os.ReadFile(filepath.Join(dir, stateFile))
	if err != nil {
		return fmt.Errorf("resume: %w", err)
	}
	var st State
	if err := json.Unmarshal(b, &st); err != nil {
		return fmt.Errorf("resume: %s: %w", filepath.Join(dir, stateFile), err)
	}
	switch {
	case st.NumExamples != len(t.Train):
		return fmt.Errorf("resume: %s was made with %d training pairs, this run has %d: resume needs the same data", dir, st.NumExamples, len(t.Train))
	case st.MaxSteps != t.plan.maxSteps:
		return fmt.Errorf("resume: %s was made for %d steps, this run plans %d: resume needs the same epochs and global batch (per-device batch × ranks × accumulation)", dir, st.MaxSteps, t.plan.maxSteps)
	case st.LossType != t.state.LossType:
		return fmt.Errorf("resume: %s was made with loss %s, this run uses %s", dir, st.LossType, t.state.LossType)
	}
	if st.Run != nil && t.Record != nil {
		if d := st.Run.differences(t.Record); len(d) > 0 {
			return fmt.Errorf("resume: %s belongs to another run: %s; resume with that run's options and data, or start a new run (--overwrite-output-dir)", dir, strings.Join(d, "; "))
		}
	}
	if err := t.regroup(&st); err != nil {
		return fmt.Errorf("resume: %s: %w", dir, err)
	}
	if st.GlobalStep < 0 || st.GlobalStep > st.MaxSteps || st.Micro < 0 || st.Micro >= t.plan.microPerEpoch || st.Epoch < 0 {
		return fmt.Errorf("resume: %s: inconsistent state %+v", dir, st)
	}
	if err := t.loadWeights(dir); err != nil {
		return fmt.Errorf("resume: %w", err)
	}
	f, err := safetensors.Open(filepath.Join(dir, "optimizer.safetensors"))
	if err != nil {
		return fmt.Errorf("resume: %w", err)
	}
	defer f.Close()
	var sts []optim.StateTensor
	for _, name := range f.Names() {
		d, err := f.Float32(name)
		if err != nil {
			return fmt.Errorf("resume: %w", err)
		}
		sts = append(sts, optim.StateTensor{Name: name, Data: d})
	}
	if err := t.engine.LoadOptimizerState(sts); err != nil {
		return fmt.Errorf("resume: %s: %w", dir, err)
	}
	t.state = st
	if !t.writer() {
		return nil
	}
	return t.metrics.truncateAfter(st.GlobalStep)
}

// saveWeights writes what the run trains into a checkpoint folder.
func (t *Trainer) saveWeights(dir string) error { return SaveTrained(t.Policy, dir, t.Config.Model) }

// loadWeights restores what the run trains from a checkpoint folder.
func (t *Trainer) loadWeights(dir string) error { return LoadTrained(t.Policy, dir) }

// SaveTrained writes what training changes in m into the folder dir: the
// float32 model, or with an adapter (m.LoRA) the float32 adapter in PEFT's
// format, naming base, the base model's folder, as its base model.
func SaveTrained(m *model.Model, dir, base string) error {
	if a := m.LoRA; a != nil {
		return peft.Write(dir, a, base, safetensors.F32)
	}
	return m.Save(dir, safetensors.F32, 0)
}

// LoadTrained restores into m what SaveTrained wrote into dir: the
// weights, or with an adapter the adapter's, which must have m's
// adapter's shapes and scale.
func LoadTrained(m *model.Model, dir string) error {
	if a := m.LoRA; a != nil {
		if !peft.IsAdapter(dir) {
			return fmt.Errorf("%s holds no adapter (%s): it was not written by a use_peft run", dir, peft.ConfigFile)
		}
		saved, _, err := peft.Load(dir, m.Config)
		if err != nil {
			return err
		}
		if !sameLoRA(saved.Config, a.Config) {
			return fmt.Errorf("%s: the adapter has r %d, α %g, targets %s, rsLoRA %v; this run's has r %d, α %g, targets %s, rsLoRA %v",
				dir, saved.Config.R, saved.Config.Alpha, strings.Join(saved.Config.Targets, ","), saved.Config.RSLoRA,
				a.Config.R, a.Config.Alpha, strings.Join(a.Config.Targets, ","), a.Config.RSLoRA)
		}
		copy(a.Mem, saved.Mem)
		return nil
	}
	if peft.IsAdapter(dir) {
		return fmt.Errorf("%s holds a LoRA adapter: it was written by a use_peft run; resume it with --use-peft", dir)
	}
	ck, err := safetensors.OpenCheckpoint(dir)
	if err != nil {
		return err
	}
	defer ck.Close()
	return m.LoadWeights(ck)
}

// sameLoRA reports whether two adapter configurations have the same
// shapes and scale (dropout aside).
func sameLoRA(a, b model.LoRAConfig) bool {
	return a.R == b.R && a.Alpha == b.Alpha && a.RSLoRA == b.RSLoRA && slices.Equal(a.Targets, b.Targets)
}

// tokenizerFiles are copied from the input model folder into the output,
// so that the result loads with AutoTokenizer as well as AutoModel.
var tokenizerFiles = []string{
	"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja",
	"tokenizer.model", "vocab.json", "merges.txt", "added_tokens.json", "generation_config.json",
}

// CopyTokenizerFiles copies the tokenizer files (tokenizer.json,
// tokenizer_config.json, the chat template, generation_config.json, …)
// found in the folders srcs into dst, atomically each; where several hold
// a file, the first that has it wins. Empty folder names are skipped.
func CopyTokenizerFiles(dst string, srcs ...string) error {
	for _, name := range tokenizerFiles {
		for _, src := range srcs {
			if src == "" {
				continue
			}
			path := filepath.Join(src, name)
			if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
				continue
			}
			if err := copyFile(path, filepath.Join(dst, name)); err != nil {
				return err
			}
			break
		}
	}
	return nil
}

func (t *Trainer) saveFinal(sum Summary) error {
	if !t.writer() {
		return nil
	}
	// The whole folder is written aside and swapped in (writeFinal), so a
	// kill never leaves new weights beside an old config.
	return writeFinal(t.Config.Output.Dir, func(dir string) error {
		if err := t.saveFinalWeights(dir); err != nil {
			return err
		}
		if err := CopyTokenizerFiles(dir, t.Config.Model); err != nil {
			return err
		}
		if err := t.saveTemplate(dir); err != nil {
			return err
		}
		return atomicfile.WriteFile(filepath.Join(dir, "README.md"), []byte(t.modelCard(sum)))
	})
}

// saveFinalWeights writes the trained weights into the final folder: the
// model in SaveDType, or under LoRA the float32 adapter and, with
// merge_adapter, the merged model beside it, streamed from the base's
// files one tensor at a time (the policy may hold a frozen bfloat16 base).
func (t *Trainer) saveFinalWeights(dir string) error {
	a := t.Policy.LoRA
	if a == nil {
		return t.Policy.Save(dir, t.SaveDType, 0)
	}
	if err := peft.Write(dir, a, t.Config.Model, safetensors.F32); err != nil {
		return err
	}
	if !t.Config.PEFT.Merge {
		return nil
	}
	pool := kernels.NewPool(t.Config.Compute.Threads) // float32 products, whatever the run's precision
	defer pool.Close()
	return peft.MergeFolder(t.Config.Model, a, dir, t.SaveDType, 0, pool)
}

// saveTemplate writes the chat template the run trained with, when it
// overrode the model's, into the output as the official script does: as
// chat_template.jinja (which transformers prefers) and as
// tokenizer_config.json's chat_template.
func (t *Trainer) saveTemplate(out string) error {
	opt := t.Config.Data.Encode.ChatTemplate
	if opt == "" {
		return nil
	}
	text, err := data.TemplateOverride(opt)
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFile(filepath.Join(out, "chat_template.jinja"), []byte(text)); err != nil {
		return err
	}
	path := filepath.Join(out, "tokenizer_config.json")
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var cfg map[string]any
	if err := json.Unmarshal(b, &cfg); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	cfg["chat_template"] = text
	b, err = json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(path, append(b, '\n'))
}

// copyFile copies src to dst atomically; a missing src is not an error.
func copyFile(src, dst string) error {
	f, err := os.Open(src)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	return atomicfile.Write(dst, func(w io.Writer) error {
		_, err := io.Copy(w, f)
		return err
	})
}

func (t *Trainer) modelCard(sum Summary) string {
	c := t.Config
	l, o := c.Loss, c.Loop
	var sb strings.Builder
	if p := c.PEFT; p.Enabled {
		fmt.Fprintf(&sb, "---\nbase_model: %s\nlibrary_name: peft\ntags:\n- relupo\n- %s\n- lora\n---\n\n", c.Model, l.LossType)
	} else {
		fmt.Fprintf(&sb, "---\nlibrary_name: transformers\ntags:\n- relupo\n- %s\n---\n\n", l.LossType)
	}
	fmt.Fprintf(&sb, "# %s\n\nTrained with relupo (loss `%s`) from `%s` on %s.\n\n", filepath.Base(filepath.Clean(c.Output.Dir)), l.LossType, c.Model, time.Now().UTC().Format("2006-01-02"))
	sb.WriteString("## Recipe\n\n| key | value |\n|---|---|\n")
	var files []string
	for _, s := range c.Data.Train {
		files = append(files, s.String())
	}
	rows := [][2]string{
		{"loss_type", l.LossType}, {"beta", fmt.Sprint(l.Beta)}, {"gamma_beta_ratio", fmt.Sprint(l.Gamma)},
		{"learning_rate", fmt.Sprint(o.LearningRate)}, {"lr_scheduler_type", o.Scheduler},
		{"warmup_steps", fmt.Sprint(t.plan.warmup)}, {"weight_decay", fmt.Sprint(o.WeightDecay)},
		{"max_grad_norm", fmt.Sprint(o.MaxGradNorm)}, {"per_device_train_batch_size", fmt.Sprint(o.BatchSize)},
		{"gradient_accumulation_steps", fmt.Sprint(o.Accumulation)}, {"max_steps", fmt.Sprint(t.plan.maxSteps)},
		{"max_length", fmt.Sprint(c.Data.Truncation.MaxLength)}, {"max_prompt_length", fmt.Sprint(c.Data.Truncation.MaxPromptLength)},
		{"seed", fmt.Sprint(o.Seed)}, {"compute_dtype", c.Compute.Precision.String()}, {"training pairs", fmt.Sprint(len(t.Train))},
		{"data", strings.Join(files, ", ")},
	}
	if l.SFTWeight != 0 {
		rows = append(rows, [2]string{"sft_weight", fmt.Sprint(l.SFTWeight)})
	}
	if p := c.PEFT; p.Enabled {
		rows = append(rows, [2]string{"use_peft", "true"}, [2]string{"lora_r", fmt.Sprint(p.LoRA.R)}, [2]string{"lora_alpha", fmt.Sprint(p.LoRA.Alpha)},
			[2]string{"lora_dropout", fmt.Sprint(p.LoRA.Dropout)}, [2]string{"lora_target_modules", strings.Join(p.LoRA.Targets, ",")},
			[2]string{"use_rslora", fmt.Sprint(p.LoRA.RSLoRA)})
		if p.Init != "" {
			rows = append(rows, [2]string{"lora_init", p.Init})
		}
	}
	if c.Compute.Checkpoint {
		rows = append(rows, [2]string{"gradient_checkpointing", "true"})
	}
	if tmpl := c.Data.Encode.ChatTemplate; tmpl != "" {
		if len(tmpl) > 60 || strings.ContainsAny(tmpl, "\n|") {
			tmpl = "given as text"
		}
		rows = append(rows, [2]string{"chat_template", "`" + tmpl + "` (saved in chat_template.jinja and tokenizer_config.json)"})
	}
	if kw := TemplateVars(c.Data.Encode.TemplateVars).String(); kw != "" {
		rows = append(rows, [2]string{"chat_template_kwargs", "`" + strings.ReplaceAll(kw, "|", `\|`) + "`"})
	}
	for _, r := range rows {
		fmt.Fprintf(&sb, "| %s | %s |\n", r[0], r[1])
	}
	fmt.Fprintf(&sb, "\n## Results\n\n- steps: %d\n- mean training loss: %.6g\n", sum.Steps, sum.TrainLoss)
	keys := make([]string, 0, len(sum.Eval))
	for k := range sum.Eval {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(&sb, "- %s: %.6g\n", k, sum.Eval[k])
	}
	sb.WriteString("\nThe per-step metrics are in `metrics.jsonl`.\n")
	return sb.String()
}

// regroup maps the data position of a checkpoint written with another
// number of ranks, per-device batch or accumulation (but the same global
// batch, so the same plan) onto this run's: the position within the epoch
// counts optimizer steps, and each optimizer step covers the same pairs of
// the epoch's order whatever the split (see rankOrder), so the run resumes
// exactly, up to the order of float32 sums.
func (t *Trainer) regroup(st *State) error {
	c := t.Config.Loop
	world, batch, acc := max(st.WorldSize, 1), st.BatchSize, st.Accumulation
	if batch == 0 {
		batch, acc = c.BatchSize, c.Accumulation // written before these were recorded
	}
	if world == t.ranks() && batch == c.BatchSize && acc == c.Accumulation {
		return nil
	}
	if world*batch*acc != t.ranks()*c.BatchSize*c.Accumulation || st.Micro%acc != 0 {
		return fmt.Errorf("made with %d ranks × batch %d × accumulation %d, this run %d × %d × %d: resume needs the same global batch", world, batch, acc, t.ranks(), c.BatchSize, c.Accumulation)
	}
	st.Micro = st.Micro / acc * c.Accumulation
	st.WorldSize, st.BatchSize, st.Accumulation = t.ranks(), c.BatchSize, c.Accumulation
	return nil
}
