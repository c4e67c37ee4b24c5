package train

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/relupo/relupo/data"
	"github.com/relupo/relupo/internal/atomicfile"
	"github.com/relupo/relupo/kernels"
	"github.com/relupo/relupo/model"
	"github.com/relupo/relupo/optim"
	"github.com/relupo/relupo/pref"
	"github.com/relupo/relupo/safetensors"
)

// Validate checks the options before anything is loaded.
func (o *Options) Validate() error {
	var problems []string
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	if o.Model == "" {
		bad("model_name_or_path (--model) is required")
	}
	if len(o.Data) == 0 && len(o.DatasetMixer) == 0 {
		bad("data (--data) or dataset_mixer is required")
	}
	if o.OutputDir == "" {
		bad("output_dir is required")
	}
	if err := (pref.Config{LossType: o.LossType, Beta: o.Beta, Gamma: o.GammaBetaRatio, LabelSmoothing: o.LabelSmoothing}).Validate(); err != nil {
		bad("%v", strings.TrimPrefix(err.Error(), "pref: "))
	}
	if !slices.Contains(optim.Schedules(), o.LRSchedulerType) {
		bad("lr_scheduler_type %q is not one of %s", o.LRSchedulerType, strings.Join(optim.Schedules(), ", "))
	}
	if !(o.LearningRate >= 0) || math.IsInf(o.LearningRate, 0) {
		bad("learning_rate must be ≥ 0, got %v", o.LearningRate)
	}
	if o.PerDeviceTrainBatchSize < 1 || o.PerDeviceEvalBatchSize < 1 || o.GradientAccumulationSteps < 1 {
		bad("batch sizes and gradient_accumulation_steps must be ≥ 1")
	}
	if o.MaxSteps <= 0 && !(o.NumTrainEpochs > 0) {
		bad("num_train_epochs must be > 0 when max_steps is not set")
	}
	if o.SFTWeight < 0 {
		bad("sft_weight must be ≥ 0")
	}
	if !(o.EvalSplitRatio >= 0 && o.EvalSplitRatio < 1) {
		bad("eval_split_ratio must be in [0, 1)")
	}
	if o.TruncationMode != "keep_end" && o.TruncationMode != "keep_start" {
		bad("truncation_mode must be keep_end or keep_start, got %q", o.TruncationMode)
	}
	if o.MaxLength > 0 && o.MaxPromptLength >= o.MaxLength {
		bad("max_prompt_length (%d) must be smaller than max_length (%d), or responses can be cut to nothing", o.MaxPromptLength, o.MaxLength)
	}
	if _, err := saveDType(o.SaveDType, ""); err != nil {
		bad("%v", err)
	}
	if _, err := o.Precision(); err != nil {
		bad("%v", err)
	}
	if _, err := data.ParseFormat(o.DataFormat); err != nil {
		bad("%v", strings.TrimPrefix(err.Error(), "data: "))
	}
	if len(problems) > 0 {
		return fmt.Errorf("invalid options: %s", strings.Join(problems, "; "))
	}
	return nil
}

// saveDType maps --save-dtype to a safetensors dtype; "auto" keeps the input's.
func saveDType(s string, input safetensors.DType) (safetensors.DType, error) {
	switch s {
	case "auto", "":
		if input == "" {
			input = safetensors.F32
		}
		return input, nil
	case "float32", "fp32":
		return safetensors.F32, nil
	case "float16", "fp16":
		return safetensors.F16, nil
	case "bfloat16", "bf16":
		return safetensors.BF16, nil
	}
	return "", fmt.Errorf("save_dtype %q is not one of auto, float32, float16, bfloat16", s)
}

// Sources returns the training files of the options: --data entries
// (file[:fraction]) and the recipe's dataset_mixer, in a stable order.
func (o *Options) Sources() ([]data.Source, error) {
	var out []data.Source
	if len(o.Data) > 0 {
		srcs, err := data.ParseMixture(strings.Join(o.Data, ","))
		if err != nil {
			return nil, err
		}
		out = append(out, srcs...)
	}
	keys := make([]string, 0, len(o.DatasetMixer))
	for k := range o.DatasetMixer {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		f := o.DatasetMixer[k]
		if !(f >= 0 && f <= 1) {
			return nil, fmt.Errorf("dataset_mixer: %s: fraction %v is not in [0, 1]", k, f)
		}
		out = append(out, data.Source{Path: k, Fraction: f})
	}
	return out, nil
}

