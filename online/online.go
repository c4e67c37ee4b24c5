// Package online is iterative (online) preference optimization: the policy
// samples K responses per prompt, a scorer scores them, the best and the
// worst of each prompt become a preference pair, the policy trains one pass
// over those pairs (RePO by default, any loss of package pref), and the next
// iteration samples from the trained policy. It is the on-policy recipe of
// the RePO paper (sample, score with a reward model, pair, train) repeated,
// the online extension the paper leaves as future work.
//
// # The loop
//
// Iteration 0 samples the initial policy and scores the samples; it trains
// nothing and is the baseline of the win rate. Iteration i = 1..N then
//
//  1. builds pairs from the previous iteration's scored samples (package
//     pairs: chosen = highest score, rejected = lowest; ties, gaps below
//     the minimum and prompts with fewer than two scored responses dropped
//     and counted);
//  2. sets γ (see below) and, for the losses that need one, takes the
//     reference log-probs from the policy as it is at the start of the
//     iteration (the usual choice of iterative DPO);
//  3. trains one pass over the pairs (a seeded shuffle, micro-batches and
//     gradient accumulation as `relupo train`, each prompt run once for both
//     responses), continuing from the previous iteration's weights and
//     AdamW state at a constant learning rate;
//  4. samples the trained policy (K per prompt) and scores the samples:
//     these are what the iteration's metrics describe and what iteration
//     i+1 trains on;
//  5. writes a checkpoint (see [Run]) and a line of metrics.jsonl.
//
// Training uses the sampled token ids themselves (the prompt as rendered
// with the generation prompt, each response up to and including its stop
// token), so the pairs are exactly what the policy produced, with no
// re-tokenization; the pairs file of each iteration holds the same pairs as
// text, in the layout `relupo train` reads.
//
// Every random draw is a pure function of the seed and the iteration: sample
// j of prompt p in iteration i draws from generate's stream (p, j) under a
// seed derived from (Seed, i), and the training order of iteration i is a
// permutation seeded by (Seed, i). So a run is reproducible, and a resumed
// run continues exactly as an uninterrupted one would.
//
// # γ strategies
//
//   - fixed: the same γ every iteration. RePO's own setting; as the policy
//     improves, more of its fresh pairs are already separated by γ and get
//     no gradient, so training slows down by itself on easy prompts.
//   - linear: γ moves linearly from Gamma.Value at iteration 1 to
//     Gamma.End at iteration N (train's dynamic-γ schedule, applied across
//     iterations). Raising γ asks for larger margins as the policy gets
//     better, keeping pairs active that a fixed γ would let go.
//   - adaptive: before training, γ is set to the Gamma.Quantile quantile
//     of the current policy's margins M (average log-prob of chosen minus
//     rejected) on the iteration's fresh pairs. RePO trains only on pairs
//     with M < γ, so about that fraction of the pairs is active at the start
//     of the pass whatever the scale of the margins, which drifts in
//     self-play as the policy sharpens: 0.5 trains on the half of the pairs
//     the policy separates worst. It needs a loss whose margin is M (repo,
//     repo++, simpo, simpo-hinge).
//
// Each iteration's γ, and the fraction of pairs active at the start of its
// pass and over the pass, are in metrics.jsonl.
//
// # LoRA
//
// A policy with an adapter (Config.Policy.LoRA, as train.PEFTConfig's
// LoadPolicy makes it) trains the adapter alone on its frozen base, which
// may be held in bfloat16: sampling runs base and adapter, the reference of
// a DPO-family loss is the policy (base and adapter) at the start of the
// iteration, and checkpoints hold the adapter in PEFT's format. Dropout
// masks are drawn from the seed, the iteration and the step, so a resumed
// run still ends with bitwise the same adapter.
package online

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/relupo/relupo/chat"
	"github.com/relupo/relupo/data"
	"github.com/relupo/relupo/generate"
	"github.com/relupo/relupo/internal/atomicfile"
	"github.com/relupo/relupo/kernels"
	"github.com/relupo/relupo/model"
	"github.com/relupo/relupo/optim"
	"github.com/relupo/relupo/pairs"
	"github.com/relupo/relupo/peft"
	"github.com/relupo/relupo/pref"
	"github.com/relupo/relupo/safetensors"
	"github.com/relupo/relupo/score"
	"github.com/relupo/relupo/train"
)

