package train

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"

	"github.com/relupo/relupo/data"
	"github.com/relupo/relupo/dist"
	"github.com/relupo/relupo/kernels"
	"github.com/relupo/relupo/model"
	"github.com/relupo/relupo/peft"
	"github.com/relupo/relupo/safetensors"
)

// skips reports the records a load skipped: the first few one by one, then
// their number.
type skips struct {
	warn func(string)
	n    int
}

func (s *skips) report(err error) {
	s.n++
	if s.n <= 5 && s.warn != nil {
		s.warn(fmt.Sprintf("skipping %v", err))
	}
}

func (s *skips) done() {
	if s.n > 5 && s.warn != nil {
		s.warn(fmt.Sprintf("skipped %d records in all", s.n))
	}
}

// Load reads srcs as the training run would for the model in modelDir with
// config mc: its tokenizer and chat template, c's format and truncation,
// and a check of every example against the model's limits, so that no
// example is refused later. Skipped records go to warn.
func (c DataConfig) Load(ctx context.Context, srcs []data.Source, modelDir string, mc model.Config, warn func(string)) ([]data.Example, error) {
	s := &skips{warn: warn}
	lc := c.load(srcs, modelDir, limits(mc))
	lc.OnSkip, lc.OnInvalid = s.report, s.report
	exs, err := data.Load(ctx, lc)
	if err != nil {
		return nil, err
	}
	s.done()
	return exs, nil
}

// limits are what model config mc accepts: token ids inside its
// vocabulary. Sequences of any length are accepted: sliding-window layers
// attend to their window (model.Config.LayerWindow).
func limits(mc model.Config) data.Limits {
	return data.Limits{VocabSize: mc.VocabSize}
}

// Setup loads what a run needs: the policy, the examples (training and
// evaluation, all checked before the first step) and, for the DPO-family
// losses, their reference log-probs. warn receives notes for the user
// (skipped records, emulated bf16).
func Setup(ctx context.Context, o Options, warn func(string)) (*Trainer, error) {
	return SetupRanks(ctx, o, nil, warn)
}

// SetupRanks is Setup for one rank of a data-parallel job joined by comm
// (nil: one process). Every rank loads the same policy and examples; the
// reference log-probs are computed once, each rank scoring its share of
// the pairs, and gathered. Rank 0 takes the output folder's lock (another
// run into the same folder stops with an error); Trainer.Run releases it
// when it ends.
func SetupRanks(ctx context.Context, o Options, comm dist.Comm, warn func(string)) (_ *Trainer, err error) {
	c, err := o.Config()
	if err != nil {
		return nil, err
	}
	policy, dtype, err := c.PEFT.LoadPolicy(c.Model, uint64(c.Loop.Seed))
	if err != nil {
		return nil, err
	}
	if lim := policy.Config.MaxSequence(); lim > 0 && c.Data.Truncation.MaxLength > lim {
		return nil, &UsageError{fmt.Errorf("max_length %d is more than the model's original_max_position_embeddings %d, past which its LongRoPE changes frequencies (transformers switches to long_factor), which relupo does not reproduce: use --max-length %d or less", c.Data.Truncation.MaxLength, lim, lim)}
	}
	if note := FrozenBaseNote(policy, dtype, c.Compute.Precision); note != "" && warn != nil {
		warn(note)
	}
	t := &Trainer{Config: c, Policy: policy, Comm: comm}
	// The output folder's lock is held from before its rule is applied
	// (an --overwrite-output-dir must not clear a running run's files)
	// until Run ends.
	if err := t.lockOutput(); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			t.unlockOutput()
		}
	}()
	if t.writer() {
		if err := checkOutput(c.Output.Dir, c.Output.Overwrite, c.Loop.ResumeFrom != ""); err != nil {
			return nil, err
		}
		t.outputChecked = true
	}
	if t.dataFiles, err = hashFiles(c.Data.Train); err != nil {
		return nil, err
	}
	if t.Record, err = record(o, t.dataFiles); err != nil {
		return nil, err
	}
	if t.SaveDType, err = c.Output.dtype(dtype); err != nil {
		return nil, err
	}
	if t.Train, err = c.Data.Load(ctx, c.Data.Train, c.Model, policy.Config, warn); err != nil {
		return nil, err
	}
	if len(t.Train) == 0 {
		return nil, noPairs("training", c.Data.Train)
	}
	if len(c.Data.Eval) > 0 {
		if t.Eval, err = c.Data.Load(ctx, c.Data.Eval, c.Model, policy.Config, warn); err != nil {
			return nil, err
		}
	}
	if err := t.preflight(availableMemory()); err != nil {
		return nil, err
	}
	if c.Compute.Precision == kernels.BF16 && !kernels.NativeBF16() && warn != nil {
		warn("bf16 compute is emulated here (no AMX-BF16 or AVX512_BF16 on this CPU or kernel path): the numbers are bf16's, but a step is slower than float32's (rounding the operands costs time and gains none); --compute-dtype float32 (which wins over the recipe's bf16: true) is faster here")
	}
	needRef := c.Loss.NeedsReference()
	if needRef {
		if err := t.trainReference(ctx); err != nil {
			return nil, err
		}
	}
	if len(t.Eval) == 0 && c.Data.EvalSplitRatio > 0 {
		t.Train, t.Eval = data.SplitEval(t.Train, c.Data.EvalSplitRatio, int64(c.Loop.Seed))
	} else if needRef {
		if err := c.attachReference(ctx, t.Eval, policy, comm); err != nil {
			return nil, err
		}
	}
	return t, nil
}

