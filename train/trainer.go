// Package train is relupo's training loop, with the semantics of the
// Hugging Face Trainer as the SimPO/RePO scripts use it: AdamW with a
// learning-rate schedule, gradient accumulation, global-norm clipping,
// seeded shuffling per epoch, periodic logging, evaluation and checkpoints,
// exact resume, and a final save that transformers loads unchanged.
package train

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"time"

	"github.com/relupo/relupo/kernels"
	"github.com/relupo/relupo/model"
	"github.com/relupo/relupo/optim"
	"github.com/relupo/relupo/pref"
	"github.com/relupo/relupo/safetensors"
)

// ErrInterrupted is returned (wrapped) when the run stopped on a signal
// after writing a checkpoint to resume from.
var ErrInterrupted = errors.New("training interrupted")

// Trainer runs one training job. Fill the exported fields, then call Run.
type Trainer struct {
	Opts   Options
	Policy *model.Model
	// Train and Eval are the tokenized examples; Eval may be empty.
	Train, Eval []Example
	// Ref and EvalRef are the reference log-prob sums [chosen, rejected]
	// of each example, required when the loss needs a reference.
	Ref, EvalRef [][2]float64
	// SaveDType is the dtype of the final model's weights.
	SaveDType safetensors.DType
	// ModelDir is the input model folder, whose tokenizer files are copied
	// into the output.
	ModelDir string
	Pool     *kernels.Pool
	// Progress receives progress updates; nil shows nothing.
	Progress Progress

	ws      *model.Workspace
	grads   *model.Params
	opt     *optim.AdamW
	sched   func(int) float64
	plan    plan
	state   State
	metrics metricsLog
}

// Progress is told about each optimizer step and each log event.
type Progress interface {
	Start(total, done int)
	Step(step int, row Row)
	Log(row Row)
	Finish()
}

// plan is the shape of the run, derived as the Hugging Face Trainer does.
type plan struct {
	microPerEpoch   int // ceil(examples / batch)
	updatesPerEpoch int // ceil(micro / accumulation): the last step of an epoch takes the remainder
	maxSteps        int
	warmup          int
}

// State is where a run stands; it is saved in every checkpoint's
// trainer_state.json and is all that a resume needs besides the weights and
// the optimizer moments.
type State struct {
	GlobalStep  int    `json:"global_step"`
	Epoch       int    `json:"epoch"`       // current epoch
	Micro       int    `json:"micro_batch"` // next micro-batch of the epoch
	Window      window `json:"log_window"`  // metrics accumulated since the last log
	NumExamples int    `json:"num_examples"`
	MaxSteps    int    `json:"max_steps"`
	LossType    string `json:"loss_type"`
	// NonfiniteSkipped counts the steps skipped for a non-finite value.
	NonfiniteSkipped int `json:"nonfinite_skipped"`
	// NumTokens counts the tokens processed so far (TRL's num_tokens).
	NumTokens int64 `json:"num_tokens"`
}

func (t *Trainer) makePlan() (plan, error) {
	o := t.Opts
	n := len(t.Train)
	if n == 0 {
		return plan{}, errors.New("train: the training data has no pairs")
	}
	var p plan
	p.microPerEpoch = (n + o.PerDeviceTrainBatchSize - 1) / o.PerDeviceTrainBatchSize
	p.updatesPerEpoch = (p.microPerEpoch + o.GradientAccumulationSteps - 1) / o.GradientAccumulationSteps
	if o.MaxSteps > 0 {
		p.maxSteps = o.MaxSteps
	} else {
		p.maxSteps = int(math.Ceil(o.NumTrainEpochs * float64(p.updatesPerEpoch)))
	}
	if p.maxSteps < 1 {
		return plan{}, fmt.Errorf("train: the run has no steps (num_train_epochs %v, max_steps %d)", o.NumTrainEpochs, o.MaxSteps)
	}
	w, err := optim.WarmupSteps(o.WarmupSteps, o.WarmupRatio, p.maxSteps)
	if err != nil {
		return plan{}, fmt.Errorf("train: %w", err)
	}
	p.warmup = w
	return p, nil
}

// lossConfig is the pref configuration at a step, with the dynamic γ
// schedule: γ moves linearly from gamma_beta_ratio at the first step to
// gamma_end at the last.
func (t *Trainer) lossConfig(step int) pref.Config {
	o := t.Opts
	c := pref.Config{LossType: o.LossType, Beta: o.Beta, Gamma: o.GammaBetaRatio, LabelSmoothing: o.LabelSmoothing}
	if !math.IsNaN(o.GammaEnd) && t.plan.maxSteps > 1 {
		f := float64(step) / float64(t.plan.maxSteps-1)
		c.Gamma = o.GammaBetaRatio + (o.GammaEnd-o.GammaBetaRatio)*min(f, 1)
	}
	return c
}