// Prompt is one prompt of a run.
type Prompt struct {
	// ID names the prompt in the samples and pairs files.
	ID string
	// Messages is the prompt as a conversation, for the samples and pairs
	// files and for scorers that read it (a judge, a reward model).
	Messages []chat.Message
	// IDs are the prompt's token ids as the policy continues them (the
	// chat template rendered with the generation prompt).
	IDs []int32
	// Reference is the known answer, for verifiers; it may be empty.
	Reference string
}

// The γ strategies.
const (
	GammaFixed    = "fixed"
	GammaLinear   = "linear"
	GammaAdaptive = "adaptive"
)

// Gamma chooses γ for each iteration (see the package documentation).
type Gamma struct {
	// Strategy is GammaFixed (the default when empty), GammaLinear or
	// GammaAdaptive.
	Strategy string
	// Value is γ for fixed, and γ at iteration 1 for linear.
	Value float64
	// End is γ at the last iteration for linear.
	End float64
	// Quantile is the quantile of the margins adaptive sets γ to, in
	// [0, 1]: about that fraction of the fresh pairs is active.
	Quantile float64
}

// Validate reports a strategy that does not exist or a value outside its
// range; loss is the loss it is used with.
func (g Gamma) Validate(loss string) error {
	finite := func(name string, v float64) error {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return fmt.Errorf("gamma %s must be finite, got %v", name, v)
		}
		return nil
	}
	switch g.Strategy {
	case "", GammaFixed:
		return finite("value", g.Value)
	case GammaLinear:
		return errors.Join(finite("value", g.Value), finite("end", g.End))
	case GammaAdaptive:
		if !(g.Quantile >= 0 && g.Quantile <= 1) {
			return fmt.Errorf("the adaptive gamma's quantile must be in [0, 1], got %v", g.Quantile)
		}
		if !marginLoss(loss) {
			return fmt.Errorf("the adaptive gamma sets γ from the margins M of average log-probs, which loss %s does not threshold (use repo, repo++, simpo or simpo-hinge)", loss)
		}
		return nil
	}
	return fmt.Errorf("gamma strategy %q is not one of %s, %s, %s", g.Strategy, GammaFixed, GammaLinear, GammaAdaptive)
}

// marginLoss reports whether the loss thresholds M, the difference of
// average log-probs, with γ.
func marginLoss(loss string) bool {
	switch loss {
	case pref.LossRePO, pref.LossRePOPlusPlus, pref.LossSimPO, pref.LossSimPOHinge:
		return true
	}
	return false
}

// at is γ of iteration i of n for the fixed and linear strategies.
func (g Gamma) at(i, n int) float64 {
	if g.Strategy != GammaLinear {
		return g.Value
	}
	l := train.LossConfig{Config: pref.Config{Gamma: g.Value}, GammaEnd: g.End}
	return l.At(i-1, n).Gamma
}

// Optim is the optimizer and batching of each iteration's pass.
type Optim struct {
	// LearningRate is AdamW's learning rate, the peak of Schedule.
	LearningRate float64
	// Schedule is the learning-rate schedule of each iteration's pass (a
	// name of optim.Schedules; "" is constant): every pass runs it over its
	// own optimizer steps, as iterative DPO trains each iteration as a run
	// of its own, while AdamW's moments carry over. WarmupSteps, or when it
	// is 0 WarmupRatio of the pass's steps, warm it up (optim.WarmupSteps).
	Schedule    string
	WarmupSteps int
	WarmupRatio float64
	// Beta1, Beta2, Eps and WeightDecay configure AdamW (optim.NewAdamW's
	// defaults when all are zero).
	Beta1, Beta2, Eps, WeightDecay float64
	// MaxGradNorm clips the global gradient norm; 0 disables clipping.
	MaxGradNorm float64
	// BatchSize is pairs per micro-batch, Accumulation micro-batches per
	// optimizer step (both at least 1).
	BatchSize, Accumulation int
}

// Progress is told what a run is doing.
type Progress interface {
	// Phase reports done of total in a phase of an iteration: "sampling"
	// (answers), "scoring" (prompts), "margins" (pairs) or "training"
	// (optimizer steps).
	Phase(iteration int, phase string, done, total int)
	// Iteration reports a finished iteration's metrics.
	Iteration(m Metrics)
}