// LoadPolicy loads the model to train from the folder dir: in float32 for
// full fine-tuning; with p.Enabled as a frozen base held as p.BaseDType
// says (a 2-byte checkpoint's matrices as bfloat16, mapped from its files
// where they allow) with the LoRA adapter the run trains: p.Init's, or a
// fresh one (PEFT's initialization, B = 0, A drawn from seed). It also
// returns the dtype of the checkpoint's weights.
func (p PEFTConfig) LoadPolicy(dir string, seed uint64) (*model.Model, safetensors.DType, error) {
	if !p.Enabled {
		return model.Load(dir)
	}
	policy, dtype, err := model.LoadWith(dir, model.LoadOptions{BaseDType: p.BaseDType, Map: true})
	if err != nil {
		return nil, "", err
	}
	if p.Init != "" {
		a, _, err := peft.Load(p.Init, policy.Config)
		if err != nil {
			return nil, "", fmt.Errorf("lora_init: %w", err)
		}
		a.Config.Dropout = p.LoRA.Dropout // the run's dropout (lora_dropout may override the adapter's)
		policy.LoRA = a
		return policy, dtype, nil
	}
	a, err := model.NewAdapter(policy.Config, p.LoRA)
	if err != nil {
		return nil, "", fmt.Errorf("train: %w", err)
	}
	a.Init(seed)
	policy.LoRA = a
	return policy, dtype, nil
}

// FrozenBaseNote is what to tell the user when the frozen base m, loaded
// from a checkpoint of dtype, holds a float16 checkpoint's matrices as
// bfloat16 while the products run in precision p: "" unless that rounding
// changes the numbers, which it does only in float32 (the BF16 precision
// rounds every operand to bfloat16 anyway, from the same float16 values).
func FrozenBaseNote(m *model.Model, dtype safetensors.DType, p kernels.Precision) string {
	if !m.Params.Frozen || dtype != safetensors.F16 || p == kernels.BF16 {
		return ""
	}
	return "the float16 checkpoint's weight matrices are held as bfloat16, the 2-byte format relupo's products take: 3 of float16's 10 mantissa bits are dropped, which moves log-probs by about 1e-3 relative against the float32 model; --base-dtype float32 keeps every bit at 4 bytes a weight (with --compute-dtype bf16 nothing is lost: the products round to bfloat16 anyway)"
}

