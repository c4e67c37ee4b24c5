package train

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"

	"github.com/relupo/relupo/data"
	"github.com/relupo/relupo/dist"
	"github.com/relupo/relupo/kernels"
	"github.com/relupo/relupo/model"
	"github.com/relupo/relupo/optim"
	"github.com/relupo/relupo/pref"
)

// Engine is everything a training step works on, as llm.c's GPT2 struct
// is: the model's parameters, the activations of the last forward pass
// (Workspace, which also holds the worker pool), the gradients and the
// optimizer's moments. Forward-only use (log-probs, evaluation) needs only
// Model and Workspace.
//
// A model with an adapter (Model.LoRA) trains the adapter alone: the base
// weights are frozen, the gradients are the adapter's (AdapterGrads), and
// AdamW's state, weight decay and gradient clipping cover the adapter's
// tensors only.
type Engine struct {
	Model     *model.Model
	Workspace *model.Workspace
	// Grads has the layout of Model.Params; Step allocates it when nil
	// (and never under LoRA).
	Grads *model.Params
	// AdapterGrads has the layout of Model.LoRA, for LoRA training; Step
	// allocates it when nil.
	AdapterGrads *model.Adapter
	// Optimizer is AdamW; Step uses optim.NewAdamW's defaults when nil.
	Optimizer *optim.AdamW
	// Comm joins the data-parallel ranks of a job; nil is one process.
	Comm dist.Comm
	// ZeRO1 shards the optimizer's state across the ranks (ZeRO stage 1):
	// each rank updates its shard of the parameters and keeps AdamW's
	// moments for it alone.
	ZeRO1 bool

	zero *zeroShard // ZeRO1's shard, made by the first step
}

// NewEngine returns an Engine for m that runs on c.Threads workers with
// matrix products in c.Precision. Close stops its workers.
func NewEngine(m *model.Model, c Compute) *Engine {
	pool := kernels.NewPool(c.Threads)
	pool.SetPrecision(c.Precision)
	return &Engine{Model: m, Workspace: &model.Workspace{Pool: pool, Checkpoint: c.Checkpoint}}
}

// ensureGrads allocates the gradients of what the engine trains: the
// adapter's under LoRA, else every parameter's.
func (e *Engine) ensureGrads() error {
	if a := e.Model.LoRA; a != nil {
		if e.AdapterGrads == nil {
			g, err := model.NewAdapter(e.Model.Config, a.Config)
			if err != nil {
				return err
			}
			e.AdapterGrads = g
		}
		return nil
	}
	if e.Grads == nil {
		e.Grads = model.NewParams(e.Model.Config)
	}
	return nil
}

// trainable returns what the optimizer steps, as one allocation and its
// named tensors, with the gradients in the same layout: the model's
// parameters, or under LoRA the adapter's weights.
// The gradients are nil until allocated (ensureGrads).
func (e *Engine) trainable() (w []float32, wt []model.Tensor, g []float32, gt []model.Tensor) {
	if a := e.Model.LoRA; a != nil {
		if e.AdapterGrads != nil {
			g, gt = e.AdapterGrads.Mem, e.AdapterGrads.Tensors()
		}
		return a.Mem, a.Tensors(), g, gt
	}
	if e.Grads != nil {
		g, gt = e.Grads.Mem, e.Grads.Tensors()
	}
	return e.Model.Params.Mem, e.Model.Params.Tensors(), g, gt
}

// Close stops the engine's workers.
func (e *Engine) Close() { e.Workspace.Pool.Close() }

// Batch is the data of one optimizer step: up to Accumulation micro-batches
// of pairs (fewer at the end of an epoch). Each carries its reference
// log-probs (Example.RefChosen, RefRejected) when the loss needs them.
type Batch struct {
	Micro [][]data.Example
	// Accumulation is gradient_accumulation_steps: every micro-batch's
	// mean loss is divided by it, as the Hugging Face Trainer does.
	Accumulation int
	// SharePrompt runs each pair's prompt once for both responses.
	SharePrompt bool
	// DropoutSeed seeds the LoRA dropout masks of the step: micro-batch j
	// uses MicroDropoutSeed(DropoutSeed, j) (see StepDropoutSeed).
	DropoutSeed uint64
}

