package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/relupo/relupo/judge"
	"github.com/relupo/relupo/kernels"
	"github.com/relupo/relupo/score"
	"github.com/spf13/pflag"
)

// scorerFlags choose and configure the scorer of `relupo score` and
// `relupo iterate`: a reward model, an LLM judge or a verifier.
type scorerFlags struct {
	rewardModel, rmTokenizer, rmChatTemplate     string
	maxBatchTokens, maxLength                    int
	judgeModel, judgeURL, judgePrompt, apiKeyEnv string
	cache                                        string
	noCache                                      bool
	concurrency, maxRetries, judgeMaxTokens      int
	judgeTemperature                             float64
	timeout                                      time.Duration
	verifier                                     string
}

// verifierGSM8K is the --verifier keyword for score.DefaultVerifierPattern.
const verifierGSM8K = "gsm8k"

// add registers the scorer flags. The reward model's tokenizer and chat
// template flags are named rmPrefix+"tokenizer" and rmPrefix+"chat-template"
// (iterate's own --tokenizer is the policy's). cacheDefault describes
// --cache's default.
func (s *scorerFlags) add(f *pflag.FlagSet, rmPrefix, cacheDefault string) {
	f.StringVar(&s.rewardModel, "reward-model", "", "score with this *ForSequenceClassification model folder")
	f.StringVar(&s.rmTokenizer, rmPrefix+"tokenizer", "", "reward model's tokenizer folder (default: --reward-model)")
	f.StringVar(&s.rmChatTemplate, rmPrefix+"chat-template", "", "reward model's chat template instead of its own: template text, a .jinja file or a folder")
	f.IntVar(&s.maxBatchTokens, "max-batch-tokens", 4096, "tokens per reward-model forward pass")
	f.IntVar(&s.maxLength, "max-length", 0, "longest conversation the reward model scores, in tokens (0: its max_position_embeddings)")
	f.StringVar(&s.judgeModel, "judge-model", "", "score with this judge model, sent as the request's model")
	f.StringVar(&s.judgeURL, "judge-base-url", "", "judge's OpenAI-compatible server: root, /v1 base or full /v1/chat/completions URL")
	f.StringVar(&s.judgePrompt, "judge-prompt", "", "file holding the judge's prompt (default: the built-in 1-10 rating prompt)")
	f.StringVar(&s.apiKeyEnv, "api-key-env", "OPENAI_API_KEY", "environment variable holding the judge's API key")
	f.IntVar(&s.concurrency, "concurrency", 4, "judge requests in flight at most")
	f.IntVar(&s.maxRetries, "max-retries", 6, "retries per judge request on 408/429/5xx, network errors and timeouts")
	f.DurationVar(&s.timeout, "timeout", 2*time.Minute, "time limit per judge request")
	f.IntVar(&s.judgeMaxTokens, "judge-max-tokens", 1024, "max_tokens of the judge's reply (0: not sent)")
	f.Float64Var(&s.judgeTemperature, "judge-temperature", 0, "judge's sampling temperature")
	f.StringVar(&s.cache, "cache", "", "judge ratings cache, JSON lines (default: "+cacheDefault+")")
	f.BoolVar(&s.noCache, "no-cache", false, "neither read nor write a judge cache")
	f.StringVar(&s.verifier, "verifier", "", "score by exact match of the answer this regular expression's first group extracts ('gsm8k': GSM8K's #### pattern)")
}

// check refuses flags that name no scorer, two of them, or options of
// another scorer, as usage errors of command cmd.
func (s *scorerFlags) check(cmd string) error {
	n := 0
	for _, v := range []string{s.rewardModel, s.judgeModel, s.verifier} {
		if v != "" {
			n++
		}
	}
	switch {
	case n != 1:
		return usagef("%s: give exactly one scorer: --reward-model DIR, --judge-model NAME (with --judge-base-url URL) or --verifier REGEX", cmd)
	case s.judgeModel != "" && s.judgeURL == "":
		return usagef("%s: --judge-model needs --judge-base-url, the judge's OpenAI-compatible server", cmd)
	case s.judgeModel == "" && (s.judgeURL != "" || s.judgePrompt != ""):
		return usagef("%s: --judge-base-url and --judge-prompt are for --judge-model", cmd)
	case s.rewardModel == "" && (s.rmTokenizer != "" || s.rmChatTemplate != ""):
		return usagef("%s: the reward model's tokenizer and chat template are for --reward-model", cmd)
	case s.maxBatchTokens < 1 || s.maxLength < 0 || s.concurrency < 1 || s.maxRetries < 0 || s.timeout < 0 || s.judgeMaxTokens < 0:
		return usagef("%s: --max-batch-tokens and --concurrency must be ≥ 1, --max-length, --max-retries, --timeout and --judge-max-tokens ≥ 0", cmd)
	}
	return nil
}

