// Package train is relupo's training loop, with the semantics of the
// Hugging Face Trainer as the SimPO/RePO scripts use it: AdamW with a
// learning-rate schedule, gradient accumulation, global-norm clipping,
// seeded shuffling per epoch, periodic logging, evaluation and checkpoints,
// exact resume, and a final save that transformers loads unchanged.
//
// The pieces, top down:
//
//   - [Options] is the user's surface (flags and YAML keys, TRL names);
//     [Options.Config] validates it once into the typed [Config].
//   - [Setup] loads the policy and the examples (data.Load: every record
//     checked before the first step) and attaches reference log-probs.
//   - [Trainer.Run] batches the examples, runs [Engine.Step] once per
//     optimizer step and keeps the books (schedule, epochs, metrics,
//     evaluation, checkpoints, resume).
//   - [Engine.Step] is one optimizer step, read top to bottom: zero the
//     gradients, forward, loss (package pref), backward per micro-batch,
//     clip, AdamW.
//   - [Evaluate], [Logps] and [Stats] are the library side of the
//     forward-only commands.
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

	"github.com/relupo/relupo/data"
	"github.com/relupo/relupo/dist"
	"github.com/relupo/relupo/internal/atomicfile"
	"github.com/relupo/relupo/model"
	"github.com/relupo/relupo/optim"
	"github.com/relupo/relupo/pref"
	"github.com/relupo/relupo/safetensors"
)

// ErrInterrupted is returned (wrapped) when the run stopped on a signal
// after writing a checkpoint to resume from.
var ErrInterrupted = errors.New("training interrupted")

// Trainer runs one training job: it batches the examples, calls
// Engine.Step for each optimizer step, and keeps the books (the learning-rate
// schedule, epochs, metric windows, evaluation, checkpoints, resume). Fill
// the exported fields (or use Setup), then call Run.
type Trainer struct {
	Config Config
	Policy *model.Model
	// Train and Eval are the examples, each carrying its reference
	// log-probs when the loss needs them; Eval may be empty.
	Train, Eval []data.Example
	// SaveDType is the dtype of the final model's weights; empty resolves
	// Config.Output.SaveDType against float32.
	SaveDType safetensors.DType
	// Progress receives progress updates; nil shows nothing.
	Progress Progress
	// Comm joins the data-parallel ranks of the job (mpirun); nil is one
	// process. Every rank runs the same Trainer; rank 0 alone writes.
	Comm dist.Comm
	// Record is the run's options and data and model fingerprints, kept in
	// every checkpoint; a resume refuses a checkpoint of another run. Nil
	// (a Trainer not made by Setup) records nothing.
	Record *Record

	outputChecked bool       // Setup applied the output folder's rule
	dataFiles     []FileInfo // the training files' sizes and hashes, read once by Setup
	unlock        func()     // drops the output folder's lock (see lockOutput)

	engine  *Engine
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
	microPerEpoch   int // ceil(examples per rank / batch)
	updatesPerEpoch int // ceil(micro / accumulation): the last step of an epoch takes the remainder
	maxSteps        int
	warmup          int
}

// State is where a run stands; it is saved in every checkpoint's
// trainer_state.json and is all that a resume needs besides the weights and
// the optimizer moments. The file has the Hugging Face Trainer's layout
// (see State.MarshalJSON); the fields below with JSON names are relupo's
// own, kept in its stateful_callbacks.
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
	// Run is the Trainer's Record.
	Run *Record `json:"run,omitempty"`
	// WorldSize, BatchSize and Accumulation are the run's ranks,
	// per-device batch and accumulation (0 in checkpoints written before
	// they were recorded: one rank, this run's batch).
	WorldSize    int `json:"world_size,omitempty"`
	BatchSize    int `json:"per_device_train_batch_size,omitempty"`
	Accumulation int `json:"gradient_accumulation_steps,omitempty"`

	// LogHistory is every row logged so far, training and evaluation, as
	// the Hugging Face Trainer keeps it.
	LogHistory []Row `json:"-"`
	// EpochFloat is the fractional epoch reached (HF's epoch).
	EpochFloat float64 `json:"-"`
	// HF echoes the run's logging, evaluation and saving settings.
	HF hfSettings `json:"-"`
}