// StepDropoutSeed is the LoRA dropout seed of optimizer step (0-based) of
// a run seeded with seed, on rank: it depends on nothing else, so that a
// resumed run draws the masks the uninterrupted run would have.
func StepDropoutSeed(seed, step, rank int) uint64 {
	return mix64(mix64(mix64(uint64(seed)^0x6c6f7261)+uint64(step)) + uint64(rank))
}

// MicroDropoutSeed is the dropout seed of micro-batch j of a step whose
// seed is step.
func MicroDropoutSeed(step uint64, j int) uint64 { return mix64(step + uint64(j)*0x9e3779b97f4a7c15) }

// mix64 is SplitMix64's finalizer.
func mix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	return x ^ x>>31
}

// StepResult is what one step measured.
type StepResult struct {
	// Loss is the Hugging Face Trainer's step loss: the sum of the
	// micro-batches' mean losses, each divided by Accumulation.
	Loss float64
	// GradNorm is the global gradient norm before clipping.
	GradNorm float64
	// Metrics holds each micro-batch's pref metrics, in order.
	Metrics []map[string]float64
	// Tokens counts the tokens computed; TokensSaved those TRL's padded
	// layout of the same pairs would have computed beyond them.
	Tokens, TokensSaved int64
}

// NonfiniteError reports a step that met a non-finite value; the model's
// weights were not updated.
type NonfiniteError struct {
	// What is the value: "log-probs", "loss (NaN)", "gradient norm (+Inf)".
	What string
	// Records names the step's records (Example.Source).
	Records []string
}

func (e *NonfiniteError) Error() string {
	return fmt.Sprintf("non-finite %s on records %s", e.What, strings.Join(e.Records, ", "))
}

// Step runs one optimizer step, top to bottom like llm.c's train_gpt2.c:
// zero the gradients; for each micro-batch run forward, the loss and
// backward; average the gradients over the ranks (with a Comm); clip them
// to maxGradNorm; update with AdamW at learning rate lr. maxGradNorm 0
// computes the norm without clipping; a negative maxGradNorm skips the
// norm too (as a baseline without clipping does; GradNorm is then 0).
//
// A non-finite log-prob, loss or gradient norm, on any rank, stops the
// step before the update with a *NonfiniteError; the result then holds
// what this rank's micro-batches before the failing one measured. The
// result's loss, metrics and tokens are this rank's; GradNorm is global.
func (e *Engine) Step(b Batch, loss pref.Config, lr, maxGradNorm float64) (StepResult, error) {
	ws := e.Workspace
	if err := e.ensureGrads(); err != nil {
		return StepResult{}, err
	}
	if e.Optimizer == nil {
		e.Optimizer = optim.NewAdamW()
	}
	ws.KeepLogits, ws.NoGrad = true, false
	defer func(on bool) { ws.LogitMeans = on }(ws.LogitMeans)
	ws.LogitMeans = true // for logits/chosen and logits/rejected
	acc := float64(max(b.Accumulation, 1))
	var r StepResult
	var records []string
	var stop *NonfiniteError
	_, _, grads, _ := e.trainable()
	clear(grads)
	for j, mb := range b.Micro {
		records = appendSources(records, mb)
		p := pack(mb, b.SharePrompt)
		ws.DropoutSeed = MicroDropoutSeed(b.DropoutSeed, j)
		lp, err := e.forward(p) // forward
		if err != nil {
			return r, err
		}
		if !allFinite(lp.Chosen) || !allFinite(lp.Rejected) {
			stop = &NonfiniteError{What: "log-probs", Records: records}
			break
		}
		res, err := pref.Compute(loss, lp.inputs(mb)) // loss
		if err != nil {
			return r, fmt.Errorf("records %s: %w", strings.Join(sources(mb), ", "), err)
		}
		if math.IsNaN(res.Loss) || math.IsInf(res.Loss, 0) {
			stop = &NonfiniteError{What: fmt.Sprintf("loss (%v)", res.Loss), Records: records}
			break
		}
		if err := e.backward(p, res.DChosen, res.DRejected, acc); err != nil { // backward
			return r, err
		}
		r.Loss += res.Loss / acc
		r.Metrics = append(r.Metrics, lp.addLogitMetrics(res.Metrics))
		r.Tokens += int64(len(p.batch.Tokens))
		r.TokensSaved += int64(paddedSize(mb) - len(p.batch.Tokens))
	}
	if err := e.agree(&stop, records); err != nil { // a non-finite value on any rank stops them all
		return r, err
	}
	if stop != nil {
		return r, stop
	}
	if e.ZeRO1 && e.ranks() > 1 { // reduce-scatter, clip, update this rank's shard, all-gather
		var err error
		r.GradNorm, err = e.zeroUpdate(lr, maxGradNorm, records)
		return r, err
	}
	if err := e.averageGrads(); err != nil { // all-reduce
		return r, err
	}
	if maxGradNorm >= 0 {
		_, _, _, gt := e.trainable()
		r.GradNorm = optim.ClipGradNorm(tensorSlices(gt), maxGradNorm) // clip
		if math.IsNaN(r.GradNorm) || math.IsInf(r.GradNorm, 0) {
			return r, &NonfiniteError{What: fmt.Sprintf("gradient norm (%v)", r.GradNorm), Records: records}
		}
	}
	return r, e.Optimizer.Step(e.params(), lr) // update
}