// verifierPattern is --verifier's regular expression.
func (s *scorerFlags) verifierPattern() string {
	if s.verifier == verifierGSM8K {
		return score.DefaultVerifierPattern
	}
	return s.verifier
}

// builtScorer is a scorer made from the flags, with what it is in words
// and what to release when done.
type builtScorer struct {
	score.Scorer
	What  string
	close []func()
}

// Close releases the scorer's model, pool and cache.
func (b *builtScorer) Close() {
	for i := len(b.close) - 1; i >= 0; i-- {
		b.close[i]()
	}
	b.close = nil
}

// build makes the scorer the flags choose (check them first). The reward
// model runs on threads workers; the judge's ratings are cached in cache
// (s.cache when set; "" keeps none) unless --no-cache; report receives
// each response that could not be scored, with its reason.
func (s *scorerFlags) build(cmd string, threads int, cache string, stderr io.Writer, report func(string)) (*builtScorer, error) {
	b := &builtScorer{}
	switch {
	case s.verifier != "":
		v, err := score.NewVerifier(s.verifierPattern())
		if err != nil {
			return nil, usagef("%s: %v", cmd, err)
		}
		b.Scorer, b.What = v, fmt.Sprintf("verifier %q", v.Pattern())
	case s.rewardModel != "":
		pool := kernels.NewPool(threads)
		rm, err := score.LoadRewardModel(s.rewardModel, score.RewardOptions{
			Pool: pool, Tokenizer: s.rmTokenizer, ChatTemplate: s.rmChatTemplate, MaxTokens: s.maxBatchTokens, MaxLength: s.maxLength,
		})
		if err != nil {
			pool.Close()
			return nil, fmt.Errorf("%s: %w", cmd, err)
		}
		rm.Report = report
		b.close = append(b.close, pool.Close, func() { rm.Close() })
		c := rm.Model.Config
		b.Scorer, b.What = rm, fmt.Sprintf("reward model %s (%s, %d layers, hidden %d, %d threads)", s.rewardModel, c.ModelType, c.NumLayers, c.HiddenSize, pool.Workers())
	default:
		text := ""
		if s.judgePrompt != "" {
			raw, err := os.ReadFile(s.judgePrompt)
			if err != nil {
				return nil, fmt.Errorf("%s: judge prompt: %w", cmd, err)
			}
			if text = string(raw); strings.TrimSpace(text) == "" {
				return nil, fmt.Errorf("%s: judge prompt %s is empty", cmd, s.judgePrompt)
			}
		}
		p, err := judge.NewPointwisePrompt(text)
		if err != nil {
			return nil, fmt.Errorf("%s: judge prompt %s: %w", cmd, s.judgePrompt, err)
		}
		key := os.Getenv(s.apiKeyEnv)
		if key == "" {
			fmt.Fprintf(stderr, "%s: $%s is not set; sending no Authorization header\n", cmd, s.apiKeyEnv)
		}
		j := &score.Judge{
			Client: &judge.Client{URL: s.judgeURL, Model: s.judgeModel, APIKey: key, MaxRetries: s.maxRetries,
				Backoff: time.Second, MaxBackoff: time.Minute, Timeout: s.timeout, MaxTokens: s.judgeMaxTokens, Temperature: s.judgeTemperature,
				Note: func(msg string) { fmt.Fprintf(stderr, "%s: %s\n", cmd, msg) }},
			Prompt: p, JudgeModel: s.judgeModel, Concurrency: s.concurrency, Report: report,
		}
		if s.cache != "" {
			cache = s.cache
		}
		if !s.noCache && cache != "" {
			c, err := judge.OpenCache(cache)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", cmd, err)
			}
			b.close = append(b.close, func() { c.Close() })
			fmt.Fprintf(stderr, "%s: judge cache %s (%d ratings)\n", cmd, cache, c.Len())
			j.Cache = c
		}
		b.Scorer, b.What = j, fmt.Sprintf("judge %s at %s", s.judgeModel, s.judgeURL)
	}
	return b, nil
}

// failureLog keeps the count of responses that could not be scored and the
// first few reasons, safely from the scorers' goroutines.
type failureLog struct {
	mu      sync.Mutex
	n       int
	reasons []string
}

// failureShown is how many failed responses are listed with their reasons.
const failureShown = 5

// add records one failure.
func (l *failureLog) add(reason string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.n++
	if len(l.reasons) < failureShown {
		l.reasons = append(l.reasons, reason)
	}
}

// print lists the reasons kept and how many more there were.
func (l *failureLog) print(w io.Writer) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, r := range l.reasons {
		fmt.Fprintf(w, "  %s\n", r)
	}
	if l.n > len(l.reasons) {
		fmt.Fprintf(w, "  … and %d more\n", l.n-len(l.reasons))
	}
}
