package main

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"time"

	"github.com/relupo/relupo/judge"
	"github.com/spf13/cobra"
)

// judgeOptions are the flags of `relupo judge`.
type judgeOptions struct {
	format, baseline, candidate, questions, difficulty, gamed  string
	url, model, apiKeyEnv, cache, output                       string
	concurrency, maxRetries, maxTokens, topLogprobs, arenaBoot int
	seed                                                       uint64
	temperature                                                float64
	timeout                                                    time.Duration
	noCache, jsonOut                                           bool
}

func newJudgeCmd() *cobra.Command {
	var o judgeOptions
	cmd := &cobra.Command{
		Use:   "judge --baseline FILE --candidate FILE --judge-url URL --judge-model NAME",
		Short: "Judge two models' answers as AlpacaEval 2 or Arena-Hard do, with their statistics",
		Long: `Asks a judge model, through any OpenAI-compatible /v1/chat/completions endpoint (a
local vLLM or llama.cpp server, or a hosted API), to compare two models' answers, and
reports the statistics of the leaderboard the --format follows.

--format alpaca-eval (default): AlpacaEval 2's weighted_alpaca_eval_gpt4_turbo
annotator. Files: AlpacaEval's JSON list [{"instruction", "output", "generator",
"dataset"}] or JSON lines with "instruction" and "output"; answers are matched by
instruction, in the candidate's order. Each question shows the two answers as "m" and
"M" in AlpacaEval's prompt, in an order chosen per item from --seed, and asks for one
token with the log-probabilities of the top 5 (max_tokens 1, temperature 1, logprobs,
top_logprobs 5). The preference is P(m) / (P(m) + P(M)) from those log-probabilities
(AlpacaEval's weighted verdict); when the endpoint returns none for "m" or "M" the
letter replied is used instead (a tie counts 0.5), and the output says how often.
Identical answers are draws without a question. Reported, as AlpacaEval computes them:
the win rate (mean preference) and its standard error, wins/losses/draws, the discrete
win rate, and the length-controlled win rate (LC) with its standard error.

The LC is AlpacaEval's length_controlled_v1 GLM (L1 logistic regression of the
preference on tanh of the standardized length difference, the instruction's difficulty
and the model, C chosen by 5-fold grouped cross-validation, the "gamed" baselines'
rows added at weight 0.1) only with --instruction-difficulty and --gamed, AlpacaEval's
instruction_difficulty.csv and df_gamed.csv (from its Hugging Face dataset
tatsu-lab/alpaca_eval; CC BY-NC 4.0). Difficulties are looked up by the position of
the baseline's answer in --baseline, so the baseline must be AlpacaEval's reference
outputs in their order. Without them the LC is a simplified one and says so: with
--instruction-difficulty only, AlpacaEval's length_controlled_noreg; with neither,
length_controlled_minimal (length and model terms only). On AlpacaEval's recorded
verdicts these are up to 15 and 27 points off the leaderboard's LC.

--format arena-hard: Arena-Hard v0.1's judge (its system prompt and template). Needs
--questions (question.jsonl); answer files are Arena-Hard model_answer files (or relupo
generate --format arena_hard), matched by question. Each question is judged twice, the
baseline shown first as A, then the candidate; a reply without a [[...]] verdict is
continued once. Verdicts A>>B, A>B, A=B, B>A, B>>A become battles, a significant one
counting 3; the score is the candidate's Bradley–Terry win rate against the baseline
with a 95% interval from 100 bootstrap resamples (seeded by --seed).

Requests run --concurrency at a time and are retried with exponential backoff on 408,
429, 5xx, network errors and timeouts. Every judgment is appended to --cache (default:
the candidate file + ".judgments.jsonl"), keyed by a hash of the prompt, judge model,
question and both answers in their order, so an interrupted run resumes where it
stopped. The API key is read from the environment variable named by --api-key-env and
never printed; without it no Authorization header is sent (local servers). --output
writes every judgment in the suite's own format: AlpacaEval's annotations (preference
1..2, null when unreadable) or Arena-Hard's model_judgment lines.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runJudge(cmd, o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.format, "format", judge.FormatAlpacaEval, "alpaca-eval or arena-hard")
	f.StringVar(&o.baseline, "baseline", "", "the baseline's answers (required)")
	f.StringVar(&o.candidate, "candidate", "", "the candidate's answers (required)")
	f.StringVar(&o.questions, "questions", "", "Arena-Hard's question.jsonl (arena-hard)")
	f.StringVar(&o.difficulty, "instruction-difficulty", "", "AlpacaEval's instruction_difficulty.csv (alpaca-eval LC)")
	f.StringVar(&o.gamed, "gamed", "", "AlpacaEval's df_gamed.csv (alpaca-eval LC)")
	f.StringVar(&o.url, "judge-url", "", "OpenAI-compatible server: root, /v1 base or full /v1/chat/completions URL (required)")
	f.StringVar(&o.model, "judge-model", "", "judge model name sent to the endpoint (required)")
	f.StringVar(&o.apiKeyEnv, "api-key-env", "OPENAI_API_KEY", "environment variable holding the API key")
	f.IntVar(&o.concurrency, "concurrency", 4, "requests in flight at most")
	f.Uint64Var(&o.seed, "seed", 0, "seed of the per-item answer order (alpaca-eval) and of the bootstrap (arena-hard)")
	f.StringVar(&o.cache, "cache", "", `judgments cache, JSON lines (default: the candidate file + ".judgments.jsonl")`)
	f.BoolVar(&o.noCache, "no-cache", false, "neither read nor write a judgments cache")
	f.IntVar(&o.maxRetries, "max-retries", 6, "retries per request on 408/429/5xx, network errors and timeouts")
	f.DurationVar(&o.timeout, "timeout", 2*time.Minute, "time limit per request")
	f.IntVar(&o.maxTokens, "max-tokens", -1, "max_tokens of the judge's reply (-1: the format's, 1 or 4096; 0: not sent)")
	f.Float64Var(&o.temperature, "temperature", -1, "sampling temperature (-1: the format's, 1 or 0)")
	f.IntVar(&o.topLogprobs, "top-logprobs", -1, "top_logprobs asked for (-1: the format's, 5 or none; 0: no logprobs)")
	f.IntVar(&o.arenaBoot, "bootstrap-rounds", 100, "bootstrap resamples of the Arena-Hard interval")
	f.StringVar(&o.output, "output", "", "write every judgment in the suite's format (AlpacaEval annotations or Arena-Hard judgments) to this file")
	f.BoolVar(&o.jsonOut, "json", false, "print the summary as one JSON object")
	return cmd
}

func runJudge(cmd *cobra.Command, o judgeOptions) error {
	if o.baseline == "" || o.candidate == "" || o.url == "" || o.model == "" {
		return usagef("judge: --baseline, --candidate, --judge-url and --judge-model are required (see 'relupo judge --help')")
	}
	maxTokens, temperature, topLogprobs, err := judge.FormatDefaults(o.format)
	if err != nil {
		return usagef("%v", err)
	}
	if o.concurrency < 1 || o.maxRetries < 0 || o.maxTokens < -1 || o.timeout < 0 || o.topLogprobs < -1 || o.arenaBoot < 1 {
		return usagef("judge: --concurrency and --bootstrap-rounds must be ≥ 1; --max-retries and --timeout ≥ 0; --max-tokens and --top-logprobs ≥ 0 (or -1)")
	}
	if o.format == judge.FormatArenaHard && o.questions == "" {
		return usagef("judge: --format arena-hard needs --questions (Arena-Hard's question.jsonl)")
	}
	if o.format != judge.FormatArenaHard && o.questions != "" {
		return usagef("judge: --questions is for --format arena-hard")
	}
	if o.maxTokens >= 0 {
		maxTokens = o.maxTokens
	}
	if o.temperature >= 0 {
		temperature = o.temperature
	}
	if o.topLogprobs >= 0 {
		topLogprobs = o.topLogprobs
	}
	stderr := cmd.ErrOrStderr()
	key := os.Getenv(o.apiKeyEnv)
	var last time.Time
	r, err := judge.Job{
		Format: o.format, Baseline: o.baseline, Candidate: o.candidate, Questions: o.questions,
		Difficulty: o.difficulty, Gamed: o.gamed,
		Client: judge.Client{URL: o.url, Model: o.model, APIKey: key, MaxRetries: o.maxRetries,
			Timeout: o.timeout, MaxTokens: maxTokens, Temperature: temperature, TopLogprobs: topLogprobs,
			Note: func(s string) { fmt.Fprintf(stderr, "judge: %s\n", s) }},
		Concurrency: o.concurrency, Seed: o.seed, ArenaRounds: o.arenaBoot,
		Cache: o.cache, NoCache: o.noCache, Output: o.output,
		OnMatch: func(items int, missing []string) {
			if len(missing) > 0 {
				fmt.Fprintf(stderr, "judge: %d candidate answers have no baseline answer to the same question and are skipped (first: %q)\n", len(missing), missing[0])
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
	if r.Format == judge.FormatArenaHard {
		return printArena(cmd, o, r)
	}
	return printAlpaca(cmd, o, r)
}

// lcNote says what the length-controlled win rate is, by the GLM fitted.
func lcNote(glm string) string {
	switch glm {
	case judge.GLMv1:
		return "AlpacaEval's length_controlled_v1, the leaderboard's"
	case judge.GLMNoReg:
		return "simplified: without --gamed, not the leaderboard's; up to 15 points off it"
	}
	return "simplified: without --instruction-difficulty and --gamed, not the leaderboard's; up to 27 points off it"
}

// finite returns v, or nil for NaN (JSON has no NaN).
func finite(v float64) any {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return nil
	}
	return v
}

func printAlpaca(cmd *cobra.Command, o judgeOptions, r judge.Report) error {
	sum, out := r.Summary, cmd.OutOrStdout()
	if o.jsonOut {
		return json.NewEncoder(out).Encode(map[string]any{
			"format": r.Format, "baseline": r.Baseline, "candidate": r.Candidate, "judge_model": o.model,
			"n_total": sum.N, "n_wins": sum.Wins, "n_wins_base": sum.Losses, "n_draws": sum.Draws,
			"n_invalid": sum.Invalid, "n_failed": sum.Failed,
			"n_logprobs": sum.ByLogprobs, "n_letter": sum.ByLetter, "n_identical": sum.Identical,
			"win_rate": finite(sum.WinRate), "standard_error": finite(sum.StandardError),
			"discrete_win_rate":         finite(sum.DiscreteWinRate),
			"length_controlled_winrate": finite(sum.LCWinRate), "lc_standard_error": finite(sum.LCStandardError),
			"lc_glm": sum.LC.GLM, "lc_c": sum.LC.C,
			"length_coef": finite(sum.LC.LengthCoef), "difficulty_coef": finite(sum.LC.DifficultyCoef), "model_coef": finite(sum.LC.ModelCoef),
		})
	}
	fmt.Fprintf(out, "%s vs %s, judged by %s: %d items", r.Candidate, r.Baseline, o.model, sum.N)
	if sum.Invalid > 0 {
		fmt.Fprintf(out, " (%d unreadable verdicts left out)", sum.Invalid)
	}
	fmt.Fprintf(out, "\npreferences: %d from log-probabilities, %d from the letter alone, %d identical answers (draws)\n", sum.ByLogprobs, sum.ByLetter, sum.Identical)
	fmt.Fprintf(out, "win rate                   %6.2f%% ± %.2f  (%d wins, %d losses, %d draws; discrete %.2f%%)\n", sum.WinRate, sum.StandardError, sum.Wins, sum.Losses, sum.Draws, sum.DiscreteWinRate)
	fmt.Fprintf(out, "length-controlled win rate %6.2f%% ± %.2f  (%s; weights length %.3f, difficulty %.3f, model %.3f; C %.3g)\n",
		sum.LCWinRate, sum.LCStandardError, lcNote(sum.LC.GLM), sum.LC.LengthCoef, sum.LC.DifficultyCoef, sum.LC.ModelCoef, sum.LC.C)
	return nil
}

func printArena(cmd *cobra.Command, o judgeOptions, r judge.Report) error {
	a, out := r.Arena, cmd.OutOrStdout()
	oc := a.Outcomes
	if o.jsonOut {
		return json.NewEncoder(out).Encode(map[string]any{
			"format": r.Format, "baseline": r.Baseline, "candidate": r.Candidate, "judge_model": o.model,
			"questions": len(r.Items), "games": a.Games, "n_invalid": a.Invalid, "battles": a.Battles,
			"much_better": oc[judge.ArenaMuchBetter], "better": oc[judge.ArenaBetter], "tie": oc[judge.ArenaTie],
			"worse": oc[judge.ArenaWorse], "much_worse": oc[judge.ArenaMuchWorse],
			"score": finite(a.Score), "lower": finite(a.Lower), "upper": finite(a.Upper), "bootstrap_rounds": a.Rounds,
		})
	}
	fmt.Fprintf(out, "%s vs %s, judged by %s: %d questions, %d games", r.Candidate, r.Baseline, o.model, len(r.Items), a.Games)
	if a.Invalid > 0 {
		fmt.Fprintf(out, " (%d without a verdict left out)", a.Invalid)
	}
	fmt.Fprintf(out, "\ncandidate much better %d, better %d, tie %d, worse %d, much worse %d (%d battles)\n",
		oc[judge.ArenaMuchBetter], oc[judge.ArenaBetter], oc[judge.ArenaTie], oc[judge.ArenaWorse], oc[judge.ArenaMuchWorse], a.Battles)
	fmt.Fprintf(out, "score %.1f  95%% CI (%+.1f, %+.1f)  (Bradley–Terry win rate against the baseline; %d bootstrap rounds)\n",
		a.Score, a.Lower-a.Score, a.Upper-a.Score, a.Rounds)
	return nil
}