// backward accumulates a micro-batch's gradients: the adapter's under
// LoRA, else every parameter's.
func (e *Engine) backward(p packed, dChosen, dRejected []float64, acc float64) error {
	d := p.dSums(dChosen, dRejected, acc)
	if e.Model.LoRA != nil {
		return e.Model.BackwardAdapter(e.Workspace, p.batch, d, e.AdapterGrads)
	}
	return e.Model.Backward(e.Workspace, p.batch, d, e.Grads)
}

// params pairs every trained tensor with its gradient, as AdamW steps them.
func (e *Engine) params() []optim.Param {
	if err := e.ensureGrads(); err != nil {
		panic(err) // Model.LoRA was checked when it was made
	}
	_, ps, _, gs := e.trainable()
	out := make([]optim.Param, len(ps))
	for i := range ps {
		out[i] = optim.Param{Name: ps[i].Name, Data: ps[i].Data, Grad: gs[i].Data}
	}
	return out
}

// packed is a micro-batch laid out for the model, with the sequence index
// of each pair's chosen and rejected response.
type packed struct {
	batch            *model.Batch
	chosen, rejected []int
}

// pack lays out pairs as one batch, without padding. With share, each
// pair's prompt is one sequence and both responses continue it
// (model.Batch.AddPrefixed), so the prompt runs once; otherwise the batch
// holds prompt+chosen and prompt+rejected as separate sequences, as TRL's
// concatenated forward does. A pair with an empty prompt is never shared.
func pack(exs []data.Example, share bool) packed {
	b := &model.Batch{}
	p := packed{batch: b, chosen: make([]int, len(exs)), rejected: make([]int, len(exs))}
	if share {
		for i, e := range exs {
			if len(e.Prompt) == 0 {
				b.Add(nil, e.Chosen)
				p.chosen[i] = b.NumSeqs() - 1
				b.Add(nil, e.Rejected)
				p.rejected[i] = b.NumSeqs() - 1
				continue
			}
			b.Add(e.Prompt, nil)
			s := b.NumSeqs() - 1
			p.chosen[i] = b.AddPrefixed(s, e.Chosen)
			p.rejected[i] = b.AddPrefixed(s, e.Rejected)
		}
		return p
	}
	for i, e := range exs {
		b.Add(e.Prompt, e.Chosen)
		p.chosen[i] = i
	}
	for i, e := range exs {
		b.Add(e.Prompt, e.Rejected)
		p.rejected[i] = len(exs) + i
	}
	return p
}

// dSums spreads per-pair derivatives (dL/dS of the chosen and rejected
// sums, each divided by div) over the batch's sequences, as model.Backward
// takes them; prompt sequences get 0.
func (p packed) dSums(dChosen, dRejected []float64, div float64) []float64 {
	d := make([]float64, p.batch.NumSeqs())
	for i := range p.chosen {
		d[p.chosen[i]] = dChosen[i] / div
		d[p.rejected[i]] = dRejected[i] / div
	}
	return d
}