// Setup loads what a run needs: the policy, the examples (training and
// evaluation) and, for the DPO-family losses, the reference log-probs. The
// warn function receives notes for the user (skipped records, defaults).
func Setup(ctx context.Context, o Options, warn func(string)) (*Trainer, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	policy, dtype, err := model.Load(o.Model)
	if err != nil {
		return nil, err
	}
	sd, _ := saveDType(o.SaveDType, dtype)
	enc, err := NewEncoder(o, policy.Config)
	if err != nil {
		return nil, err
	}
	format, _ := data.ParseFormat(o.DataFormat)
	skipped := 0
	onSkip := func(err error) {
		skipped++
		if skipped <= 5 {
			warn(fmt.Sprintf("skipping %v", err))
		}
	}
	srcs, err := o.Sources()
	if err != nil {
		return nil, err
	}
	lo := LoadOptions{Format: format, Encoder: enc, MaxLength: o.MaxLength, MaxPromptLength: o.MaxPromptLength,
		TruncationMode: o.TruncationMode, SkipInvalid: o.SkipInvalid, Strict: !o.SkipInvalid, OnSkip: onSkip}
	trainEx, err := LoadExamples(ctx, srcs, lo)
	if err != nil {
		return nil, err
	}
	var evalEx []Example
	if len(o.EvalData) > 0 {
		esrcs, err := data.ParseMixture(strings.Join(o.EvalData, ","))
		if err != nil {
			return nil, err
		}
		if evalEx, err = LoadExamples(ctx, esrcs, lo); err != nil {
			return nil, err
		}
	}
	if skipped > 5 {
		warn(fmt.Sprintf("skipped %d records in all", skipped))
	}
	t := &Trainer{Opts: o, Policy: policy, SaveDType: sd, ModelDir: o.Model, Train: trainEx, Eval: evalEx}
	if err := t.preflight(availableMemory()); err != nil {
		return nil, err
	}
	t.Pool = kernels.NewPool(o.Threads)
	prec, _ := o.Precision() // checked by Validate
	t.Pool.SetPrecision(prec)
	if prec == kernels.BF16 && !kernels.NativeBF16() {
		warn("bf16 compute is emulated here (no AMX-BF16 on this CPU or kernel path): the numbers are bf16's, the speed float32's or lower")
	}
	lc := pref.Config{LossType: o.LossType, Beta: o.Beta, Gamma: o.GammaBetaRatio}
	var ref [][2]float64
	if lc.NeedsReference() {
		if ref, err = t.referenceLogps(trainEx); err != nil {
			return nil, err
		}
	}
	t.Train, t.Ref = trainEx, ref
	if len(evalEx) == 0 && o.EvalSplitRatio > 0 {
		t.Train, t.Ref, evalEx, t.EvalRef = splitEval(trainEx, ref, o.EvalSplitRatio, o.Seed)
	} else if len(evalEx) > 0 && lc.NeedsReference() {
		if t.EvalRef, err = ReferenceLogps(o, policy, evalEx, t.Pool); err != nil {
			return nil, err
		}
	}
	t.Eval = evalEx
	return t, nil
}

// splitEval holds out a seeded fraction of the examples (with their
// reference values) for evaluation, as data.SplitEval does for pairs.
func splitEval(exs []Example, ref [][2]float64, ratio float64, seed int) (tr []Example, trRef [][2]float64, ev []Example, evRef [][2]float64) {
	held := data.HeldOut(len(exs), ratio, int64(seed))
	for i, e := range exs {
		if held != nil && held[i] {
			ev = append(ev, e)
			if ref != nil {
				evRef = append(evRef, ref[i])
			}
		} else {
			tr = append(tr, e)
			if ref != nil {
				trRef = append(trRef, ref[i])
			}
		}
	}
	return tr, trRef, ev, evRef
}

// refFromData returns the reference sums carried by the records (TRL's
// ref_chosen_logps and ref_rejected_logps columns) when every record has them.
func refFromData(exs []Example) [][2]float64 {
	out := make([][2]float64, len(exs))
	for i, e := range exs {
		if e.RefChosen == nil || e.RefRejected == nil {
			return nil
		}
		out[i] = [2]float64{*e.RefChosen, *e.RefRejected}
	}
	return out
}