// epochOrder is the seeded permutation of the examples for an epoch. It
// depends only on (seed, epoch), so a resumed run sees the same order.
func epochOrder(seed, epoch, n int) []int {
	r := rand.New(rand.NewPCG(uint64(seed), uint64(epoch)))
	return r.Perm(n)
}

func (t *Trainer) params() []optim.Param { return OptimParams(t.Policy.Params, t.grads) }

// Summary is what a finished run reports.
type Summary struct {
	Steps int `json:"steps"`
	// NonfiniteSkipped counts steps skipped with skip_nonfinite_steps.
	NonfiniteSkipped int     `json:"nonfinite_skipped,omitempty"`
	TrainLoss        float64 `json:"train_loss"`
	Seconds          float64 `json:"seconds"`
	OutputDir        string  `json:"output_dir"`
	Eval             Row     `json:"eval,omitempty"`
}

// Run trains until max_steps, then writes the final model. When ctx is
// cancelled it finishes the current step, writes a checkpoint and returns
// an error wrapping ErrInterrupted.
func (t *Trainer) Run(ctx context.Context) (Summary, error) {
	o := t.Opts
	start := time.Now()
	var err error
	if t.plan, err = t.makePlan(); err != nil {
		return Summary{}, err
	}
	if err := t.lossConfig(0).Validate(); err != nil {
		return Summary{}, err
	}
	if t.lossConfig(0).NeedsReference() && (len(t.Ref) != len(t.Train) || len(t.EvalRef) != len(t.Eval)) {
		return Summary{}, errors.New("train: the loss needs reference log-probs for every example")
	}
	if t.sched, err = optim.Schedule(o.LRSchedulerType, o.LearningRate, t.plan.warmup, t.plan.maxSteps); err != nil {
		return Summary{}, fmt.Errorf("train: %w", err)
	}
	if err := os.MkdirAll(o.OutputDir, 0o755); err != nil {
		return Summary{}, fmt.Errorf("train: %w", err)
	}
	if err := cleanLeftovers(o.OutputDir); err != nil {
		return Summary{}, fmt.Errorf("train: %w", err)
	}
	t.ws = &model.Workspace{Pool: t.Pool, KeepLogits: true}
	t.grads = model.NewParams(t.Policy.Config)
	t.opt = &optim.AdamW{Beta1: o.AdamBeta1, Beta2: o.AdamBeta2, Eps: o.AdamEpsilon, WeightDecay: o.WeightDecay}
	t.metrics = metricsLog{path: filepath.Join(o.OutputDir, "metrics.jsonl")}
	t.state = State{NumExamples: len(t.Train), MaxSteps: t.plan.maxSteps, LossType: t.lossConfig(0).LossType}
	if o.ResumeFrom != "" {
		if err := t.resume(); err != nil {
			return Summary{}, err
		}
	} else if err := os.Remove(t.metrics.path); err != nil && !os.IsNotExist(err) {
		return Summary{}, fmt.Errorf("train: %w", err)
	}

	if t.Progress != nil {
		t.Progress.Start(t.plan.maxSteps, t.state.GlobalStep)
		defer t.Progress.Finish()
	}
	var lossTotal float64
	stepsRun := 0
	for t.state.GlobalStep < t.plan.maxSteps {
		stepStart := time.Now()
		loss, tokens, skipped, err := t.step()
		if err != nil {
			return Summary{}, err
		}
		if !skipped {
			lossTotal += loss
			stepsRun++
		}
		w := &t.state.Window
		w.LossSum += loss
		w.Steps++
		w.Tokens += tokens
		t.state.NumTokens += tokens
		w.Seconds += time.Since(stepStart).Seconds()
		step := t.state.GlobalStep
		if o.LoggingSteps > 0 && step%o.LoggingSteps == 0 || step == t.plan.maxSteps {
			if err := t.log(); err != nil {
				return Summary{}, err
			}
		} else if t.Progress != nil {
			t.Progress.Step(step, nil)
		}
		if len(t.Eval) > 0 && o.EvalSteps > 0 && step%o.EvalSteps == 0 && step != t.plan.maxSteps {
			if _, err := t.evaluate(); err != nil {
				return Summary{}, err
			}
		}
		if o.SaveSteps > 0 && step%o.SaveSteps == 0 && step != t.plan.maxSteps {
			if err := t.saveCheckpoint(); err != nil {
				return Summary{}, err
			}
		}
		if ctx.Err() != nil && step != t.plan.maxSteps {
			dir := checkpointDir(o.OutputDir, step)
			if _, err := os.Stat(dir); err != nil {
				if err := t.saveCheckpoint(); err != nil {
					return Summary{}, err
				}
			}
			return Summary{}, fmt.Errorf("%w at step %d of %d; checkpoint written to %s; resume with --resume-from-checkpoint %s", ErrInterrupted, step, t.plan.maxSteps, dir, dir)
		}
	}
	sum := Summary{Steps: t.state.GlobalStep, OutputDir: o.OutputDir, NonfiniteSkipped: t.state.NonfiniteSkipped}
	if stepsRun > 0 {
		sum.TrainLoss = lossTotal / float64(stepsRun)
	}
	if len(t.Eval) > 0 {
		if sum.Eval, err = t.evaluate(); err != nil {
			return Summary{}, err
		}
	}
	if err := t.saveFinal(sum); err != nil {
		return Summary{}, err
	}
	sum.Seconds = time.Since(start).Seconds()
	return sum, nil
}