// PairLogps holds a micro-batch's per-response log-prob sums and label
// counts.
type PairLogps struct {
	Chosen, Rejected             []float64
	ChosenTokens, RejectedTokens []float64
	// ChosenLogitMeans and RejectedLogitMeans are, per response, the sum
	// over its label rows of the mean logit over the vocabulary, when the
	// workspace computed them (model.Workspace.LogitMeans); nil otherwise.
	ChosenLogitMeans, RejectedLogitMeans []float64
}

// addLogitMetrics adds TRL's logits/chosen and logits/rejected to a
// micro-batch's metrics: the mean logit over the vocabulary and over all
// the micro-batch's label rows of the chosen (rejected) responses, as
// DPOTrainer.concatenated_forward computes logits[loss_mask].mean(). It
// returns metrics (a new map when metrics is nil); without logit means it
// adds nothing.
func (lp PairLogps) addLogitMetrics(metrics map[string]float64) map[string]float64 {
	if lp.ChosenLogitMeans == nil {
		return metrics
	}
	if metrics == nil {
		metrics = map[string]float64{}
	}
	var c, r, nc, nr float64
	for i := range lp.ChosenLogitMeans {
		c += lp.ChosenLogitMeans[i]
		r += lp.RejectedLogitMeans[i]
		nc += lp.ChosenTokens[i]
		nr += lp.RejectedTokens[i]
	}
	metrics["logits/chosen"] = c / max(nc, 1)
	metrics["logits/rejected"] = r / max(nr, 1)
	return metrics
}

// inputs assembles pref.Inputs for the micro-batch exs, with the reference
// sums the examples carry (all or none of them).
func (lp PairLogps) inputs(exs []data.Example) pref.Inputs {
	in := pref.Inputs{ChosenLogps: lp.Chosen, RejectedLogps: lp.Rejected, ChosenTokens: lp.ChosenTokens, RejectedTokens: lp.RejectedTokens}
	if len(exs) > 0 && exs[0].HasRef() {
		in.RefChosenLogps = make([]float64, len(exs))
		in.RefRejectedLogps = make([]float64, len(exs))
		for i, e := range exs {
			if e.HasRef() {
				in.RefChosenLogps[i], in.RefRejectedLogps[i] = *e.RefChosen, *e.RefRejected
			} else {
				in.RefChosenLogps[i], in.RefRejectedLogps[i] = math.NaN(), math.NaN() // pref refuses it
			}
		}
	}
	return in
}

// forward runs the model on a packed micro-batch and gathers each pair's
// log-prob sums and label counts.
func (e *Engine) forward(p packed) (PairLogps, error) {
	sums, counts, err := e.Model.Forward(e.Workspace, p.batch)
	if err != nil {
		return PairLogps{}, err
	}
	n := len(p.chosen)
	lp := PairLogps{Chosen: make([]float64, n), Rejected: make([]float64, n), ChosenTokens: make([]float64, n), RejectedTokens: make([]float64, n)}
	for i := range n {
		lp.Chosen[i], lp.Rejected[i] = sums[p.chosen[i]], sums[p.rejected[i]]
		lp.ChosenTokens[i], lp.RejectedTokens[i] = float64(counts[p.chosen[i]]), float64(counts[p.rejected[i]])
	}
	if means := e.Workspace.LogitMeanSums; means != nil {
		lp.ChosenLogitMeans, lp.RejectedLogitMeans = make([]float64, n), make([]float64, n)
		for i := range n {
			lp.ChosenLogitMeans[i], lp.RejectedLogitMeans[i] = means[p.chosen[i]], means[p.rejected[i]]
		}
	}
	return lp, nil
}

// ForwardNoGrad runs the model on a micro-batch of pairs for their
// log-prob sums only (Workspace.NoGrad), laid out as Batch.SharePrompt
// says, and returns them with the number of tokens computed.
func (e *Engine) ForwardNoGrad(exs []data.Example, share bool) (PairLogps, int, error) {
	ws := e.Workspace
	defer func(noGrad bool) { ws.NoGrad = noGrad }(ws.NoGrad)
	ws.NoGrad = true
	p := pack(exs, share)
	lp, err := e.forward(p)
	return lp, len(p.batch.Tokens), err
}