func (t *Trainer) makePlan() (plan, error) {
	o := t.Config.Loop
	n := len(t.Train)
	if n == 0 {
		return plan{}, errors.New("train: the training data has no pairs")
	}
	var p plan
	perRank := (n + t.ranks() - 1) / t.ranks() // DistributedSampler's num_samples
	p.microPerEpoch = (perRank + o.BatchSize - 1) / o.BatchSize
	p.updatesPerEpoch = (p.microPerEpoch + o.Accumulation - 1) / o.Accumulation
	if o.MaxSteps > 0 {
		p.maxSteps = o.MaxSteps
	} else {
		p.maxSteps = int(math.Ceil(o.Epochs * float64(p.updatesPerEpoch)))
	}
	if p.maxSteps < 1 {
		return plan{}, fmt.Errorf("train: the run has no steps (num_train_epochs %v, max_steps %d)", o.Epochs, o.MaxSteps)
	}
	w, err := optim.WarmupSteps(o.WarmupSteps, o.WarmupRatio, p.maxSteps)
	if err != nil {
		return plan{}, fmt.Errorf("train: %w", err)
	}
	p.warmup = w
	return p, nil
}

// checkAdapter checks that the policy carries an adapter exactly when the
// run trains LoRA (Setup attaches it; a Trainer filled by hand must too).
func (t *Trainer) checkAdapter() error {
	switch on := t.Config.PEFT.Enabled; {
	case on && t.Policy.LoRA == nil:
		return errors.New("train: use_peft is set, but the policy has no LoRA adapter (Setup attaches one)")
	case !on && t.Policy.LoRA != nil:
		return errors.New("train: the policy has a LoRA adapter, but use_peft is not set")
	}
	return nil
}

// lossAt is the loss of step (0-based), with the dynamic γ schedule.
func (t *Trainer) lossAt(step int) pref.Config { return t.Config.Loss.At(step, t.plan.maxSteps) }

// ranks is the number of ranks of the job.
func (t *Trainer) ranks() int {
	if t.Comm == nil {
		return 1
	}
	return t.Comm.Size()
}

// writer reports whether this rank writes files (rank 0).
func (t *Trainer) writer() bool { return t.Comm == nil || t.Comm.Rank() == 0 }

// rankOrder is this rank's share of an epoch's order, as PyTorch's
// DistributedSampler (drop_last false) splits it: the order is padded with
// its own first elements to a multiple of the ranks, and rank r takes
// every N-th element from r. So an uneven last batch repeats a few pairs
// of the epoch's beginning on some ranks, and every rank runs the same
// number of micro-batches.
func rankOrder(order []int, rank, ranks int) []int {
	if ranks == 1 {
		return order
	}
	total := (len(order) + ranks - 1) / ranks * ranks
	out := make([]int, 0, total/ranks)
	for i := rank; i < total; i += ranks {
		out = append(out, order[i%len(order)])
	}
	return out
}

// epochOrder is the seeded permutation of the examples for an epoch. It
// depends only on (seed, epoch), so a resumed run sees the same order.
func epochOrder(seed, epoch, n int) []int {
	r := rand.New(rand.NewPCG(uint64(seed), uint64(epoch)))
	return r.Perm(n)
}

// Summary is what a finished run reports.
type Summary struct {
	Steps int `json:"steps"`
	// NonfiniteSkipped counts steps skipped with skip_nonfinite_steps.
	NonfiniteSkipped int     `json:"nonfinite_skipped,omitempty"`
	TrainLoss        float64 `json:"train_loss"`
	Seconds          float64 `json:"seconds"`
	OutputDir        string  `json:"output_dir"`
	Eval             Row     `json:"eval,omitempty"`
	// Pairs is the number of training pairs, and Truncated how many of
	// them truncation (max_length, max_prompt_length) cut.
	Pairs     int `json:"pairs"`
	Truncated int `json:"truncated_pairs"`
}

// TruncatedPairs counts the examples whose prompt or responses truncation
// cut (see data.Example.Untruncated).
func TruncatedPairs(exs []data.Example) int {
	n := 0
	for _, e := range exs {
		u := e.Untruncated
		if len(e.Prompt) < u[0] || len(e.Chosen) < u[1] || len(e.Rejected) < u[2] {
			n++
		}
	}
	return n
}