// Config is an online run.
type Config struct {
	// Policy is the initial policy; Run trains it in place. With an
	// adapter (Policy.LoRA) Run trains the adapter alone, the base frozen
	// (as `relupo train --use-peft`), and writes adapters instead of models.
	Policy *model.Model
	// Base is the folder Policy's base was loaded from, for a policy with
	// an adapter: the adapters written name it as their base model, and
	// MergeAdapter merges from its files.
	Base string
	// MergeAdapter, with an adapter, also writes the merged model (W +
	// scale·B·A, in MergeDType, float32 when empty) beside the final
	// adapter in OutputDir.
	MergeAdapter bool
	MergeDType   safetensors.DType
	// Detokenizer turns sampled ids into the text the scorer reads.
	Detokenizer generate.Detokenizer
	// Prompts are the prompts sampled every iteration (at least one).
	Prompts []Prompt
	// Scorer scores every sampled response.
	Scorer score.Scorer
	// Iterations is N, the number of training iterations.
	Iterations int
	// Samples is K, the responses sampled per prompt (at least 2).
	Samples int
	// Generate controls decoding: MaxNewTokens, Sampling, StopTokens,
	// StopStrings, BatchSize. Seed and NumReturnSequences are set by Run.
	Generate generate.Options
	// Seed seeds sampling and the training order.
	Seed uint64
	// Loss is the loss of every pass; its Gamma is set each iteration by
	// Gamma.
	Loss  pref.Config
	Gamma Gamma
	// Pairs controls pair building.
	Pairs pairs.Options
	Optim Optim
	// Compute is the engine's threads and precision.
	Compute train.Compute
	// OutputDir receives the checkpoints, metrics.jsonl and the final
	// model.
	OutputDir string
	// Resume continues from the newest checkpoint in OutputDir; without
	// it, a folder holding checkpoints is refused unless Overwrite.
	Resume, Overwrite bool
	// ModelFiles, when not nil, adds files to each model folder written
	// (the tokenizer files and chat template, so that it loads as a model).
	ModelFiles func(dir string) error
	// Progress, when not nil, is told about each phase and iteration.
	Progress Progress
}

// Metrics is one line of metrics.jsonl: the samples of the policy after
// Iteration iterations, and (from iteration 1) the pass that produced it.
// Values that cannot be computed (every response unscored, no pairs) are
// left out.
type Metrics struct {
	Iteration int `json:"iteration"`
	// Responses is the number of responses sampled, Unscored how many of
	// them the scorer could not score (a judge that failed, say).
	Responses int `json:"responses"`
	Unscored  int `json:"score/failed"`
	// ScoreMean and ScoreStd are the mean and the standard deviation
	// (population) of the scored responses' scores.
	ScoreMean *float64 `json:"score/mean,omitempty"`
	ScoreStd  *float64 `json:"score/std,omitempty"`
	// WinRate is the share of prompts whose mean score beats iteration 0's
	// (ties count half), over the WinPrompts prompts scored in both.
	WinRate    *float64 `json:"win_rate,omitempty"`
	WinPrompts int      `json:"win_rate/prompts"`
	// ResponseTokens is the mean length of the responses in tokens.
	ResponseTokens float64 `json:"lengths/response"`

	// The iteration's pass (absent for iteration 0).
	Pass *PassMetrics `json:"pass,omitempty"`
}

// PassMetrics describe the pairs and the training pass of an iteration.
type PassMetrics struct {
	// Pairs is the number of pairs trained on; Dropped the prompts that gave
	// none, as Ties, BelowGap and TooFew (see pairs.Stats).
	Pairs    int `json:"pairs"`
	Dropped  int `json:"pairs/dropped"`
	Ties     int `json:"pairs/ties"`
	BelowGap int `json:"pairs/below_gap"`
	TooFew   int `json:"pairs/too_few"`
	// Gamma is the iteration's γ.
	Gamma *float64 `json:"gamma,omitempty"`
	// ActiveStart is the fraction of pairs with M < γ under the policy at
	// the start of the pass (margin losses only), ActiveFraction the mean
	// of repo/active_fraction over the pass's micro-batches (RePO losses).
	ActiveStart    *float64 `json:"repo/active_fraction_start,omitempty"`
	ActiveFraction *float64 `json:"repo/active_fraction,omitempty"`
	// MarginP10, MarginP50 and MarginP90 are quantiles of M at the start
	// of the pass (margin losses only).
	MarginP10 *float64 `json:"margin/p10,omitempty"`
	MarginP50 *float64 `json:"margin/p50,omitempty"`
	MarginP90 *float64 `json:"margin/p90,omitempty"`
	// Loss is the mean step loss, Steps the optimizer steps of the pass,
	// LearningRate the rate of its last step.
	Loss         *float64 `json:"loss,omitempty"`
	Steps        int      `json:"steps"`
	LearningRate *float64 `json:"learning_rate,omitempty"`
}