// Logps computes the log-prob sums of every pair, in micro-batches of
// batchSize pairs, each prompt run once for both of its responses, and
// hands each micro-batch's values to each with the index of its first pair.
func (e *Engine) Logps(exs []data.Example, batchSize int, each func(lo int, lp PairLogps) error) error {
	batchSize = max(batchSize, 1)
	for lo := 0; lo < len(exs); lo += batchSize {
		lp, _, err := e.ForwardNoGrad(exs[lo:min(lo+batchSize, len(exs))], true)
		if err != nil {
			return err
		}
		if err := each(lo, lp); err != nil {
			return err
		}
	}
	return nil
}

// Evaluate runs the model over examples in batches and returns the mean of
// each batch's loss and metrics (the SimPO/RePO trainer's evaluation: the
// same loss function as training, sft_weight term included), plus the mean
// label counts of the responses. With a Comm of several ranks and at least
// as many batches, the batches are split among the ranks (a collective).
func (e *Engine) Evaluate(exs []data.Example, loss pref.Config, batchSize int) (Row, error) {
	if len(exs) == 0 {
		return nil, errors.New("eval: no pairs to evaluate")
	}
	batchSize = max(batchSize, 1)
	mine := exs
	batches := (len(exs) + batchSize - 1) / batchSize
	split := e.ranks() > 1 && batches >= e.ranks()
	if split {
		off := dist.Shards(batches, e.ranks())
		r := e.Comm.Rank()
		mine = exs[off[r]*batchSize : min(off[r+1]*batchSize, len(exs))]
	}
	ws := e.Workspace
	defer func(on bool) { ws.LogitMeans = on }(ws.LogitMeans)
	ws.LogitMeans = true // for logits/chosen and logits/rejected
	sums := Row{}
	var lenC, lenR float64
	err := e.Logps(mine, batchSize, func(lo int, lp PairLogps) error {
		mb := mine[lo : lo+len(lp.Chosen)]
		res, err := pref.Compute(loss, lp.inputs(mb))
		if err != nil {
			return fmt.Errorf("records %s: %w", strings.Join(sources(mb), ", "), err)
		}
		sums["loss"] += res.Loss
		for k, v := range lp.addLogitMetrics(res.Metrics) {
			sums[k] += v
		}
		for i := range lp.Chosen {
			lenC += lp.ChosenTokens[i]
			lenR += lp.RejectedTokens[i]
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("eval: %w", err)
	}
	if split { // every rank has at least one batch, so the same metric names
		keys := slices.Sorted(maps.Keys(sums))
		v := []float64{lenC, lenR}
		for _, k := range keys {
			v = append(v, sums[k])
		}
		if err := e.Comm.AllReduceSum64(v); err != nil {
			return nil, fmt.Errorf("eval: %w", err)
		}
		lenC, lenR = v[0], v[1]
		for i, k := range keys {
			sums[k] = v[2+i]
		}
	}
	for k := range sums {
		sums[k] /= float64(batches)
	}
	sums["lengths/chosen"] = lenC / float64(len(exs))
	sums["lengths/rejected"] = lenR / float64(len(exs))
	return sums, nil
}

// paddedSize is how many tokens the pairs would occupy in TRL's
// concatenated layout: prompt+chosen and prompt+rejected rows, padded to the
// longest. relupo computes none of that padding (and, sharing prompts, runs
// each prompt once).
func paddedSize(exs []data.Example) int {
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

func tensorSlices(ts []model.Tensor) [][]float32 {
	out := make([][]float32, len(ts))
	for i, t := range ts {
		out[i] = t.Data
	}
	return out
}

// sources names the records of exs.
func sources(exs []data.Example) []string { return appendSources(nil, exs) }

func appendSources(dst []string, exs []data.Example) []string {
	for _, e := range exs {
		dst = append(dst, e.Source)
	}
	return dst
}