// ReferenceLogps returns [chosen, rejected] reference log-prob sums for
// every example: from the records' own columns when all have them, from the
// --ref-logps file, or by running the reference model (o.RefModel, or the
// policy itself when that is empty) once over the examples.
func ReferenceLogps(o Options, policy *model.Model, exs []Example, pool *kernels.Pool) ([][2]float64, error) {
	if ref := refFromData(exs); ref != nil {
		return ref, nil
	}
	if o.RefLogps != "" {
		return readLogps(o.RefLogps, len(exs))
	}
	m := policy
	if o.RefModel != "" {
		r, _, err := model.Load(o.RefModel)
		if err != nil {
			return nil, fmt.Errorf("reference model: %w", err)
		}
		if r.Config.VocabSize != m.Config.VocabSize {
			return nil, fmt.Errorf("reference model %s has vocab_size %d, the policy %d: they must share a tokenizer", o.RefModel, r.Config.VocabSize, m.Config.VocabSize)
		}
		m = r
	}
	out := make([][2]float64, len(exs))
	ws := &model.Workspace{Pool: pool}
	err := Logps(m, ws, exs, o.PerDeviceEvalBatchSize, func(lo int, lp PairLogps) {
		for i := range lp.Chosen {
			out[lo+i] = [2]float64{lp.Chosen[i], lp.Rejected[i]}
		}
	})
	return out, err
}

// refCache is where a run keeps the reference log-probs of its training
// data, so that a resumed run reuses them instead of needing the initial
// policy again.
const refCache = "ref_logps.jsonl"

// referenceLogps is ReferenceLogps for the training data, computed once:
// a resumed run reads the values its first run cached in output_dir.
func (t *Trainer) referenceLogps(exs []Example) ([][2]float64, error) {
	o := t.Opts
	if refFromData(exs) != nil || o.RefLogps != "" {
		return ReferenceLogps(o, t.Policy, exs, t.Pool)
	}
	cache := filepath.Join(o.OutputDir, refCache)
	if o.ResumeFrom != "" {
		if ref, err := readLogps(cache, len(exs)); err == nil {
			return ref, nil
		}
	}
	ref, err := ReferenceLogps(o, t.Policy, exs, t.Pool)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(o.OutputDir, 0o755); err != nil {
		return nil, err
	}
	if err := atomicfile.Write(cache, func(w io.Writer) error { return writeLogps(w, ref) }); err != nil {
		return nil, err
	}
	return ref, nil
}

// LogpsLine is one line of `relupo logps` output and of --ref-logps files.
type LogpsLine struct {
	ChosenLogps    float64 `json:"chosen_logps"`
	RejectedLogps  float64 `json:"rejected_logps"`
	ChosenTokens   int     `json:"chosen_tokens"`
	RejectedTokens int     `json:"rejected_tokens"`
}

func writeLogps(w io.Writer, ref [][2]float64) error {
	enc := json.NewEncoder(w)
	for _, r := range ref {
		if err := enc.Encode(map[string]float64{"chosen_logps": r[0], "rejected_logps": r[1]}); err != nil {
			return err
		}
	}
	return nil
}

// readLogps reads a `relupo logps` file and checks it has one line per pair.
func readLogps(path string, want int) ([][2]float64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("ref logps: %w", err)
	}
	defer f.Close()
	var out [][2]float64
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	line := 0
	for sc.Scan() {
		line++
		if strings.TrimSpace(sc.Text()) == "" {
			continue
		}
		var l struct {
			C *float64 `json:"chosen_logps"`
			R *float64 `json:"rejected_logps"`
		}
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			return nil, fmt.Errorf("ref logps: %s line %d: %w", path, line, err)
		}
		if l.C == nil || l.R == nil {
			return nil, fmt.Errorf("ref logps: %s line %d: needs chosen_logps and rejected_logps", path, line)
		}
		out = append(out, [2]float64{*l.C, *l.R})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("ref logps: %s: %w", path, err)
	}
	if len(out) != want {
		return nil, fmt.Errorf("ref logps: %s has %d lines, the training data %d pairs: it must be 'relupo logps' output for the same data", path, len(out), want)
	}
	return out, nil
}
