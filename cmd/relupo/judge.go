package main

import (
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/relupo/relupo/judge"
	"github.com/spf13/cobra"
)

// judgeOptions are the flags of `relupo judge`.
type judgeOptions struct {
	baseline, candidate, url, model, apiKeyEnv, cache, output string
	concurrency, maxRetries, maxTokens                        int
	seed                                                      uint64
	timeout                                                   time.Duration
	noCache, jsonOut                                          bool
}

func newJudgeCmd() *cobra.Command {
	var o judgeOptions
	cmd := &cobra.Command{
		Use:   "judge --baseline FILE --candidate FILE --judge-url URL --judge-model NAME",
		Short: "Compare two models' answers with an LLM judge (AlpacaEval-style win rates)",
		Long: `Asks a judge model, through any OpenAI-compatible /v1/chat/completions endpoint (a
local vLLM or llama.cpp server, or a hosted API), which of two answers to each
instruction is better, and reports the candidate's win rate against the baseline.

Files: AlpacaEval's JSON list [{"instruction", "output", "generator", "dataset"}] or JSON
lines with "instruction" and "output" (relupo generate --format jsonl or alpaca_eval).
Answers are matched by instruction, in the candidate's order.

Each question shows the two answers as "m" and "M" in an order chosen per item from
--seed (half the items swapped), cancelling the judge's position bias, and asks for a
one-character verdict. Requests run --concurrency at a time and are retried with
exponential backoff on 408, 429, 5xx, network errors and timeouts. Every judgment is
appended to --cache (default: the candidate file + ".judgments.jsonl"), keyed by a hash
of the prompt version, judge model, instruction, both answers and their order, so an
interrupted run resumes where it stopped. The API key is read from the environment
variable named by --api-key-env and never printed; without it no Authorization header
is sent (local servers).

Reported: the win rate (a draw counts one half) with its standard error, and AlpacaEval
2's length-controlled win rate: a logistic regression of the preference on the model
identity and tanh of the standardized length difference, predicted with the length
term at zero. AlpacaEval also fits per-instruction difficulties across its whole
leaderboard and regularizes with two "gamed" baselines; those need data beyond two
files and are left out, so the LC figure can differ from the leaderboard's by a point
or two. Unparseable verdicts are counted and left out.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runJudge(cmd, o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.baseline, "baseline", "", "the baseline's answers (required)")
	f.StringVar(&o.candidate, "candidate", "", "the candidate's answers (required)")
	f.StringVar(&o.url, "judge-url", "", "OpenAI-compatible server: root, /v1 base or full /v1/chat/completions URL (required)")
	f.StringVar(&o.model, "judge-model", "", "judge model name sent to the endpoint (required)")
	f.StringVar(&o.apiKeyEnv, "api-key-env", "OPENAI_API_KEY", "environment variable holding the API key")
	f.IntVar(&o.concurrency, "concurrency", 4, "requests in flight at most")
	f.Uint64Var(&o.seed, "seed", 0, "seed of the per-item answer order")
	f.StringVar(&o.cache, "cache", "", `judgments cache, JSON lines (default: the candidate file + ".judgments.jsonl")`)
	f.BoolVar(&o.noCache, "no-cache", false, "neither read nor write a judgments cache")
	f.IntVar(&o.maxRetries, "max-retries", 6, "retries per request on 408/429/5xx, network errors and timeouts")
	f.DurationVar(&o.timeout, "timeout", 2*time.Minute, "time limit per request")
	f.IntVar(&o.maxTokens, "max-tokens", 0, "max_tokens of the judge's reply (0: not sent)")
	f.StringVar(&o.output, "output", "", "write every judgment as a JSON list (AlpacaEval-style annotations) to this file")
	f.BoolVar(&o.jsonOut, "json", false, "print the summary as one JSON object")
	return cmd
}

func runJudge(cmd *cobra.Command, o judgeOptions) error {
	if o.baseline == "" || o.candidate == "" || o.url == "" || o.model == "" {
		return usagef("judge: --baseline, --candidate, --judge-url and --judge-model are required (see 'relupo judge --help')")
	}
	if o.concurrency < 1 || o.maxRetries < 0 || o.maxTokens < 0 || o.timeout < 0 {
		return usagef("judge: --concurrency must be ≥ 1; --max-retries, --max-tokens and --timeout ≥ 0")
	}
	stderr := cmd.ErrOrStderr()
	key := os.Getenv(o.apiKeyEnv)
	var last time.Time
	r, err := judge.Job{
		Baseline: o.baseline, Candidate: o.candidate,
		Client: judge.Client{URL: o.url, Model: o.model, APIKey: key, MaxRetries: o.maxRetries,
			Timeout: o.timeout, MaxTokens: o.maxTokens},
		Concurrency: o.concurrency, Seed: o.seed, Cache: o.cache, NoCache: o.noCache, Output: o.output,
		OnMatch: func(items int, missing []string) {
			if len(missing) > 0 {
				fmt.Fprintf(stderr, "judge: %d candidate answers have no baseline answer to the same instruction and are skipped (first: %q)\n", len(missing), missing[0])
			}
			if items > 0 && key == "" {
				fmt.Fprintf(stderr, "judge: $%s is not set; sending no Authorization header\n", o.apiKeyEnv)
			}
		},
		OnCache: func(path string, judgments int) {
			fmt.Fprintf(stderr, "judge: cache %s (%d judgments)\n", path, judgments)
		},
		OnDone: func(p judge.Progress) {
			if p.Done < p.Total && time.Since(last) < time.Second {
				return
			}
			last = time.Now()
			fmt.Fprintf(stderr, "judge: %d/%d items (%d asked, %d cached, %d failed), %.1f requests/s\n",
				p.Done, p.Total, p.Asked, p.Done-p.Asked, p.Failed, float64(p.Asked)/max(p.Elapsed.Seconds(), 1e-9))
		},
	}.Run(cmd.Context())
	if err != nil {
		return err
	}
	sum, out := r.Summary, cmd.OutOrStdout()
	if o.jsonOut {
		return json.NewEncoder(out).Encode(map[string]any{
			"baseline": r.Baseline, "candidate": r.Candidate, "judge_model": o.model,
			"n_total": sum.N, "n_wins": sum.Wins, "n_wins_base": sum.Losses, "n_draws": sum.Draws,
			"n_invalid": sum.Invalid, "n_failed": sum.Failed,
			"win_rate": sum.WinRate, "standard_error": sum.StandardError,
			"length_controlled_winrate": sum.LCWinRate, "lc_standard_error": sum.LCStandardError,
			"length_coef": sum.LengthCoef, "model_coef": sum.ModelCoef,
		})
	}
	fmt.Fprintf(out, "%s vs %s, judged by %s: %d items", r.Candidate, r.Baseline, o.model, sum.N)
	if sum.Invalid > 0 {
		fmt.Fprintf(out, " (%d unparseable verdicts left out)", sum.Invalid)
	}
	fmt.Fprintf(out, "\nwin rate                  %6.2f%% ± %.2f  (%d wins, %d losses, %d draws)\n", sum.WinRate, sum.StandardError, sum.Wins, sum.Losses, sum.Draws)
	fmt.Fprintf(out, "length-controlled win rate %5.2f%% ± %.2f  (length coefficient %.3f)\n", sum.LCWinRate, sum.LCStandardError, sum.LengthCoef)
	return nil
}