// adaptersOff is the model with its adapter switched off, as TRL's
// reference model under PEFT: a shallow copy with LoRA nil, sharing the
// weights (no second copy is loaded). A model without an adapter is
// returned as is.
func adaptersOff(m *model.Model) *model.Model {
	if m.LoRA == nil {
		return m
	}
	ref := *m
	ref.LoRA = nil
	return &ref
}

// noPairs is the error for data files that gave no pairs, naming each
// and saying whether it is empty.
func noPairs(what string, srcs []data.Source) error {
	var parts []string
	for _, src := range srcs {
		st, err := os.Stat(src.Path)
		switch {
		case err == nil && st.Size() == 0:
			parts = append(parts, src.Path+" is empty")
		case src.Fraction > 0 && src.Fraction < 1:
			parts = append(parts, fmt.Sprintf("%s gave no usable pair in its first %g of records", src.Path, src.Fraction))
		default:
			parts = append(parts, src.Path+" holds no usable pair")
		}
	}
	return fmt.Errorf("train: the %s data has no pairs: %s", what, strings.Join(parts, "; "))
}

// refCache is where a run keeps the reference log-probs of its training
// data, so that a resumed run reuses them instead of needing the initial
// policy again. It is an ordinary reference log-prob file.
const refCache = "ref_logps.jsonl"

// trainReference attaches reference log-probs to the training examples:
// their records' own, the --ref-logps file's (checked against this data),
// those a resumed run's first run cached, or computed once with the
// reference model and cached in output_dir.
func (t *Trainer) trainReference(ctx context.Context) error {
	c := t.Config
	if allHaveRef(t.Train) {
		return nil
	}
	if c.Ref.Logps == "" && c.Loop.ResumeFrom == "" {
		return t.computeTrainReference(ctx)
	}
	want := c.Data.provenance(c.Model, t.dataFiles, len(t.Train))
	if c.Ref.Logps != "" {
		f, err := ReadLogpsFile(c.Ref.Logps)
		if err != nil {
			return err
		}
		return f.Attach(c.Ref.Logps, t.Train, want)
	}
	cache := filepath.Join(c.Output.Dir, refCache)
	f, err := ReadLogpsFile(cache)
	cached := err == nil && f.Attach(cache, t.Train, want) == nil
	// Under several ranks all of them compute when any lacks the cache
	// (computing is a collective).
	if missing, err := t.anyRank(!cached); err != nil || !missing {
		return err
	}
	return t.computeTrainReference(ctx)
}

// computeTrainReference computes the training examples' reference
// log-probs and caches them in output_dir.
func (t *Trainer) computeTrainReference(ctx context.Context) error {
	c := t.Config
	if err := c.attachReference(ctx, t.Train, t.Policy, t.Comm); err != nil {
		return err
	}
	if !t.writer() {
		return nil
	}
	p := c.Data.provenance(c.referenceModel(), t.dataFiles, len(t.Train))
	p.ComputeDType = c.Compute.Precision.String()
	f := &LogpsFile{Provenance: p}
	for _, e := range t.Train {
		f.Lines = append(f.Lines, newLogpsLine(e, *e.RefChosen, *e.RefRejected, data.Labels(e.Prompt, e.Chosen), data.Labels(e.Prompt, e.Rejected)))
	}
	return f.WriteFile(filepath.Join(c.Output.Dir, refCache))
}

// referenceModel names the reference model.
func (c Config) referenceModel() string {
	if c.Ref.Model != "" {
		return c.Ref.Model
	}
	return c.Model
}

func allHaveRef(exs []data.Example) bool {
	for _, e := range exs {
		if !e.HasRef() {
			return false
		}
	}
	return true
}