// Summary is what a finished run reports.
type Summary struct {
	// Metrics has one entry per iteration, 0 to N.
	Metrics []Metrics
	// Resumed is the iteration of the checkpoint the run resumed from, or
	// −1.
	Resumed int
	// OutputDir holds the final model.
	OutputDir string
}

func (c *Config) validate() error {
	var bad []string
	add := func(format string, args ...any) { bad = append(bad, fmt.Sprintf(format, args...)) }
	switch {
	case c.Policy == nil:
		add("no policy")
	case c.Detokenizer == nil:
		add("no detokenizer")
	case c.Scorer == nil:
		add("no scorer")
	}
	if len(c.Prompts) == 0 {
		add("no prompts")
	}
	for i, p := range c.Prompts {
		if len(p.IDs) == 0 {
			add("prompt %d (id %q) has no tokens", i+1, p.ID)
			break
		}
	}
	if c.Iterations < 1 {
		add("iterations must be ≥ 1, got %d", c.Iterations)
	}
	if c.Samples < 2 {
		add("samples per prompt must be ≥ 2 to make pairs, got %d", c.Samples)
	}
	if c.Generate.MaxNewTokens < 1 {
		add("max new tokens must be ≥ 1")
	}
	if err := c.Generate.Sampling.Validate(); err != nil {
		add("%v", err)
	} else if c.Generate.Sampling.Greedy() {
		add("sampling is greedy (temperature 0): the K samples of a prompt would all be equal; use a temperature above 0")
	}
	if err := c.Loss.Validate(); err != nil {
		add("%v", strings.TrimPrefix(err.Error(), "pref: "))
	}
	if err := c.Gamma.Validate(c.Loss.Type()); err != nil {
		add("%v", err)
	}
	o := c.Optim
	if o.BatchSize < 1 || o.Accumulation < 1 {
		add("batch size and gradient accumulation must be ≥ 1")
	}
	if !(o.LearningRate >= 0) || math.IsInf(o.LearningRate, 0) {
		add("learning rate must be ≥ 0, got %v", o.LearningRate)
	}
	if !(o.MaxGradNorm >= 0) {
		add("max grad norm must be ≥ 0, got %v", o.MaxGradNorm)
	}
	if _, err := optim.Schedule(o.schedule(), 1, 0, 1); err != nil {
		add("%v", strings.TrimPrefix(err.Error(), "optim: "))
	}
	if _, err := optim.WarmupSteps(o.WarmupSteps, o.WarmupRatio, 1); err != nil {
		add("%v", strings.TrimPrefix(err.Error(), "optim: "))
	}
	if !(c.Pairs.MinScoreGap >= 0) {
		add("min score gap must be ≥ 0, got %v", c.Pairs.MinScoreGap)
	}
	if c.OutputDir == "" {
		add("no output folder")
	}
	if c.Policy != nil && c.Policy.LoRA != nil && c.Base == "" {
		add("a policy with an adapter needs its base model's folder (Base)")
	}
	if c.MergeAdapter && (c.Policy == nil || c.Policy.LoRA == nil) {
		add("merging the adapter needs a policy with one")
	}
	if len(bad) > 0 {
		return fmt.Errorf("online: %s", strings.Join(bad, "; "))
	}
	return nil
}

// schedule is the schedule's name, the default filled in.
func (o Optim) schedule() string {
	if o.Schedule == "" {
		return optim.ScheduleConstant
	}
	return o.Schedule
}

// adamW is the run's optimizer.
func (o Optim) adamW() *optim.AdamW {
	if o.Beta1 == 0 && o.Beta2 == 0 && o.Eps == 0 && o.WeightDecay == 0 {
		return optim.NewAdamW()
	}
	return &optim.AdamW{Beta1: o.Beta1, Beta2: o.Beta2, Eps: o.Eps, WeightDecay: o.WeightDecay}
}

