package main

import (
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/relupo/relupo/internal/atomicfile"
	"github.com/relupo/relupo/judge"
	"github.com/relupo/relupo/kernels"
	"github.com/relupo/relupo/score"
	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"
)

// scoreOptions are the flags of `relupo score`.
type scoreOptions struct {
	input, output                                string
	rewardModel, tokenizer, chatTemplate         string
	judgeModel, judgeURL, judgePrompt, apiKeyEnv string
	cache, verifier                              string
	threads, maxBatchTokens, maxLength           int
	concurrency, maxRetries, judgeMaxTokens      int
	judgeTemperature                             float64
	timeout                                      time.Duration
	noCache, progress                            bool
}

// verifierGSM8K is the --verifier keyword for score.DefaultVerifierPattern.
const verifierGSM8K = "gsm8k"

func newScoreCmd() *cobra.Command {
	var o scoreOptions
	cmd := &cobra.Command{
		Use:   "score --input samples.jsonl --output scored.jsonl (--reward-model DIR | --judge-model NAME --judge-base-url URL | --verifier REGEX)",
		Short: "Score sampled responses with a reward model, an LLM judge or an answer verifier",
		Long: `Scores every response of every row of --input, the file 'relupo generate
--num-return-sequences K' writes: JSON lines {"id", "prompt", "responses": [...],
"reference"}, "prompt" a string or a list of {"role", "content"} messages ("messages" is
accepted too). It writes the same rows to --output with "scores": one number per
response, null where the response could not be scored; other fields are kept. Give
exactly one scorer:

--reward-model DIR: a Hugging Face LlamaForSequenceClassification,
MistralForSequenceClassification, Qwen2ForSequenceClassification (or Qwen3's, Gemma-2's,
Gemma-3's) folder with one label: config.json, weights holding score.weight [1, hidden]
and no lm_head, tokenizer files with a chat template. The prompt and the response (as
the assistant's message) are rendered with the reward model's chat template and
tokenized as apply_chat_template(tokenize=True) does; the score is the head applied to
the final normed hidden state at the last token that is not config.json's pad_token_id,
as transformers reads it. Responses sharing a prompt share its computation. A
conversation longer than --max-length fails.

--judge-model NAME --judge-base-url URL: an LLM judge behind an OpenAI-compatible
/v1/chat/completions endpoint rates each response from 1 to 10. The request is the
built-in prompt or --judge-prompt FILE, a text file with the placeholders {question}
(the last user message) or {conversation} (the whole prompt), and {answer}; the rating
is the reply's last "[[N]]" (or "Rating: N") and must lie in [1, 10]. A reply without
one, or a request that still fails after --max-retries retries, fails. Ratings are
cached in --cache (default: --output + ".judgments.jsonl"), so a rerun asks only for
what is missing. The API key is read from the variable --api-key-env names.

--verifier REGEX: 1 when the final answer the pattern's first capture group extracts
from the response equals the row's "reference" (or "answer"), else 0; the pattern also
extracts the reference's answer when it matches it (GSM8K's "#### 42"), else the whole
reference is the answer. Numbers compare by value after commas are removed (1,000 =
1000 = 1000.0); other answers as text, white space at the ends ignored. A response
without a match scores 0. --verifier gsm8k is GSM8K's pattern '` + score.DefaultVerifierPattern + `'.

Responses that fail are scored null, counted and reported (the first few with their
reasons); the command fails only when none could be scored. --output is written
atomically.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runScore(cmd, o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.input, "input", "", "samples to score: JSON lines of prompt and responses (required)")
	f.StringVar(&o.output, "output", "", "scored rows, JSON lines (required)")
	f.StringVar(&o.rewardModel, "reward-model", "", "score with this *ForSequenceClassification model folder")
	f.StringVar(&o.tokenizer, "tokenizer", "", "reward model's tokenizer folder (default: --reward-model)")
	f.StringVar(&o.chatTemplate, "chat-template", "", "reward model's chat template instead of its own: template text, a .jinja file or a folder")
	f.IntVar(&o.threads, "threads", 0, "worker threads of the reward model (0: all cores)")
	f.IntVar(&o.maxBatchTokens, "max-batch-tokens", 4096, "tokens per reward-model forward pass")
	f.IntVar(&o.maxLength, "max-length", 0, "longest conversation the reward model scores, in tokens (0: its max_position_embeddings)")
	f.StringVar(&o.judgeModel, "judge-model", "", "score with this judge model, sent as the request's model")
	f.StringVar(&o.judgeURL, "judge-base-url", "", "judge's OpenAI-compatible server: root, /v1 base or full /v1/chat/completions URL")
	f.StringVar(&o.judgePrompt, "judge-prompt", "", "file holding the judge's prompt (default: the built-in 1-10 rating prompt)")
	f.StringVar(&o.apiKeyEnv, "api-key-env", "OPENAI_API_KEY", "environment variable holding the judge's API key")
	f.IntVar(&o.concurrency, "concurrency", 4, "judge requests in flight at most")
	f.IntVar(&o.maxRetries, "max-retries", 6, "retries per judge request on 408/429/5xx, network errors and timeouts")
	f.DurationVar(&o.timeout, "timeout", 2*time.Minute, "time limit per judge request")
	f.IntVar(&o.judgeMaxTokens, "judge-max-tokens", 1024, "max_tokens of the judge's reply (0: not sent)")
	f.Float64Var(&o.judgeTemperature, "judge-temperature", 0, "judge's sampling temperature")
	f.StringVar(&o.cache, "cache", "", `judge ratings cache, JSON lines (default: --output + ".judgments.jsonl")`)
	f.BoolVar(&o.noCache, "no-cache", false, "neither read nor write a judge cache")
	f.StringVar(&o.verifier, "verifier", "", "score by exact match of the answer this regular expression's first group extracts ('gsm8k': GSM8K's #### pattern)")
	f.BoolVar(&o.progress, "progress", true, "a live progress bar on a terminal (false: plain lines)")
	return cmd
}

// failureShown is how many failed responses score lists with their reasons.
const failureShown = 5

func runScore(cmd *cobra.Command, o scoreOptions) error {
	if o.input == "" || o.output == "" {
		return usagef("score: --input and --output are required (see 'relupo score --help')")
	}
	n := 0
	for _, s := range []string{o.rewardModel, o.judgeModel, o.verifier} {
		if s != "" {
			n++
		}
	}
	if n != 1 {
		return usagef("score: give exactly one scorer: --reward-model DIR, --judge-model NAME (with --judge-base-url URL) or --verifier REGEX")
	}
	if o.judgeModel != "" && o.judgeURL == "" {
		return usagef("score: --judge-model needs --judge-base-url, the judge's OpenAI-compatible server")
	}
	if o.judgeModel == "" && (o.judgeURL != "" || o.judgePrompt != "") {
		return usagef("score: --judge-base-url and --judge-prompt are for --judge-model")
	}
	if o.rewardModel == "" && (o.tokenizer != "" || o.chatTemplate != "") {
		return usagef("score: --tokenizer and --chat-template are for --reward-model")
	}
	if o.threads < 0 || o.threads > kernels.MaxWorkers() || o.maxBatchTokens < 1 || o.maxLength < 0 || o.concurrency < 1 || o.maxRetries < 0 || o.timeout < 0 || o.judgeMaxTokens < 0 {
		return usagef("score: --threads must be in [0, %d], --max-batch-tokens and --concurrency ≥ 1, --max-length, --max-retries, --timeout and --judge-max-tokens ≥ 0", kernels.MaxWorkers())
	}
	stderr := cmd.ErrOrStderr()
	f, err := os.Open(o.input)
	if err != nil {
		return fmt.Errorf("score: %w", err)
	}
	rows, err := score.ReadRows(f, o.input)
	f.Close()
	if err != nil {
		return fmt.Errorf("score: %w", err)
	}
	total := 0
	for _, r := range rows {
		total += len(r.Responses)
	}

	var mu sync.Mutex
	var reasons []string
	failures := 0
	report := func(s string) {
		mu.Lock()
		defer mu.Unlock()
		failures++
		if len(reasons) < failureShown {
			reasons = append(reasons, s)
		}
	}
	var scorer score.Scorer
	var what string
	switch {
	case o.verifier != "":
		pattern := o.verifier
		if pattern == verifierGSM8K {
			pattern = score.DefaultVerifierPattern
		}
		v, err := score.NewVerifier(pattern)
		if err != nil {
			return usagef("%v", err)
		}
		scorer, what = v, fmt.Sprintf("verifier %q", v.Pattern())
	case o.rewardModel != "":
		pool := kernels.NewPool(o.threads)
		defer pool.Close()
		rm, err := score.LoadRewardModel(o.rewardModel, score.RewardOptions{
			Pool: pool, Tokenizer: o.tokenizer, ChatTemplate: o.chatTemplate, MaxTokens: o.maxBatchTokens, MaxLength: o.maxLength,
		})
		if err != nil {
			return err
		}
		defer rm.Close()
		rm.Report = report
		c := rm.Model.Config
		scorer, what = rm, fmt.Sprintf("reward model %s (%s, %d layers, hidden %d, %d threads)", o.rewardModel, c.ModelType, c.NumLayers, c.HiddenSize, pool.Workers())
	default:
		text := ""
		if o.judgePrompt != "" {
			b, err := os.ReadFile(o.judgePrompt)
			if err != nil {
				return fmt.Errorf("score: judge prompt: %w", err)
			}
			text = string(b)
			if strings.TrimSpace(text) == "" {
				return fmt.Errorf("score: judge prompt %s is empty", o.judgePrompt)
			}
		}
		p, err := judge.NewPointwisePrompt(text)
		if err != nil {
			return fmt.Errorf("score: judge prompt %s: %w", o.judgePrompt, err)
		}
		key := os.Getenv(o.apiKeyEnv)
		if key == "" {
			fmt.Fprintf(stderr, "score: $%s is not set; sending no Authorization header\n", o.apiKeyEnv)
		}
		j := &score.Judge{
			Client: &judge.Client{URL: o.judgeURL, Model: o.judgeModel, APIKey: key, MaxRetries: o.maxRetries,
				Backoff: time.Second, MaxBackoff: time.Minute, Timeout: o.timeout, MaxTokens: o.judgeMaxTokens, Temperature: o.judgeTemperature,
				Note: func(s string) { fmt.Fprintf(stderr, "score: %s\n", s) }},
			Prompt: p, JudgeModel: o.judgeModel, Concurrency: o.concurrency, Report: report,
		}
		if !o.noCache {
			path := o.cache
			if path == "" {
				path = o.output + ".judgments.jsonl"
			}
			c, err := judge.OpenCache(path)
			if err != nil {
				return fmt.Errorf("score: %w", err)
			}
			defer c.Close()
			fmt.Fprintf(stderr, "score: judge cache %s (%d ratings)\n", path, c.Len())
			j.Cache = c
		}
		scorer, what = j, fmt.Sprintf("judge %s at %s", o.judgeModel, o.judgeURL)
	}
	fmt.Fprintf(stderr, "score: %d rows, %d responses, with the %s\n", len(rows), total, what)

	prog := newCountProgress(stderr, "score", "rows", o.progress)
	failed, err := scorer.Score(cmd.Context(), rows, prog.update)
	prog.finish()
	if err != nil {
		return err
	}
	if failed > 0 {
		fmt.Fprintf(stderr, "score: %d of %d responses could not be scored (null in the output):\n", failed, total)
		for _, r := range reasons {
			fmt.Fprintf(stderr, "  %s\n", r)
		}
		if failures > len(reasons) {
			fmt.Fprintf(stderr, "  … and %d more\n", failures-len(reasons))
		}
	}
	if failed == total {
		return errors.New("score: no response could be scored")
	}
	if err := atomicfile.Write(o.output, func(w io.Writer) error { return score.WriteRows(w, rows) }); err != nil {
		return fmt.Errorf("score: %w", err)
	}
	fmt.Fprintf(stderr, "score: wrote %d rows to %s: %s\n", len(rows), o.output, scoreSummary(rows))
	return nil
}

// scoreSummary is the mean and spread of the scores and how many there are.
func scoreSummary(rows []score.Row) string {
	var n int
	var sum, sq float64
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, r := range rows {
		for _, s := range r.Scores {
			if math.IsNaN(s) || math.IsInf(s, 0) {
				continue
			}
			n++
			sum += s
			sq += s * s
			lo, hi = min(lo, s), max(hi, s)
		}
	}
	if n == 0 {
		return "no scores"
	}
	mean := sum / float64(n)
	sd := math.Sqrt(max(sq/float64(n)-mean*mean, 0))
	return fmt.Sprintf("%d scores, mean %.4g, std %.4g, min %.4g, max %.4g", n, mean, sd, lo, hi)
}

// countProgress shows how many of a total are done: a live bar on a
// terminal (when live), otherwise a line at most once a second and at the
// end.
type countProgress struct {
	w          io.Writer
	name, unit string
	bar        *progressbar.ProgressBar
	live       bool
	mu         sync.Mutex
	last       time.Time
	start      time.Time
	done       int
}

func newCountProgress(w io.Writer, name, unit string, live bool) *countProgress {
	p := &countProgress{w: w, name: name, unit: unit, start: time.Now()}
	if f, ok := w.(*os.File); ok && live && term.IsTerminal(int(f.Fd())) {
		p.live = true
	}
	return p
}

func (p *countProgress) update(done, total int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done = done
	if p.live {
		if p.bar == nil {
			p.bar = progressbar.NewOptions(total,
				progressbar.OptionSetWriter(p.w),
				progressbar.OptionSetDescription(p.name+" "+p.unit),
				progressbar.OptionShowCount(),
				progressbar.OptionSetPredictTime(true),
				progressbar.OptionSetWidth(24),
				progressbar.OptionThrottle(100*time.Millisecond),
				progressbar.OptionClearOnFinish(),
			)
		}
		p.bar.Set(done)
		return
	}
	if done < total && time.Since(p.last) < time.Second {
		return
	}
	p.last = time.Now()
	fmt.Fprintf(p.w, "%s: %d/%d %s, %.1fs\n", p.name, done, total, p.unit, time.Since(p.start).Seconds())
}

func (p *countProgress) finish() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.bar != nil {
		p.bar.Finish()
	}
}