// step runs one optimizer step: up to gradient_accumulation_steps
// micro-batches (fewer at the end of an epoch), each contributing its mean
// loss divided by gradient_accumulation_steps, then clipping and AdamW.
// A non-finite log-prob, loss or gradient norm stops the run with an error
// naming the step and its records, or, with skip_nonfinite_steps, skips the
// update (the step and its data still count) and reports skipped = true.
func (t *Trainer) step() (loss float64, tokens int64, skipped bool, err error) {
	o, st := t.Opts, &t.state
	g := o.GradientAccumulationSteps
	order := epochOrder(o.Seed, st.Epoch, len(t.Train))
	group := min(g, t.plan.microPerEpoch-st.Micro)
	lc := t.lossConfig(st.GlobalStep)
	t.grads.Zero()
	var records []Example
	var metrics []map[string]float64
	nonfinite := ""
	for j := 0; j < group && nonfinite == ""; j++ {
		mb := st.Micro + j
		lo := mb * o.PerDeviceTrainBatchSize
		hi := min(lo+o.PerDeviceTrainBatchSize, len(t.Train))
		exs := make([]Example, 0, hi-lo)
		var ref [][2]float64
		for _, idx := range order[lo:hi] {
			exs = append(exs, t.Train[idx])
			if t.Ref != nil {
				ref = append(ref, t.Ref[idx])
			}
		}
		records = append(records, exs...)
		pk, lp, err := ForwardPairs(t.Policy, t.ws, exs, o.SharePrompt)
		if err != nil {
			return 0, 0, false, fmt.Errorf("train: step %d: %w", st.GlobalStep+1, err)
		}
		if !allFinite(lp.Chosen) || !allFinite(lp.Rejected) {
			nonfinite = "log-probs"
			break
		}
		res, err := pref.Compute(lc, Inputs(lp, ref))
		if err != nil {
			return 0, 0, false, fmt.Errorf("train: step %d, records %s: %w", st.GlobalStep+1, sources(exs), err)
		}
		mbLoss := res.Loss
		dChosen := res.DChosen
		if o.SFTWeight != 0 {
			// SimPO/RePO sft_weight: + w · token-mean cross-entropy of the chosen responses.
			var s, n float64
			for i := range lp.Chosen {
				s += lp.Chosen[i]
				n += lp.ChosenTokens[i]
			}
			sft := -s / n
			mbLoss += o.SFTWeight * sft
			res.Metrics["sft_loss"] = sft
			dChosen = append([]float64(nil), dChosen...)
			for i := range dChosen {
				dChosen[i] -= o.SFTWeight / n
			}
		}
		if math.IsNaN(mbLoss) || math.IsInf(mbLoss, 0) {
			nonfinite = fmt.Sprintf("loss (%v)", mbLoss)
			break
		}
		if err := t.Policy.Backward(t.ws, pk.Batch, pk.DSums(dChosen, res.DRejected, float64(g)), t.grads); err != nil {
			return 0, 0, false, err
		}
		loss += mbLoss / float64(g)
		tokens += int64(len(pk.Batch.Tokens))
		st.Window.TokensSaved += int64(paddedSize(exs) - len(pk.Batch.Tokens))
		metrics = append(metrics, res.Metrics)
	}
	var norm float64
	if nonfinite == "" {
		norm = optim.ClipGradNorm(gradSlices(t.grads), o.MaxGradNorm)
		if math.IsNaN(norm) || math.IsInf(norm, 0) {
			nonfinite = fmt.Sprintf("gradient norm (%v)", norm)
		}
	}
	if nonfinite != "" {
		if !o.SkipNonfiniteSteps {
			return 0, 0, false, fmt.Errorf("train: step %d: non-finite %s on records %s; stopping (the last checkpoint is intact; --skip-nonfinite-steps skips such steps instead)", st.GlobalStep+1, nonfinite, sources(records))
		}
		st.NonfiniteSkipped++
		t.grads.Zero()
	} else if err := t.opt.Step(t.params(), t.sched(st.GlobalStep)); err != nil {
		return 0, 0, false, fmt.Errorf("train: step %d: %w", st.GlobalStep+1, err)
	}
	for _, m := range metrics {
		st.Window.addMicro(m)
	}
	st.Window.GradNorm = norm
	st.GlobalStep++
	st.Micro += group
	if st.Micro >= t.plan.microPerEpoch {
		st.Epoch++
		st.Micro = 0
	}
	return loss, tokens, nonfinite != "", nil
}