// runner is a run in progress.
type runner struct {
	c        Config
	engine   *train.Engine
	state    State
	rows     []score.Row // the latest iteration's scored samples
	outIDs   [][][]int   // their token ids, [prompt][sample]
	baseline []float64   // iteration 0's mean score per prompt (NaN: none)
}

// Run carries out the online run c (see the package documentation).
//
// After iteration i it writes OutputDir/iteration-i, atomically (built
// under a temporary name and renamed): state.json (the iteration, the
// run's settings, the seed from which every random stream of the next
// iteration derives, the metrics so far), samples.jsonl (the scored
// samples of the policy after i iterations, in the row layout of package
// score with each response's output_ids) and, from iteration 1, the
// policy (config.json, model.safetensors, plus ModelFiles; with an adapter,
// adapter_config.json and adapter_model.safetensors), AdamW's state
// (optimizer.safetensors) and the pairs trained on (pairs.jsonl, in the
// princeton-nlp layout `relupo train` reads). metrics.jsonl is rewritten
// after each iteration. At the end the final policy is also saved in
// OutputDir itself.
//
// When ctx is cancelled Run stops at its next check (between decoding
// steps, scored prompts or optimizer steps) and returns an error wrapping
// train.ErrInterrupted; with Resume, a later Run starts again at the
// beginning of the interrupted iteration from the newest checkpoint and
// ends with the same weights and metrics as an uninterrupted run.
func Run(ctx context.Context, c Config) (Summary, error) {
	if err := c.validate(); err != nil {
		return Summary{}, err
	}
	r := &runner{c: c}
	r.engine = train.NewEngine(c.Policy, c.Compute)
	defer r.engine.Close()
	r.engine.Optimizer = c.Optim.adamW()
	if c.Policy.LoRA == nil { // with an adapter the engine keeps the adapter's gradients
		r.engine.Grads = model.NewParams(c.Policy.Config)
	}
	resumed := -1
	if c.Resume {
		it, err := r.resume()
		if err != nil {
			return Summary{}, err
		}
		resumed = it
	} else if err := prepareOutput(c.OutputDir, c.Overwrite); err != nil {
		return Summary{}, err
	}
	if resumed < 0 { // iteration 0: the initial policy's samples
		r.state = State{Key: c.key(), Iterations: c.Iterations}
		if err := r.sample(ctx, 0); err != nil {
			return Summary{}, interrupted(ctx, err, 0, c)
		}
		if err := r.finishIteration(0, nil, nil); err != nil {
			return Summary{}, err
		}
	}
	for i := r.state.Iteration + 1; i <= c.Iterations; i++ {
		ps, st := pairs.Build(r.rows, c.Pairs)
		pass, err := r.train(ctx, i, ps, st)
		if err == nil {
			err = r.sample(ctx, i)
		}
		if err != nil {
			return Summary{}, interrupted(ctx, err, i, c)
		}
		if err := r.finishIteration(i, pass, ps); err != nil {
			return Summary{}, err
		}
	}
	if err := r.saveModel(c.OutputDir, true); err != nil {
		return Summary{}, fmt.Errorf("online: saving the final model: %w", err)
	}
	return Summary{Metrics: r.state.Metrics, Resumed: resumed, OutputDir: c.OutputDir}, nil
}

// interrupted wraps an error of iteration i caused by ctx's cancellation
// as train.ErrInterrupted, naming the checkpoint a resume starts from.
func interrupted(ctx context.Context, err error, i int, c Config) error {
	if ctx.Err() == nil || !errors.Is(err, ctx.Err()) {
		return err
	}
	if i == 0 {
		return fmt.Errorf("%w in iteration 0 (sampling the initial policy), before any checkpoint; run it again to start over", train.ErrInterrupted)
	}
	return fmt.Errorf("%w in iteration %d of %d; %s holds iteration %d, from which a resume starts iteration %d again",
		train.ErrInterrupted, i, c.Iterations, checkpointDir(c.OutputDir, i-1), i-1, i)
}

