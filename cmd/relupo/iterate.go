package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/relupo/relupo/chat"
	"github.com/relupo/relupo/generate"
	"github.com/relupo/relupo/kernels"
	"github.com/relupo/relupo/online"
	"github.com/relupo/relupo/optim"
	pairbuild "github.com/relupo/relupo/pairs"
	"github.com/relupo/relupo/pref"
	"github.com/relupo/relupo/train"
	"github.com/spf13/cobra"
	"golang.org/x/term"
)

// iterateOptions are the flags of `relupo iterate`.
type iterateOptions struct {
	demo                                   bool
	model, tokenizer, prompts, outputDir   string
	templateVars                           train.TemplateVars
	scorer                                 scorerFlags
	iterations, samples, maxNewTokens      int
	topK, genBatch, threads, batch, accum  int
	numPrompts                             int
	temperature, topP                      float64
	stop                                   []string
	lossType                               string
	beta, gamma, gammaEnd, gammaQuantile   float64
	gammaStrategy                          string
	learningRate, maxGradNorm, weightDecay float64
	scheduler                              string
	warmupRatio                            float64
	warmupSteps                            int
	minScoreGap                            float64
	seed                                   uint64
	computeDType, resume                   string
	overwrite, progress, jsonOut           bool
	// peft holds the LoRA options, bound as `relupo train` binds them.
	peft train.Options
}

// iteratePEFTKeys are the options of `relupo train` that iterate takes
// for LoRA training, under the same flags.
var iteratePEFTKeys = []string{"use_peft", "lora_r", "lora_alpha", "lora_dropout", "lora_target_modules", "use_rslora", "lora_init", "merge_adapter", "base_dtype"}