// paddedSize is how many tokens the pairs would occupy in TRL's
// concatenated layout: prompt+chosen and prompt+rejected rows, padded to the
// longest. relupo computes none of that padding (and, sharing prompts, runs
// each prompt once).
func paddedSize(exs []Example) int {
	longest := 0
	for _, e := range exs {
		longest = max(longest, len(e.Prompt)+max(len(e.Chosen), len(e.Rejected)))
	}
	return 2 * len(exs) * longest
}

func allFinite(xs []float64) bool {
	for _, x := range xs {
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return false
		}
	}
	return true
}

func gradSlices(p *model.Params) [][]float32 {
	var out [][]float32
	for _, t := range p.Tensors() {
		out = append(out, t.Data)
	}
	return out
}

func sources(exs []Example) string {
	s := ""
	for i, e := range exs {
		if i > 0 {
			s += ", "
		}
		s += e.Source
	}
	return s
}

// epochFloat is the fractional epoch, as the Hugging Face Trainer logs it.
func (t *Trainer) epochFloat() float64 {
	return float64(t.state.Epoch) + float64(t.state.Micro)/float64(t.plan.microPerEpoch)
}

func (t *Trainer) log() error {
	r := t.state.Window.row()
	r["step"] = float64(t.state.GlobalStep)
	r["epoch"] = t.epochFloat()
	r["num_tokens"] = float64(t.state.NumTokens)
	r["learning_rate"] = t.sched(t.state.GlobalStep) // the rate of the next step, as HF logs it
	if t.state.NonfiniteSkipped > 0 {
		r["nonfinite_skipped"] = float64(t.state.NonfiniteSkipped)
	}
	if !math.IsNaN(t.Opts.GammaEnd) {
		r["gamma"] = t.lossConfig(t.state.GlobalStep - 1).Gamma
	}
	t.state.Window = window{}
	if t.Progress != nil {
		t.Progress.Step(t.state.GlobalStep, r)
	}
	return t.metrics.write(r)
}

// evaluate computes the loss and metrics on the evaluation set, averaged
// over evaluation batches, and logs them with the "eval_" prefix.
func (t *Trainer) evaluate() (Row, error) {
	r, err := Evaluate(t.Policy, t.ws, t.Eval, t.EvalRef, t.lossConfig(max(t.state.GlobalStep-1, 0)), t.Opts.PerDeviceEvalBatchSize)
	if err != nil {
		return nil, err
	}
	out := Row{"step": float64(t.state.GlobalStep), "epoch": t.epochFloat()}
	for k, v := range r {
		out["eval_"+k] = v
	}
	if t.Progress != nil {
		t.Progress.Log(out)
	}
	return out, t.metrics.write(out)
}

// Evaluate runs the model over examples in batches and returns the mean of
// each batch's loss and metrics (the SimPO/RePO trainer's evaluation), plus
// the mean label counts of the responses.
func Evaluate(m *model.Model, ws *model.Workspace, exs []Example, ref [][2]float64, lc pref.Config, batchSize int) (Row, error) {
	sums := Row{}
	batches := 0
	var lenC, lenR float64
	var firstErr error
	err := Logps(m, ws, exs, batchSize, func(lo int, lp PairLogps) {
		if firstErr != nil {
			return
		}
		var r [][2]float64
		if ref != nil {
			r = ref[lo : lo+len(lp.Chosen)]
		}
		res, err := pref.Compute(lc, Inputs(lp, r))
		if err != nil {
			firstErr = fmt.Errorf("records %s: %w", sources(exs[lo:lo+len(lp.Chosen)]), err)
			return
		}
		sums["loss"] += res.Loss
		for k, v := range res.Metrics {
			sums[k] += v
		}
		for i := range lp.Chosen {
			lenC += lp.ChosenTokens[i]
			lenR += lp.RejectedTokens[i]
		}
		batches++
	})
	if err == nil {
		err = firstErr
	}
	if err != nil {
		return nil, fmt.Errorf("eval: %w", err)
	}
	for k := range sums {
		sums[k] /= float64(max(batches, 1))
	}
	sums["lengths/chosen"] = lenC / float64(max(len(exs), 1))
	sums["lengths/rejected"] = lenR / float64(max(len(exs), 1))
	return sums, nil
}