// iterationSeed is the sampling seed of iteration i: a SplitMix64 step of
// seed and i, so that iterations draw from unrelated streams.
func iterationSeed(seed uint64, i int) uint64 {
	z := seed + uint64(i+1)*0x9E3779B97F4A7C15
	z = (z ^ z>>30) * 0xBF58476D1CE4E5B9
	z = (z ^ z>>27) * 0x94D049BB133111EB
	return z ^ z>>31
}

// sample draws K responses per prompt from the current policy for
// iteration i and scores them into r.rows.
func (r *runner) sample(ctx context.Context, i int) error {
	c := r.c
	opt := c.Generate
	opt.Seed, opt.NumReturnSequences = iterationSeed(c.Seed, i), c.Samples
	prompts := make([][]int32, len(c.Prompts))
	for p := range c.Prompts {
		prompts[p] = c.Prompts[p].IDs
	}
	var onDone func(generate.Progress)
	if c.Progress != nil {
		onDone = func(p generate.Progress) { c.Progress.Phase(i, "sampling", p.Done, p.Total) }
	}
	res, err := generate.Run(ctx, model.NewDecoder(c.Policy, r.engine.Workspace.Pool), c.Detokenizer, prompts, opt, onDone)
	if err != nil {
		return fmt.Errorf("online: iteration %d: sampling: %w", i, err)
	}
	K := c.Samples
	rows := make([]score.Row, len(c.Prompts))
	r.outIDs = make([][][]int, len(c.Prompts))
	for p, pr := range c.Prompts {
		row := score.Row{ID: pr.ID, Prompt: pr.Messages, Reference: pr.Reference, Responses: make([]string, K)}
		ids, reasons := make([][]int, K), make([]string, K)
		for j, res := range res[p*K : (p+1)*K] {
			row.Responses[j], ids[j], reasons[j] = res.Text, res.OutputIDs, res.FinishReason
		}
		row.Extra = map[string]json.RawMessage{"output_ids": mustJSON(ids), "finish_reasons": mustJSON(reasons)}
		rows[p], r.outIDs[p] = row, ids
	}
	var progress func(done, total int)
	if c.Progress != nil {
		progress = func(done, total int) { c.Progress.Phase(i, "scoring", done, total) }
	}
	failed, err := c.Scorer.Score(ctx, rows, progress)
	if err != nil {
		return fmt.Errorf("online: iteration %d: scoring: %w", i, err)
	}
	for p := range rows {
		if len(rows[p].Scores) != K {
			return fmt.Errorf("online: iteration %d: the scorer gave prompt %d (id %q) %d scores for %d responses", i, p+1, rows[p].ID, len(rows[p].Scores), K)
		}
	}
	_ = failed // recounted from the NaN scores, which survive a resume
	r.rows = rows
	return nil
}

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // only ids and strings are marshalled
	}
	return b
}

// examples maps the pairs Build made from r.rows back to the sampled
// token ids, through each pair's row and response indices.
func (r *runner) examples(i int, ps []pairs.Pair) ([]data.Example, error) {
	exs := make([]data.Example, 0, len(ps))
	for k, p := range ps {
		row, cj, rj := p.Row, p.ChosenIndex, p.RejectedIndex
		if row < 0 || row >= len(r.rows) || cj < 0 || rj < 0 || cj >= len(r.outIDs[row]) || rj >= len(r.outIDs[row]) {
			return nil, fmt.Errorf("online: iteration %d: pair %d (id %q) names no sampled response", i, k+1, p.ID)
		}
		exs = append(exs, data.Example{
			Prompt: r.c.Prompts[row].IDs, Chosen: toInt32(r.outIDs[row][cj]), Rejected: toInt32(r.outIDs[row][rj]),
			Source: fmt.Sprintf("iteration %d, prompt %d (id %q), responses %d and %d", i-1, row+1, p.ID, cj+1, rj+1),
		})
	}
	return exs, nil
}

func toInt32(ids []int) []int32 {
	out := make([]int32, len(ids))
	for i, id := range ids {
		out[i] = int32(id)
	}
	return out
}

