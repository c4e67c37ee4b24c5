package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"time"

	"github.com/relupo/relupo/chat"
	"github.com/relupo/relupo/generate"
	"github.com/relupo/relupo/internal/atomicfile"
	"github.com/relupo/relupo/kernels"
	"github.com/relupo/relupo/model"
	"github.com/relupo/relupo/tokenizer"
	"github.com/spf13/cobra"
)

// generateOptions are the flags of `relupo generate`.
type generateOptions struct {
	model, input, output, format, generator string
	maxNewTokens, topK, batchSize, threads  int
	temperature, topP                       float64
	seed                                    uint64
	stop                                    []string
	ignoreEOS                               bool
}

func newGenerateCmd() *cobra.Command {
	var o generateOptions
	cmd := &cobra.Command{
		Use:   "generate --model DIR --input FILE [--output FILE] [--format jsonl|alpaca_eval|arena_hard]",
		Short: "Generate answers to prompts with a model (KV-cache decoding)",
		Long: `Reads prompts and writes one answer per prompt, in input order.

Input: JSON lines, or one JSON array of records (AlpacaEval's file layout). A record is
  {"prompt_input_ids": [...]}                 token ids, used verbatim
  {"messages": [{"role", "content"}, ...]}    a conversation
  {"question_id", "turns": [{"content"}]}     Arena-Hard v0.1 (the first turn is answered)
  {"uid", "prompt"}                           Arena-Hard (current layout)
  {"prompt": "..."}                           one user message
  {"instruction": "...", "dataset": ...}      AlpacaEval
Text goes through the model's chat template with the generation prompt and is encoded
without adding special tokens (the template writes BOS); a tokenizer without a chat
template encodes a single message as plain text with its special tokens.

Output (--format):
  jsonl        {"output_ids": [...], "output": "...", "finish_reason", "instruction"} per line
  alpaca_eval  the JSON list AlpacaEval reads: [{"instruction", "output", "generator", "dataset"}]
  arena_hard   Arena-Hard model_answer lines: for v0.1 questions {"question_id", "answer_id",
               "model_id", "choices": [{"index": 0, "turns": [{"content", "token_len"}]}],
               "tstamp", "conv_metadata"}; for uid questions {"uid", "ans_id", "model",
               "messages": [user, {"role": "assistant", "content": {"answer"}}], "tstamp",
               "metadata": {"token_len"}}. token_len counts the model's own tokens.
The evaluation formats trim white space around answers. --generator names the model
(default: the model folder's name).

Generation stops at the model's end-of-sequence ids (config.json, generation_config.json,
the tokenizer's eos_token), at the chat template's end-of-turn token (<|eot_id|>,
<|im_end|>, ...), at a --stop string, or after --max-new-tokens. --temperature 0 is greedy;
sampling is seeded per prompt, so answers do not depend on --batch-size. Progress and
tokens/s go to stderr; --output is written atomically.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runGenerate(cmd, o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.model, "model", "", "model folder (config.json, safetensors, tokenizer) (required)")
	f.StringVar(&o.input, "input", "", "prompts file, JSON lines or a JSON array; - for stdin (required)")
	f.StringVar(&o.output, "output", "", "answers file (default: stdout)")
	f.StringVar(&o.format, "format", generate.FormatJSONL, "output format: jsonl, alpaca_eval or arena_hard")
	f.StringVar(&o.generator, "generator", "", "model name written to alpaca_eval and arena_hard outputs (default: the model folder's name)")
	f.IntVar(&o.maxNewTokens, "max-new-tokens", 1024, "most tokens generated per prompt")
	f.Float64Var(&o.temperature, "temperature", 0, "sampling temperature; 0 is greedy")
	f.Float64Var(&o.topP, "top-p", 1, "nucleus sampling: keep the most likely tokens up to this probability mass")
	f.IntVar(&o.topK, "top-k", 0, "keep only the k most likely tokens (0: all)")
	f.Uint64Var(&o.seed, "seed", 0, "sampling seed")
	f.StringArrayVar(&o.stop, "stop", nil, "stop when the answer contains this string (repeatable); the answer ends before it")
	f.BoolVar(&o.ignoreEOS, "ignore-eos", false, "keep generating past end-of-sequence and end-of-turn tokens")
	f.IntVar(&o.batchSize, "batch-size", 8, "prompts decoded together")
	f.IntVar(&o.threads, "threads", 0, "worker threads (0: all cores)")
	return cmd
}

func runGenerate(cmd *cobra.Command, o generateOptions) error {
	if o.model == "" || o.input == "" {
		return usagef("generate: --model and --input are required (see 'relupo generate --help')")
	}
	if err := generate.CheckFormat(o.format, nil); err != nil {
		return usagef("generate: --format: %v", err)
	}
	sampling := generate.Sampling{Temperature: o.temperature, TopK: o.topK, TopP: o.topP}
	if err := sampling.Validate(); err != nil {
		return usagef("generate: %v", err)
	}
	if o.maxNewTokens < 1 || o.batchSize < 1 {
		return usagef("generate: --max-new-tokens and --batch-size must be ≥ 1")
	}
	generator := o.generator
	if generator == "" {
		abs, err := filepath.Abs(o.model)
		if err != nil {
			return fmt.Errorf("generate: %w", err)
		}
		generator = filepath.Base(abs)
	}

	in, name := cmd.InOrStdin(), "stdin"
	if o.input != "-" {
		f, err := os.Open(o.input)
		if err != nil {
			return fmt.Errorf("generate: %w", err)
		}
		defer f.Close()
		in, name = f, o.input
	}
	recs, err := generate.ReadRecords(in, name)
	if err != nil {
		return fmt.Errorf("generate: %w", err)
	}
	if len(recs) == 0 {
		return fmt.Errorf("generate: %s holds no prompts", name)
	}
	if err := generate.CheckFormat(o.format, recs); err != nil {
		return fmt.Errorf("generate: %w", err)
	}

	tok, err := tokenizer.Load(o.model)
	if err != nil {
		return fmt.Errorf("generate: %w", err)
	}
	tcfg, err := tokenizer.LoadConfig(o.model)
	if errors.Is(err, fs.ErrNotExist) {
		tcfg, err = &tokenizer.Config{}, nil
	}
	if err != nil {
		return fmt.Errorf("generate: %w", err)
	}
	var tmpl *chat.Template
	if tcfg.ChatTemplate != "" {
		if tmpl, err = chat.New(tcfg.ChatTemplate, tcfg.SpecialTokens()); err != nil {
			return fmt.Errorf("generate: %s: %w", o.model, err)
		}
	}
	prompts := make([][]int32, len(recs))
	for i, r := range recs {
		if prompts[i], err = generate.Tokenize(r, tmpl, tok); err != nil {
			return fmt.Errorf("generate: %w", err)
		}
	}
	m, _, err := model.Load(o.model)
	if err != nil {
		return fmt.Errorf("generate: %w", err)
	}
	for i, p := range prompts {
		for _, id := range p {
			if id < 0 || int(id) >= m.Config.VocabSize {
				return fmt.Errorf("generate: %s: token id %d outside the model's vocabulary [0, %d)", recs[i].Where, id, m.Config.VocabSize)
			}
		}
	}
	stops, err := generate.StopTokens(o.model, m.Config.EOSTokenIDs, tcfg.EOSToken, tcfg.ChatTemplate, tok)
	if err != nil {
		return err
	}

	pool := kernels.NewPool(o.threads)
	defer pool.Close()
	stderr := cmd.ErrOrStderr()
	fmt.Fprintf(stderr, "generate: %d prompts, %s, stop tokens %v, %d threads\n", len(recs), sampleDesc(sampling), stops, pool.Workers())
	var last time.Time
	res, err := generate.Run(cmd.Context(), model.NewDecoder(m, pool), tok, prompts, generate.Options{
		MaxNewTokens: o.maxNewTokens, Sampling: sampling, Seed: o.seed, StopTokens: stops,
		StopStrings: o.stop, IgnoreEOS: o.ignoreEOS, BatchSize: o.batchSize,
	}, func(p generate.Progress) {
		if p.Done < p.Total && time.Since(last) < time.Second {
			return
		}
		last = time.Now()
		s := p.Elapsed.Seconds()
		fmt.Fprintf(stderr, "generate: %d/%d answers, %d tokens in %.1fs, %.1f tokens/s (prompts %d tokens)\n",
			p.Done, p.Total, p.GeneratedTokens, s, float64(p.GeneratedTokens)/max(s, 1e-9), p.PromptTokens)
	})
	if err != nil {
		return fmt.Errorf("generate: %w", err)
	}
	meta := generate.Meta{Generator: generator}
	if o.output == "" || o.output == "-" {
		return generate.Write(cmd.OutOrStdout(), o.format, recs, res, meta)
	}
	if err := atomicfile.Write(o.output, func(w io.Writer) error { return generate.Write(w, o.format, recs, res, meta) }); err != nil {
		return fmt.Errorf("generate: %w", err)
	}
	fmt.Fprintf(stderr, "generate: wrote %d answers to %s\n", len(res), o.output)
	return nil
}

func sampleDesc(s generate.Sampling) string {
	if s.Greedy() {
		return "greedy"
	}
	return fmt.Sprintf("temperature %g, top-k %d, top-p %g", s.Temperature, s.TopK, s.TopP)
}

// runDecodeBench times KV-cache decoding for `relupo bench --mode decode`:
// 2·pairs sequences, each prefilled with a prompt of seq/4 random tokens,
// then seq/4 greedy tokens decoded one step at a time for all sequences
// together. Tokens/s counts decoded tokens over the decode phase only; the
// prefill is timed separately.
func runDecodeBench(cmd *cobra.Command, cfg model.Config, preset string, seq, pairs, steps int, pool *kernels.Pool, jsonOut bool) error {
	m := model.New(cfg)
	m.Params.Init(0, 0.02)
	B, P, T := 2*pairs, max(seq/4, 1), max(seq/4, 1)
	r := rand.New(rand.NewPCG(0, 0))
	prompts := make([][]int32, B)
	for s := range prompts {
		for range P {
			prompts[s] = append(prompts[s], int32(3+r.IntN(max(cfg.VocabSize-3, 1))))
		}
	}
	d := model.NewDecoder(m, pool)
	caches := make([]*model.KVCache, B)
	for i := range caches {
		caches[i] = d.NewCache()
	}
	run := func() (prefill, decode float64, err error) {
		for _, c := range caches {
			c.Reset()
		}
		t0 := time.Now()
		logits, err := d.Forward(caches, prompts)
		if err != nil {
			return 0, 0, err
		}
		prefill = time.Since(t0).Seconds()
		t1 := time.Now()
		in := make([][]int32, B)
		for range T {
			for s := range in {
				in[s] = []int32{int32(model.Argmax(logits[s]))}
			}
			if logits, err = d.Forward(caches, in); err != nil {
				return 0, 0, err
			}
		}
		return prefill, time.Since(t1).Seconds(), nil
	}
	if _, _, err := run(); err != nil { // warm-up
		return err
	}
	var pre, dec []float64
	for i := 0; i < steps; i++ {
		p, dt, err := run()
		if err != nil {
			return err
		}
		pre, dec = append(pre, p), append(dec, dt)
		fmt.Fprintf(os.Stderr, "[%s decode] run %d: prefill %.3fs, decode %.3fs\n", preset, i+1, p, dt)
	}
	slices.Sort(pre)
	slices.Sort(dec)
	medP, medD := pre[len(pre)/2], dec[len(dec)/2]
	res := map[string]any{
		"preset": preset, "mode": "decode", "threads": pool.Workers(), "sequences": B, "prompt_tokens": P, "new_tokens": T,
		"params_total": cfg.NumParams(), "runs_measured": len(dec),
		"decode_s_median": medD, "tokens_per_s": float64(B*T) / medD, "step_ms_median": 1000 * medD / float64(T),
		"prefill_s_median": medP, "prefill_tokens_per_s": float64(B*P) / medP,
		"peak_rss_GB": peakRSSGB(), "kernels": kernels.Describe(), "go": runtime.Version(),
	}
	if jsonOut {
		return json.NewEncoder(cmd.OutOrStdout()).Encode(res)
	}
	fmt.Fprintf(cmd.OutOrStdout(), "%s decode: %.0f tokens/s (%d sequences × %d new tokens after %d-token prompts, %.1f ms/step, median of %d); prefill %.0f tokens/s; peak RSS %.2f GB\n",
		preset, res["tokens_per_s"], B, T, P, res["step_ms_median"], len(dec), res["prefill_tokens_per_s"], res["peak_rss_GB"])
	return nil
}