// attachReference gives every example its reference log-prob sums: its
// record's own when every record has them, else computed once with the
// reference model (c.Ref.Model, or policy, the initial policy, when that
// is empty). With a comm of several ranks each scores a contiguous share
// of the pairs and the values are gathered (a collective).
func (c Config) attachReference(ctx context.Context, exs []data.Example, policy *model.Model, comm dist.Comm) error {
	if len(exs) == 0 || allHaveRef(exs) {
		return nil
	}
	m := adaptersOff(policy) // under LoRA the reference is the base (TRL's null_ref_context)
	if c.Ref.Model != "" {
		// Only read: a bf16 checkpoint stays bf16 (the same numbers).
		r, _, err := model.LoadWith(c.Ref.Model, model.LoadOptions{BaseDType: "exact", Map: true})
		if err != nil {
			return fmt.Errorf("reference model: %w", err)
		}
		if r.Config.VocabSize != m.Config.VocabSize {
			return fmt.Errorf("reference model %s has vocab_size %d, the policy %d: they must share a tokenizer", c.Ref.Model, r.Config.VocabSize, m.Config.VocabSize)
		}
		m = r
	}
	e := NewEngine(m, c.Compute)
	defer e.Close()
	if comm == nil {
		comm = dist.Single{}
	}
	off := dist.Shards(len(exs), comm.Size())
	lo, hi := off[comm.Rank()], off[comm.Rank()+1]
	ref := make([]float64, 2*len(exs)) // chosen, rejected of each pair
	err := e.Logps(exs[lo:hi], c.Loop.EvalBatchSize, func(b int, lp PairLogps) error {
		for i := range lp.Chosen {
			ref[2*(lo+b+i)], ref[2*(lo+b+i)+1] = lp.Chosen[i], lp.Rejected[i]
		}
		// The pass over thousands of pairs stops when asked to.
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("reference log-probs: stopped after %d of %d pairs: %w", b+len(lp.Chosen), hi-lo, err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	off2 := make([]int, len(off))
	for i, o := range off {
		off2[i] = 2 * o
	}
	if err := comm.AllGather64(ref, off2); err != nil {
		return err
	}
	for i := range exs {
		exs[i].SetRef(ref[2*i], ref[2*i+1])
	}
	return nil
}

// inference is what the forward-only commands load: a model and the
// examples of --data, read as training reads them.
type inference struct {
	cfg   Config
	model *model.Model
	exs   []data.Example
}

// loadInference validates the options the forward-only commands use
// (model, data, truncation, loss, threads and precision) and loads the
// model and the examples of --data.
func loadInference(ctx context.Context, o Options, warn func(string)) (*inference, error) {
	var bad problems
	if o.Model == "" {
		bad.add("--model is required")
	}
	if len(o.Data) == 0 {
		bad.add("--data is required")
	}
	c := Config{Model: o.Model, Ref: RefConfig{Model: o.RefModel, Logps: o.RefLogps}}
	var err error
	if c.Data, err = o.DataConfig(); err != nil {
		bad.add("%v", err)
	}
	if c.Loss, err = o.LossConfig(); err != nil {
		bad.add("%v", err)
	}
	if c.Compute, err = o.Compute(); err != nil {
		bad.add("%v", err)
	}
	if o.PerDeviceEvalBatchSize < 1 {
		bad.add("per_device_eval_batch_size must be ≥ 1")
	}
	if err := bad.err(); err != nil {
		return nil, &UsageError{err}
	}
	c.Loop.EvalBatchSize = o.PerDeviceEvalBatchSize
	// The weights are only read: a bfloat16 checkpoint stays bfloat16,
	// mapped (half the memory, the float32 model's numbers bit for bit).
	// With an adapter the base is held as training holds it: any 2-byte
	// checkpoint in bfloat16.
	base := "exact"
	if o.Adapter != "" {
		base = "auto"
	}
	m, _, err := model.LoadWith(c.Model, model.LoadOptions{BaseDType: base, Map: true})
	if err != nil {
		return nil, err
	}
	if o.Adapter != "" {
		if m.LoRA, _, err = peft.Load(o.Adapter, m.Config); err != nil {
			return nil, fmt.Errorf("adapter: %w", err)
		}
	}
	exs, err := c.Data.Load(ctx, c.Data.Train, c.Model, m.Config, warn)
	if err != nil {
		return nil, err
	}
	return &inference{cfg: c, model: m, exs: exs}, nil
}

// UsageError is an error in the options a caller gave (a command exits
// with its usage status for it).
type UsageError struct{ Err error }

func (e *UsageError) Error() string { return e.Err.Error() }
func (e *UsageError) Unwrap() error { return e.Err }

// Logps computes the reference log-prob file of --data under --model
// (`relupo logps`): every pair, in data order, read with the same data
// options and defaults as `relupo train`, with its provenance.
func Logps(ctx context.Context, o Options, warn func(string)) (*LogpsFile, error) {
	in, err := loadInference(ctx, o, warn)
	if err != nil {
		return nil, err
	}
	c := in.cfg
	files, err := hashFiles(c.Data.Train)
	if err != nil {
		return nil, err
	}
	p := c.Data.provenance(c.Model, files, len(in.exs))
	p.ComputeDType = c.Compute.Precision.String()
	p.Adapter = o.Adapter
	f := &LogpsFile{Provenance: p}
	e := NewEngine(in.model, c.Compute)
	defer e.Close()
	err = e.Logps(in.exs, c.Loop.EvalBatchSize, func(lo int, lp PairLogps) error {
		for i := range lp.Chosen {
			// A NaN would otherwise surface as "json: unsupported value"
			// when the file is written, naming neither model nor record.
			if ch, rj := lp.Chosen[i], lp.Rejected[i]; math.IsNaN(ch+rj) || math.IsInf(ch+rj, 0) {
				return fmt.Errorf("%s: model %s gives a non-finite log-prob (chosen %v, rejected %v): its weights hold NaN or infinite values, or its activations overflow", in.exs[lo+i].Source, c.Model, ch, rj)
			}
			f.Lines = append(f.Lines, newLogpsLine(in.exs[lo+i], lp.Chosen[i], lp.Rejected[i], int(lp.ChosenTokens[i]), int(lp.RejectedTokens[i])))
		}
		return ctx.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("logps: %w", err)
	}
	return f, nil
}

// Evaluate computes the loss and metrics of --model on --data
// (`relupo eval`): the same loss function as training (sft_weight
// included), with the reference log-probs from the records, --ref-logps or
// --ref-model. The row also holds the number of pairs.
func Evaluate(ctx context.Context, o Options, warn func(string)) (Row, error) {
	if lc, err := o.LossConfig(); err == nil && lc.NeedsReference() && o.RefModel == "" && o.RefLogps == "" {
		return nil, &UsageError{fmt.Errorf("eval: loss %s needs --ref-model or --ref-logps", lc.LossType)}
	}
	in, err := loadInference(ctx, o, warn)
	if err != nil {
		return nil, err
	}
	c := in.cfg
	if len(in.exs) == 0 {
		return nil, fmt.Errorf("eval: %v holds no usable pairs", o.Data)
	}
	if c.Loss.NeedsReference() && !allHaveRef(in.exs) {
		switch {
		case c.Ref.Logps != "":
			files, err := hashFiles(c.Data.Train)
			if err != nil {
				return nil, err
			}
			want := c.Data.provenance(c.Model, files, len(in.exs))
			f, err := ReadLogpsFile(c.Ref.Logps)
			if err != nil {
				return nil, err
			}
			if err := f.Attach(c.Ref.Logps, in.exs, want); err != nil {
				return nil, err
			}
		default:
			if err := c.attachReference(ctx, in.exs, in.model, nil); err != nil {
				return nil, err
			}
		}
	}
	e := NewEngine(in.model, c.Compute)
	defer e.Close()
	row, err := e.Evaluate(in.exs, c.Loss.Config, c.Loop.EvalBatchSize)
	if err != nil {
		return nil, err
	}
	row["pairs"] = float64(len(in.exs))
	return row, nil
}