// Run trains until max_steps, then writes the final model. When ctx is
// cancelled it finishes the current step, writes a checkpoint and returns
// an error wrapping ErrInterrupted.
func (t *Trainer) Run(ctx context.Context) (Summary, error) {
	start := time.Now()
	if err := t.lockOutput(); err != nil {
		return Summary{}, err
	}
	defer t.unlockOutput()
	if err := t.prepare(); err != nil {
		return Summary{}, err
	}
	if err := t.checkAdapter(); err != nil {
		return Summary{}, err
	}
	t.engine = NewEngine(t.Policy, t.Config.Compute)
	t.engine.Optimizer = t.Config.Loop.adamW()
	if err := t.engine.ensureGrads(); err != nil { // only the adapter's under LoRA
		return Summary{}, err
	}
	t.engine.Comm, t.engine.ZeRO1 = t.Comm, t.Config.Loop.ZeroStage == 1
	defer t.engine.Close()
	if t.Config.Loop.ResumeFrom != "" {
		if err := t.resume(); err != nil {
			return Summary{}, err
		}
		t.state.HF = t.hfSettings() // a checkpoint from before trainer_state.json had HF's layout has none
	} else if err := os.Remove(t.metrics.path); t.writer() && err != nil && !os.IsNotExist(err) {
		return Summary{}, fmt.Errorf("train: %w", err)
	}
	if t.Progress != nil {
		t.Progress.Start(t.plan.maxSteps, t.state.GlobalStep)
		defer t.Progress.Finish()
	}
	var lossTotal float64
	stepsRun := 0
	for t.state.GlobalStep < t.plan.maxSteps {
		loss, skipped, err := t.step()
		if err != nil {
			return Summary{}, err
		}
		if !skipped {
			lossTotal += loss
			stepsRun++
		}
		if err := t.afterStep(ctx); err != nil {
			return Summary{}, err
		}
	}
	sum := Summary{Steps: t.state.GlobalStep, OutputDir: t.Config.Output.Dir, NonfiniteSkipped: t.state.NonfiniteSkipped,
		Pairs: len(t.Train), Truncated: TruncatedPairs(t.Train)}
	if stepsRun > 0 {
		sum.TrainLoss = lossTotal / float64(stepsRun)
	}
	if len(t.Eval) > 0 {
		var err error
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

// prepare plans the run, checks that it can run and readies the output
// folder.
func (t *Trainer) prepare() error {
	c := t.Config
	var err error
	if t.plan, err = t.makePlan(); err != nil {
		return err
	}
	if err := t.lossAt(0).Validate(); err != nil {
		return err
	}
	if t.lossAt(0).NeedsReference() {
		for _, set := range [][]data.Example{t.Train, t.Eval} {
			for _, e := range set {
				if !e.HasRef() {
					return fmt.Errorf("train: %s: the loss needs reference log-probs for every example", e.Source)
				}
			}
		}
	}
	if t.sched, err = optim.Schedule(c.Loop.Scheduler, c.Loop.LearningRate, t.plan.warmup, t.plan.maxSteps); err != nil {
		return fmt.Errorf("train: %w", err)
	}
	if t.SaveDType == "" {
		if t.SaveDType, err = c.Output.dtype(""); err != nil {
			return fmt.Errorf("train: %w", err)
		}
	}
	if t.writer() {
		if !t.outputChecked {
			if err := checkOutput(c.Output.Dir, c.Output.Overwrite, c.Loop.ResumeFrom != ""); err != nil {
				return err
			}
		}
		if err := os.MkdirAll(c.Output.Dir, 0o755); err != nil {
			return fmt.Errorf("train: %w", err)
		}
		if err := atomicfile.CleanLeftovers(c.Output.Dir, "checkpoint-"); err != nil {
			return fmt.Errorf("train: %w", err)
		}
	}
	t.metrics = metricsLog{path: filepath.Join(c.Output.Dir, "metrics.jsonl")}
	t.state = State{NumExamples: len(t.Train), MaxSteps: t.plan.maxSteps, LossType: t.lossAt(0).Type(),
		WorldSize: t.ranks(), BatchSize: c.Loop.BatchSize, Accumulation: c.Loop.Accumulation, Run: t.Record, HF: t.hfSettings()}
	return nil
}

// afterStep logs, evaluates, saves and honours an interruption, as the
// step just finished asks.
func (t *Trainer) afterStep(ctx context.Context) error {
	o, step, last := t.Config.Loop, t.state.GlobalStep, t.plan.maxSteps
	if o.LoggingSteps > 0 && step%o.LoggingSteps == 0 || step == last {
		if err := t.log(); err != nil {
			return err
		}
	} else if t.Progress != nil {
		t.Progress.Step(step, nil)
	}
	if len(t.Eval) > 0 && o.EvalSteps > 0 && step%o.EvalSteps == 0 && step != last {
		if _, err := t.evaluate(); err != nil {
			return err
		}
	}
	if o.SaveSteps > 0 && step%o.SaveSteps == 0 && step != last {
		if err := t.saveCheckpoint(); err != nil {
			return err
		}
	}
	stop, err := t.anyRank(ctx.Err() != nil)
	if err != nil || !stop || step == last {
		return err
	}
	dir := checkpointDir(t.Config.Output.Dir, step)
	if !(o.SaveSteps > 0 && step%o.SaveSteps == 0) { // not saved just above
		if err := t.saveCheckpoint(); err != nil {
			return err
		}
	}
	return fmt.Errorf("%w at step %d of %d; checkpoint written to %s; resume with --resume-from-checkpoint %s", ErrInterrupted, step, last, dir, dir)
}

// step gathers the next optimizer step's micro-batches from the epoch's
// order (gradient_accumulation_steps of them, fewer at the end of an
// epoch), runs Engine.Step and keeps the books. A non-finite value stops
// the run with an error naming the step and its records, or, with
// skip_nonfinite_steps, skips the update (the step and its data still
// count) and reports skipped = true.
func (t *Trainer) step() (loss float64, skipped bool, err error) {
	o, st := t.Config.Loop, &t.state
	start := time.Now()
	order := epochOrder(o.Seed, st.Epoch, len(t.Train))
	if t.Comm != nil {
		order = rankOrder(order, t.Comm.Rank(), t.Comm.Size())
	}
	group := min(o.Accumulation, t.plan.microPerEpoch-st.Micro)
	// The last step of an epoch may have fewer micro-batches than
	// gradient_accumulation_steps; each is divided by how many there
	// really are, as current transformers does
	// (current_gradient_accumulation_steps).
	rank := 0
	if t.Comm != nil {
		rank = t.Comm.Rank()
	}
	b := Batch{Accumulation: group, SharePrompt: o.SharePrompt, DropoutSeed: StepDropoutSeed(o.Seed, st.GlobalStep, rank)}
	for j := range group {
		lo := (st.Micro + j) * o.BatchSize
		hi := min(lo+o.BatchSize, len(order))
		mb := make([]data.Example, 0, hi-lo)
		for _, idx := range order[lo:hi] {
			mb = append(mb, t.Train[idx])
		}
		b.Micro = append(b.Micro, mb)
	}
	r, err := t.engine.Step(b, t.lossAt(st.GlobalStep), t.sched(st.GlobalStep), o.MaxGradNorm)
	var nf *NonfiniteError
	switch {
	case errors.As(err, &nf) && o.SkipNonfinite:
		st.NonfiniteSkipped++
		skipped = true
	case nf != nil:
		return 0, false, fmt.Errorf("train: step %d: %w; stopping (the last checkpoint is intact; --skip-nonfinite-steps skips such steps instead)", st.GlobalStep+1, err)
	case err != nil:
		return 0, false, fmt.Errorf("train: step %d: %w", st.GlobalStep+1, err)
	}
	if t.ranks() > 1 {
		if r, err = t.globalResult(r, skipped); err != nil {
			return 0, false, fmt.Errorf("train: step %d: %w", st.GlobalStep+1, err)
		}
	}
	w := &st.Window
	for _, m := range r.Metrics {
		w.addMicro(m)
	}
	w.GradNorm = r.GradNorm // 0 when a non-finite value stopped the step before clipping
	w.LossSum += r.Loss
	w.Steps++
	w.Tokens += r.Tokens
	w.TokensSaved += r.TokensSaved
	st.NumTokens += r.Tokens
	st.GlobalStep++
	st.Micro += group
	if st.Micro >= t.plan.microPerEpoch {
		st.Epoch++
		st.Micro = 0
	}
	st.EpochFloat = t.epochFloat()
	w.Seconds += time.Since(start).Seconds()
	return r.Loss, skipped, nil
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
	if t.Config.Loss.Dynamic() {
		r["gamma"] = t.lossAt(t.state.GlobalStep - 1).Gamma
	}
	t.state.LogHistory = append(t.state.LogHistory, r)
	t.state.Window = window{}
	if t.Progress != nil {
		t.Progress.Step(t.state.GlobalStep, r)
	}
	if !t.writer() {
		return nil
	}
	return t.metrics.write(r)
}

// evaluate computes the loss and metrics on the evaluation set, averaged
// over evaluation batches, and logs them with the "eval_" prefix.
func (t *Trainer) evaluate() (Row, error) {
	r, err := t.engine.Evaluate(t.Eval, t.lossAt(max(t.state.GlobalStep-1, 0)), t.Config.Loop.EvalBatchSize)
	if err != nil {
		return nil, err
	}
	out := Row{"step": float64(t.state.GlobalStep), "epoch": t.epochFloat()}
	for k, v := range r {
		out["eval_"+k] = v
	}
	t.state.LogHistory = append(t.state.LogHistory, out)
	if t.Progress != nil {
		t.Progress.Log(out)
	}
	if !t.writer() {
		return out, nil
	}
	return out, t.metrics.write(out)
}