// train sets γ and trains one pass of iteration i over the pairs.
func (r *runner) train(ctx context.Context, i int, ps []pairs.Pair, st pairs.Stats) (*PassMetrics, error) {
	c := r.c
	pm := &PassMetrics{Pairs: st.Pairs, Dropped: st.Dropped(), Ties: st.Ties, BelowGap: st.BelowGap, TooFew: st.TooFew}
	exs, err := r.examples(i, ps)
	if err != nil {
		return nil, err
	}
	loss := c.Loss
	loss.Gamma = c.Gamma.at(i, c.Iterations)
	if len(exs) == 0 {
		if c.Gamma.Strategy != GammaAdaptive {
			pm.Gamma = num(loss.Gamma)
		}
		return pm, nil
	}
	// The margins (and reference log-probs) under the policy at the start
	// of the pass.
	if marginLoss(loss.Type()) || loss.NeedsReference() {
		margins := make([]float64, 0, len(exs))
		err := r.engine.Logps(exs, c.Optim.BatchSize, func(lo int, lp train.PairLogps) error {
			for k := range lp.Chosen {
				if loss.NeedsReference() {
					exs[lo+k].SetRef(lp.Chosen[k], lp.Rejected[k])
				}
				margins = append(margins, lp.Chosen[k]/lp.ChosenTokens[k]-lp.Rejected[k]/lp.RejectedTokens[k])
			}
			if c.Progress != nil {
				c.Progress.Phase(i, "margins", lo+len(lp.Chosen), len(exs))
			}
			return ctx.Err()
		})
		if err != nil {
			return nil, fmt.Errorf("online: iteration %d: margins: %w", i, err)
		}
		if marginLoss(loss.Type()) {
			if c.Gamma.Strategy == GammaAdaptive {
				loss.Gamma = pref.Quantile(margins, c.Gamma.Quantile)
			}
			active := 0
			for _, m := range margins {
				if m < loss.Gamma {
					active++
				}
			}
			pm.ActiveStart = num(float64(active) / float64(len(margins)))
			pm.MarginP10, pm.MarginP50, pm.MarginP90 = num(pref.Quantile(margins, 0.1)), num(pref.Quantile(margins, 0.5)), num(pref.Quantile(margins, 0.9))
		}
	}
	pm.Gamma = num(loss.Gamma)

	o := c.Optim
	order := rand.New(rand.NewPCG(c.Seed, uint64(i))).Perm(len(exs))
	micro := (len(exs) + o.BatchSize - 1) / o.BatchSize
	steps := (micro + o.Accumulation - 1) / o.Accumulation
	warm, err := optim.WarmupSteps(o.WarmupSteps, o.WarmupRatio, steps)
	if err != nil {
		return nil, err
	}
	lrAt, err := optim.Schedule(o.schedule(), o.LearningRate, warm, steps)
	if err != nil {
		return nil, err
	}
	var lossSum, activeSum, activeN float64
	for s := range steps {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("online: iteration %d: training: %w", i, err)
		}
		b := train.Batch{SharePrompt: true, DropoutSeed: dropoutSeed(c.Seed, i, s)}
		for m := s * o.Accumulation; m < min((s+1)*o.Accumulation, micro); m++ {
			var mb []data.Example
			for _, k := range order[m*o.BatchSize : min((m+1)*o.BatchSize, len(exs))] {
				mb = append(mb, exs[k])
			}
			b.Micro = append(b.Micro, mb)
		}
		b.Accumulation = len(b.Micro)
		lr := lrAt(s)
		res, err := r.engine.Step(b, loss, lr, o.MaxGradNorm)
		if err != nil {
			return nil, fmt.Errorf("online: iteration %d: step %d: %w", i, s+1, err)
		}
		lossSum += res.Loss
		for k, m := range res.Metrics {
			if v, ok := m[pref.MetricActiveFraction]; ok {
				n := float64(len(b.Micro[k]))
				activeSum += v * n
				activeN += n
			}
		}
		pm.Steps++
		pm.LearningRate = num(lr)
		if c.Progress != nil {
			c.Progress.Phase(i, "training", s+1, steps)
		}
	}
	pm.Loss = num(lossSum / float64(steps))
	if activeN > 0 {
		pm.ActiveFraction = num(activeSum / activeN)
	}
	return pm, nil
}

// dropoutSeed is the LoRA dropout seed of step s of iteration i's pass, a
// function of the run's seed and the step alone (so a resumed pass draws
// the same masks).
func dropoutSeed(seed uint64, i, s int) uint64 {
	return iterationSeed(seed^0x6a09e667f3bcc909, i) + uint64(s)*0x9e3779b97f4a7c15
}

// num is a metric's value, nil when it is not a finite number.
func num(x float64) *float64 {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return nil
	}
	return &x
}