func newIterateCmd() *cobra.Command {
	o := iterateOptions{peft: train.DefaultOptions()}
	cmd := &cobra.Command{
		Use:   "iterate (--demo | --model DIR --prompts FILE --output-dir DIR --verifier REGEX|--reward-model DIR|--judge-model NAME --judge-base-url URL)",
		Short: "Online (iterative) RePO: sample, score, pair and train, repeated",
		Long: `Trains a policy on its own samples, iteration after iteration. Iteration 0 samples the
initial policy (--samples-per-prompt K answers to every prompt) and scores them; each
iteration 1..N then makes one pair per prompt from the latest scored samples (chosen =
highest score, rejected = lowest; ties, score gaps below --min-score-gap and prompts with
fewer than two scored, non-empty answers are dropped and counted), trains one pass over
the pairs (RePO by default, any --loss-type), continuing from the previous weights and
AdamW state (each pass runs --lr-scheduler-type over its own steps, constant by
default, as iterative DPO trains each iteration as a run of its own), then samples
the trained policy again and scores it. Losses with a reference model use the policy
of the start of the iteration.
Training uses the sampled token ids themselves (the prompt rendered with the generation
prompt, each answer up to its stop token), so no text is re-tokenized.

Prompts (--prompts): the records 'relupo generate' reads (messages, prompt, instruction,
turns, prompt_input_ids), with an optional "id" and, for the verifier, the known answer
in "reference" or "answer" (GSM8K's column). Scorers: --verifier REGEX (1 when the
answer the first group extracts equals the reference's, else 0; 'gsm8k' is GSM8K's
"#### 42" pattern), --reward-model DIR (a *ForSequenceClassification or ArmoRM folder, with
--reward-tokenizer and --reward-chat-template when they are elsewhere), or an LLM judge
(--judge-model NAME --judge-base-url URL: 1-10 ratings through an OpenAI-compatible
server, the prompt from --judge-prompt FILE; --cache FILE keeps its ratings, so that a
resumed run re-rates nothing), all as 'relupo score' uses them. Responses a scorer
cannot score are counted, reported and left out of the pairs.

γ (--gamma-strategy):
  fixed     --gamma-beta-ratio every iteration (RePO's setting). As the policy improves
            more fresh pairs are already separated by γ and get no gradient.
  linear    γ moves linearly from --gamma-beta-ratio at iteration 1 to --gamma-end at
            iteration N (the dynamic γ of 'relupo train', across iterations): larger margins
            are asked for as the policy gets better.
  adaptive  before each pass γ is set to the --gamma-quantile quantile of the current
            policy's margins M on the fresh pairs, so that about that fraction of them
            is active (RePO trains only on pairs with M < γ) whatever the scale of the
            margins, which drifts in self-play. Needs repo, repo++, simpo or simpo-hinge.

Output (--output-dir): metrics.jsonl, one line per iteration: iteration, responses,
score/failed, score/mean, score/std, win_rate (prompts whose mean score beats iteration
0's, ties half), lengths/response, and for iterations ≥ 1 under "pass": pairs,
pairs/dropped (ties, below_gap, too_few), gamma, repo/active_fraction_start (M < γ
before the pass), repo/active_fraction (over the pass), margin/p10|p50|p90, loss, steps,
learning_rate (of the pass's last step).
iteration-N/ is a checkpoint written atomically after each iteration: state.json,
samples.jsonl (the scored samples, in the row layout of 'relupo score', with output_ids),
and from iteration 1 the policy as a model folder, optimizer.safetensors and pairs.jsonl
(the pairs trained on, in the princeton-nlp layout 'relupo train' reads). The final
policy is saved in --output-dir itself. Every random draw depends only on --seed and
the iteration, so --resume-from-checkpoint latest restarts the iteration that was
interrupted and ends with the same weights and metrics as an uninterrupted run.

LoRA: --use-peft trains an adapter on the frozen base instead of every weight, with
the flags of 'relupo train' (--lora-r, --lora-alpha, --lora-dropout, --lora-target-modules,
--use-rslora, --lora-init, --base-dtype: a 2-byte checkpoint stays 2 bytes a weight).
Sampling runs the base with the adapter; losses with a reference model use the policy
(base and adapter) of the start of the iteration. The checkpoints and --output-dir hold
adapter_config.json and adapter_model.safetensors in PEFT's format instead of the model,
and with --merge-adapter --output-dir also holds the merged model, in the base's dtype.

--demo runs a built-in demonstration that needs nothing downloaded: a small random Llama
(2 layers, width 64, 16 tokens) learns to answer the largest of 3-6 letters ("c f b =" →
"f"), scored by the verifier, from 128 prompts × 8 samples; the mean verified reward rises
from about 0.07 (chance) over the iterations. Flags given with --demo override its
settings (--iterations, --samples-per-prompt, --learning-rate, --seed, --gamma-*).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runIterate(cmd, o) },
	}
	f := cmd.Flags()
	f.BoolVar(&o.demo, "demo", false, "run the built-in demonstration (nothing to download)")
	f.StringVar(&o.model, "model", "", "initial policy: a model folder (config.json, safetensors, tokenizer)")
	f.StringVar(&o.tokenizer, "tokenizer", "", "folder of the tokenizer files and chat template (default: --model)")
	f.Var(&o.templateVars, "chat-template-kwargs", `extra chat template variables for the prompts, a JSON object such as '{"enable_thinking": false}' (Qwen3, SmolLM3)`)
	f.StringVar(&o.prompts, "prompts", "", "prompts file, JSON lines or a JSON array ('relupo generate' records)")
	f.StringVar(&o.outputDir, "output-dir", "", "checkpoints, metrics.jsonl and the final model (default with --demo: relupo-online-demo)")
	o.scorer.add(f, "reward-", "none")
	f.IntVar(&o.iterations, "iterations", 3, "training iterations N")
	f.IntVar(&o.samples, "samples-per-prompt", 4, "answers sampled per prompt, K (≥ 2)")
	f.IntVar(&o.numPrompts, "num-prompts", 0, "with --demo: prompts of the task (default 128)")
	f.IntVar(&o.maxNewTokens, "max-new-tokens", 256, "most tokens per sampled answer")
	f.Float64Var(&o.temperature, "temperature", 1, "sampling temperature (> 0)")
	f.Float64Var(&o.topP, "top-p", 1, "nucleus sampling: keep the most likely tokens up to this probability mass")
	f.IntVar(&o.topK, "top-k", 0, "keep only the k most likely tokens (0: all)")
	f.StringArrayVar(&o.stop, "stop", nil, "stop an answer when it contains this string (repeatable)")
	f.IntVar(&o.genBatch, "generate-batch-size", 32, "sequences decoded together")
	f.StringVar(&o.lossType, "loss-type", pref.LossRePO, "loss of each pass: "+strings.Join(pref.LossTypes(), ", "))
	f.Float64Var(&o.beta, "beta", math.NaN(), "β (default: the loss's convention, 2 for repo)")
	f.Float64Var(&o.gamma, "gamma-beta-ratio", 0.5, "γ (fixed), or γ at iteration 1 (linear)")
	f.StringVar(&o.gammaStrategy, "gamma-strategy", online.GammaFixed, "fixed, linear or adaptive (see above)")
	f.Float64Var(&o.gammaEnd, "gamma-end", math.NaN(), "linear: γ at the last iteration")
	f.Float64Var(&o.gammaQuantile, "gamma-quantile", 0.5, "adaptive: the quantile of the margins γ is set to (≈ the fraction of pairs active)")
	f.Float64Var(&o.learningRate, "learning-rate", 1e-6, "AdamW's learning rate (the peak of --lr-scheduler-type)")
	f.StringVar(&o.scheduler, "lr-scheduler-type", optim.ScheduleConstant, "learning-rate schedule of each iteration's pass, over its own steps: "+strings.Join(optim.Schedules(), ", "))
	f.Float64Var(&o.warmupRatio, "warmup-ratio", 0, "fraction of each pass's steps spent warming up (when --warmup-steps is 0)")
	f.IntVar(&o.warmupSteps, "warmup-steps", 0, "warmup steps of each pass")
	f.Float64Var(&o.maxGradNorm, "max-grad-norm", 1, "clip the gradient norm (0: no clipping)")
	f.Float64Var(&o.weightDecay, "weight-decay", 0, "AdamW's weight decay")
	f.IntVar(&o.batch, "per-device-train-batch-size", 2, "pairs per micro-batch")
	f.IntVar(&o.accum, "gradient-accumulation-steps", 1, "micro-batches per optimizer step")
	f.Float64Var(&o.minScoreGap, "min-score-gap", 0, "drop a prompt whose best and worst scores differ by less")
	f.Uint64Var(&o.seed, "seed", 42, "seed of sampling and of the training order")
	f.IntVar(&o.threads, "threads", 0, "worker threads (0: all cores)")
	f.StringVar(&o.computeDType, "compute-dtype", "float32", "precision of the training matrix products: float32 or bf16")
	f.StringVar(&o.resume, "resume-from-checkpoint", "", "'latest': continue from the newest iteration-N checkpoint in --output-dir")
	f.BoolVar(&o.overwrite, "overwrite-output-dir", false, "start anew in an --output-dir that holds an online run's checkpoints")
	f.BoolVar(&o.progress, "progress", true, "on a terminal, one live progress line (false: a plain line at most every 2 seconds)")
	f.BoolVar(&o.jsonOut, "json", false, "print the metrics of every iteration as one JSON list on stdout")
	bindFlags(&o.peft, f, iteratePEFTKeys...)
	return cmd
}

func runIterate(cmd *cobra.Command, o iterateOptions) error {
	f := cmd.Flags()
	var c online.Config
	var err error
	if _, err := optim.Schedule(o.scheduler, 1, 0, 1); err != nil {
		return usagef("iterate: --lr-scheduler-type: %v", strings.TrimPrefix(err.Error(), "optim: "))
	}
	if _, err := optim.WarmupSteps(o.warmupSteps, o.warmupRatio, 1); err != nil {
		return usagef("iterate: %v", strings.TrimPrefix(err.Error(), "optim: "))
	}
	if o.demo {
		if c, err = iterateDemoConfig(cmd, o); err != nil {
			return err
		}
	} else if c, err = iterateConfig(cmd, o); err != nil {
		return err
	}
	if b, ok := c.Scorer.(*builtScorer); ok {
		defer b.Close()
	}
	switch o.resume {
	case "":
	case "latest", "true":
		c.Resume = true
	default:
		return usagef("iterate: --resume-from-checkpoint takes 'latest' (the newest iteration-N folder of --output-dir), got %q", o.resume)
	}
	if c.Resume && f.Changed("overwrite-output-dir") {
		return usagef("iterate: --resume-from-checkpoint and --overwrite-output-dir contradict each other")
	}
	stderr := cmd.ErrOrStderr()
	p := newIterateProgress(stderr, o.progress, c.Iterations)
	c.Progress = p
	fmt.Fprintf(stderr, "iterate: %d prompts × %d samples, %d iterations, loss %s, γ %s, into %s\n",
		len(c.Prompts), c.Samples, c.Iterations, c.Loss.Type(), gammaDesc(c.Gamma), c.OutputDir)
	sum, err := online.Run(cmd.Context(), c)
	p.clear()
	if err != nil {
		return err
	}
	if sum.Resumed >= 0 {
		fmt.Fprintf(stderr, "iterate: resumed after iteration %d\n", sum.Resumed)
	}
	if o.jsonOut {
		return json.NewEncoder(cmd.OutOrStdout()).Encode(sum.Metrics)
	}
	w := cmd.OutOrStdout()
	fmt.Fprintln(w, "iteration  mean score  win rate  pairs  γ       active")
	for _, m := range sum.Metrics {
		fmt.Fprintf(w, "%9d  %10s  %8s", m.Iteration, fmtMetric(m.ScoreMean, "%.3f"), fmtMetric(m.WinRate, "%.3f"))
		if m.Pass != nil {
			fmt.Fprintf(w, "  %5d  %-6s  %s", m.Pass.Pairs, fmtMetric(m.Pass.Gamma, "%.3g"), fmtMetric(m.Pass.ActiveFraction, "%.2f"))
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "final model, checkpoints and metrics.jsonl in %s\n", sum.OutputDir)
	return nil
}

func fmtMetric(v *float64, format string) string {
	if v == nil {
		return "-"
	}
	return fmt.Sprintf(format, *v)
}

func gammaDesc(g online.Gamma) string {
	switch g.Strategy {
	case online.GammaLinear:
		return fmt.Sprintf("linear %g → %g", g.Value, g.End)
	case online.GammaAdaptive:
		return fmt.Sprintf("adaptive (quantile %g of the margins)", g.Quantile)
	}
	return fmt.Sprintf("fixed %g", g.Value)
}

// iterateGamma reads the γ flags.
func iterateGamma(o iterateOptions) (online.Gamma, error) {
	g := online.Gamma{Strategy: o.gammaStrategy, Value: o.gamma, End: o.gammaEnd, Quantile: o.gammaQuantile}
	if g.Strategy == online.GammaLinear && math.IsNaN(g.End) {
		return g, usagef("iterate: --gamma-strategy linear needs --gamma-end")
	}
	if g.Strategy != online.GammaLinear && !math.IsNaN(g.End) {
		return g, usagef("iterate: --gamma-end is for --gamma-strategy linear")
	}
	return g, nil
}

// iterateDemoConfig is the demonstration's run, with the flags given.
func iterateDemoConfig(cmd *cobra.Command, o iterateOptions) (online.Config, error) {
	f := cmd.Flags()
	for _, name := range []string{"model", "tokenizer", "prompts", "verifier", "reward-model", "judge-model"} {
		if f.Changed(name) {
			return online.Config{}, usagef("iterate: --demo brings its own model, prompts and verifier: --%s does not apply", name)
		}
	}
	for _, key := range iteratePEFTKeys {
		if name := strings.ReplaceAll(key, "_", "-"); f.Changed(name) {
			return online.Config{}, usagef("iterate: --demo trains its small model's every weight: --%s does not apply", name)
		}
	}
	d := online.DefaultDemoOptions()
	if o.outputDir != "" {
		d.OutputDir = o.outputDir
	}
	if f.Changed("iterations") {
		d.Iterations = o.iterations
	}
	if f.Changed("samples-per-prompt") {
		d.Samples = o.samples
	}
	if f.Changed("num-prompts") {
		if o.numPrompts < 1 {
			return online.Config{}, usagef("iterate: --num-prompts must be ≥ 1")
		}
		d.Prompts = o.numPrompts
	}
	if f.Changed("learning-rate") {
		d.LearningRate = o.learningRate
	}
	if f.Changed("seed") {
		d.Seed = o.seed
	}
	if f.Changed("gamma-strategy") || f.Changed("gamma-beta-ratio") || f.Changed("gamma-end") || f.Changed("gamma-quantile") {
		g, err := iterateGamma(o)
		if err != nil {
			return online.Config{}, err
		}
		d.Gamma = g
	}
	d.Threads = o.threads
	c, err := online.DemoConfig(d)
	if err != nil {
		return c, err
	}
	if f.Changed("lr-scheduler-type") || f.Changed("warmup-ratio") || f.Changed("warmup-steps") {
		c.Optim.Schedule, c.Optim.WarmupSteps, c.Optim.WarmupRatio = o.scheduler, o.warmupSteps, o.warmupRatio
	}
	c.Overwrite = true // a demonstration: each run starts the folder anew
	if o.resume != "" {
		c.Overwrite = false
	}
	return c, nil
}

// iterateConfig is the run the flags describe: it reads the prompts and
// the model and makes the scorer.
func iterateConfig(cmd *cobra.Command, o iterateOptions) (online.Config, error) {
	var c online.Config
	if o.model == "" || o.prompts == "" || o.outputDir == "" {
		return c, usagef("iterate: --model, --prompts and --output-dir are required, or --demo (see 'relupo iterate --help')")
	}
	if err := o.scorer.check("iterate"); err != nil {
		return c, err
	}
	if o.iterations < 1 || o.samples < 2 || o.maxNewTokens < 1 || o.genBatch < 1 || o.batch < 1 || o.accum < 1 {
		return c, usagef("iterate: --iterations and --max-new-tokens must be ≥ 1, --samples-per-prompt ≥ 2, the batch sizes and --gradient-accumulation-steps ≥ 1")
	}
	if o.threads < 0 || o.threads > kernels.MaxWorkers() {
		return c, usagef("iterate: --threads must be in [0, %d]", kernels.MaxWorkers())
	}
	if cmd.Flags().Changed("num-prompts") {
		return c, usagef("iterate: --num-prompts is for --demo; --prompts gives the prompts")
	}
	sampling := generate.Sampling{Temperature: o.temperature, TopK: o.topK, TopP: o.topP}
	if err := sampling.Validate(); err != nil {
		return c, usagef("iterate: %v", err)
	}
	if sampling.Greedy() {
		return c, usagef("iterate: --temperature 0 is greedy: the %d samples of a prompt would all be equal", o.samples)
	}
	g, err := iterateGamma(o)
	if err != nil {
		return c, err
	}
	if err := g.Validate(o.lossType); err != nil {
		return c, usagef("iterate: %v", err)
	}
	prec, err := kernels.ParsePrecision(o.computeDType)
	if err != nil {
		return c, usagef("iterate: --compute-dtype: %v", err)
	}
	o.peft.Model = o.model // lora_init's adapter is read against the model's configuration
	pc, err := o.peft.PEFTConfig()
	if err != nil {
		return c, usagef("iterate: %v", err)
	}
	beta := o.beta
	if math.IsNaN(beta) {
		beta = pref.DefaultBeta(o.lossType)
	}
	c = online.Config{
		Iterations: o.iterations, Samples: o.samples, Seed: o.seed,
		Generate: generate.Options{MaxNewTokens: o.maxNewTokens, Sampling: sampling, StopStrings: o.stop, BatchSize: o.genBatch},
		Loss:     pref.Config{LossType: o.lossType, Beta: beta, Gamma: o.gamma},
		Gamma:    g,
		Pairs:    pairbuild.Options{MinScoreGap: o.minScoreGap},
		Optim: online.Optim{LearningRate: o.learningRate, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: o.weightDecay,
			MaxGradNorm: o.maxGradNorm, BatchSize: o.batch, Accumulation: o.accum,
			Schedule: o.scheduler, WarmupSteps: o.warmupSteps, WarmupRatio: o.warmupRatio},
		Compute:   train.Compute{Threads: o.threads, Precision: prec},
		OutputDir: o.outputDir, Overwrite: o.overwrite,
	}

	recs, err := readPromptRecords(o.prompts)
	if err != nil {
		return c, err
	}
	if c.Scorer, err = iterateScorer(o, recs, cmd.ErrOrStderr()); err != nil {
		return c, err
	}
	tokDir := o.tokenizer
	if tokDir == "" {
		tokDir = o.model
	}
	enc, err := generate.LoadPromptEncoder(tokDir)
	if err != nil {
		return c, fmt.Errorf("iterate: %w", err)
	}
	enc.WithVars(o.templateVars)
	ids, err := enc.EncodeAll(cmd.Context(), recs)
	if err != nil {
		return c, fmt.Errorf("iterate: %w", err)
	}
	m, dtype, err := pc.LoadPolicy(o.model, o.seed)
	if err != nil {
		return c, fmt.Errorf("iterate: %w", err)
	}
	if pc.Enabled {
		c.Base, c.MergeAdapter, c.MergeDType = o.model, pc.Merge, dtype
	}
	if note := train.FrozenBaseNote(m, dtype, prec); note != "" {
		fmt.Fprintf(cmd.ErrOrStderr(), "iterate: %s\n", note)
	}
	for i, p := range ids {
		for _, id := range p {
			if id < 0 || int(id) >= m.Config.VocabSize {
				return c, fmt.Errorf("iterate: %s: token id %d outside the model's vocabulary [0, %d)", recs[i].Where, id, m.Config.VocabSize)
			}
		}
	}
	if c.Generate.StopTokens, err = generate.StopTokens(o.model, m.Config.EOSTokenIDs, enc.Config.EOSToken, enc.Config.ChatTemplate, enc.Tokenizer); err != nil {
		return c, fmt.Errorf("iterate: %w", err)
	}
	c.Policy, c.Detokenizer = m, enc.Tokenizer
	c.Prompts = make([]online.Prompt, len(recs))
	for i, r := range recs {
		p := online.Prompt{ID: r.ID, Messages: r.Messages, IDs: ids[i], Reference: r.Reference}
		if p.ID == "" {
			p.ID = strconv.Itoa(i + 1)
		}
		if p.Messages == nil { // pre-tokenized: the pairs file shows the decoded prompt
			p.Messages = []chat.Message{{Role: "user", Content: enc.Tokenizer.Decode(toInts(ids[i]), false)}}
		}
		c.Prompts[i] = p
	}
	c.ModelFiles = func(dir string) error { return train.CopyTokenizerFiles(dir, o.tokenizer, o.model) }
	return c, nil
}

// readPromptRecords reads the prompts file; it must hold at least one.
func readPromptRecords(path string) ([]generate.Record, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("iterate: %w", err)
	}
	defer f.Close()
	recs, err := generate.ReadRecords(f, path)
	if err != nil {
		return nil, fmt.Errorf("iterate: %w", err)
	}
	if len(recs) == 0 {
		return nil, fmt.Errorf("iterate: %s holds no prompts", path)
	}
	return recs, nil
}

// iterateScorer makes the scorer the flags ask for; runIterate closes it.
// The verifier needs every prompt's known answer. Responses that cannot
// be scored are counted in each iteration's metrics; the first few reasons
// are printed as they happen.
func iterateScorer(o iterateOptions, recs []generate.Record, stderr io.Writer) (*builtScorer, error) {
	if o.scorer.verifier != "" {
		for _, r := range recs {
			if strings.TrimSpace(r.Reference) == "" {
				return nil, fmt.Errorf("iterate: %s: no known answer for the verifier: give \"reference\" or \"answer\"", r.Where)
			}
		}
	}
	var shown atomic.Int64
	report := func(reason string) {
		if shown.Add(1) <= failureShown {
			fmt.Fprintf(stderr, "iterate: could not score %s\n", reason)
		}
	}
	return o.scorer.build("iterate", o.threads, "", stderr, report)
}

// iterateProgress shows what an online run is doing: a line rewritten in
// place on a terminal, plain lines at most every 2 seconds otherwise, and
// a line per finished iteration.
type iterateProgress struct {
	w          io.Writer
	live       bool
	iterations int
	last       time.Time
	shown      bool
}

func newIterateProgress(w io.Writer, live bool, iterations int) *iterateProgress {
	f, ok := w.(*os.File)
	return &iterateProgress{w: w, live: live && ok && term.IsTerminal(int(f.Fd())), iterations: iterations}
}

func (p *iterateProgress) Phase(i int, phase string, done, total int) {
	every := 2 * time.Second
	if p.live {
		every = 200 * time.Millisecond
	}
	if (done < total || !p.live) && time.Since(p.last) < every {
		return
	}
	p.last = time.Now()
	line := fmt.Sprintf("iteration %d/%d: %s %d/%d", i, p.iterations, phase, done, total)
	if p.live {
		fmt.Fprintf(p.w, "\r\x1b[K%s", line)
		p.shown = true
		return
	}
	fmt.Fprintln(p.w, line)
}

func (p *iterateProgress) Iteration(m online.Metrics) {
	p.clear()
	line := fmt.Sprintf("iteration %d: mean score %s (std %s), win rate over iteration 0 %s", m.Iteration,
		fmtMetric(m.ScoreMean, "%.4g"), fmtMetric(m.ScoreStd, "%.3g"), fmtMetric(m.WinRate, "%.3f"))
	if m.Unscored > 0 {
		line += fmt.Sprintf(", %d of %d responses could not be scored", m.Unscored, m.Responses)
	}
	if q := m.Pass; q != nil {
		line += fmt.Sprintf("; trained on %d pairs (%d prompts dropped: %d ties, %d below the gap, %d too few), γ %s, active %s, loss %s",
			q.Pairs, q.Dropped, q.Ties, q.BelowGap, q.TooFew, fmtMetric(q.Gamma, "%.4g"), fmtMetric(q.ActiveFraction, "%.2f"), fmtMetric(q.Loss, "%.4g"))
	}
	fmt.Fprintln(p.w, line)
}

// clear removes the live line.
func (p *iterateProgress) clear() {
	if p.shown {
		fmt.Fprint(p.w, "\r\x1b[K")
		p.shown = false
	}
}

var _ online.Progress = (*iterateProgress)(nil)