// sampleMetrics measures r.rows, the samples of the policy after
// iteration i.
func (r *runner) sampleMetrics(i int) Metrics {
	m := Metrics{Iteration: i}
	var sum, sq, n, tokens float64
	means := make([]float64, len(r.rows))
	for p, row := range r.rows {
		var ps, pn float64
		for j, s := range row.Scores {
			m.Responses++
			tokens += float64(len(r.outIDs[p][j]))
			if math.IsNaN(s) || math.IsInf(s, 0) {
				m.Unscored++
				continue
			}
			sum += s
			sq += s * s
			n++
			ps += s
			pn++
		}
		means[p] = math.NaN()
		if pn > 0 {
			means[p] = ps / pn
		}
	}
	if n > 0 {
		mean := sum / n
		m.ScoreMean, m.ScoreStd = num(mean), num(math.Sqrt(max(sq/n-mean*mean, 0)))
	}
	m.ResponseTokens = tokens / float64(max(m.Responses, 1))
	if i == 0 {
		r.baseline = means
	}
	var wins float64
	for p, mean := range means {
		b := r.baseline[p]
		if math.IsNaN(mean) || math.IsNaN(b) {
			continue
		}
		m.WinPrompts++
		switch {
		case mean > b:
			wins++
		case mean == b:
			wins += 0.5
		}
	}
	if m.WinPrompts > 0 {
		m.WinRate = num(wins / float64(m.WinPrompts))
	}
	return m
}

// finishIteration records iteration i's metrics and writes its checkpoint
// and metrics.jsonl.
func (r *runner) finishIteration(i int, pass *PassMetrics, ps []pairs.Pair) error {
	m := r.sampleMetrics(i)
	m.Pass = pass
	r.state.Iteration = i
	r.state.Metrics = append(r.state.Metrics[:i], m)
	r.state.NextSeed = iterationSeed(r.c.Seed, i+1)
	if err := r.saveCheckpoint(i, ps); err != nil {
		return fmt.Errorf("online: iteration %d: checkpoint not saved (the previous ones are intact): %w", i, err)
	}
	if err := writeMetrics(filepath.Join(r.c.OutputDir, "metrics.jsonl"), r.state.Metrics); err != nil {
		return fmt.Errorf("online: %w", err)
	}
	if r.c.Progress != nil {
		r.c.Progress.Iteration(m)
	}
	return nil
}

// checkpointDir is the folder of iteration i's checkpoint.
func checkpointDir(out string, i int) string {
	return filepath.Join(out, "iteration-"+strconv.Itoa(i))
}

// saveModel writes the policy (float32), or its adapter (in PEFT's
// format, float32), and ModelFiles to dir; the final folder also gets the
// merged model with MergeAdapter.
func (r *runner) saveModel(dir string, final bool) error {
	c := r.c
	if err := train.SaveTrained(c.Policy, dir, c.Base); err != nil {
		return err
	}
	if final && c.MergeAdapter {
		pool := kernels.NewPool(c.Compute.Threads) // float32 products, whatever the run's precision
		dt := c.MergeDType
		if dt == "" {
			dt = safetensors.F32
		}
		err := peft.MergeFolder(c.Base, c.Policy.LoRA, dir, dt, 0, pool)
		pool.Close()
		if err != nil {
			return err
		}
	}
	if c.ModelFiles != nil {
		return c.ModelFiles(dir)
	}
	return nil
}

// prepareOutput creates out, refusing one that holds a run's checkpoints
// unless overwrite, which removes them and metrics.jsonl.
func prepareOutput(out string, overwrite bool) error {
	its, err := checkpoints(out)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("online: %w", err)
	}
	if len(its) > 0 && !overwrite {
		return fmt.Errorf("online: %s holds the checkpoints of an online run (iteration-%d is the newest): resume it (--resume-from-checkpoint latest) or start anew (--overwrite-output-dir)", out, its[len(its)-1])
	}
	for _, it := range its {
		if err := os.RemoveAll(checkpointDir(out, it)); err != nil {
			return fmt.Errorf("online: %w", err)
		}
	}
	if err := os.Remove(filepath.Join(out, "metrics.jsonl")); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("online: %w", err)
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return fmt.Errorf("online: %w", err)
	}
	return atomicfile.CleanLeftovers(out, "iteration-")
}
