package main

import (
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"sync"
	"time"

	"github.com/relupo/relupo/internal/atomicfile"
	"github.com/relupo/relupo/kernels"
	"github.com/relupo/relupo/score"
	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"
)

// scoreOptions are the flags of `relupo score`.
type scoreOptions struct {
	input, output string
	scorer        scorerFlags
	threads       int
	progress      bool
}

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
as transformers reads it. ArmoRM (RLHFlow/ArmoRM-Llama3-8B-v0.1, the judge of the
paper's *-ultrafeedback-armorm data; config.json's LlamaForRewardModelWithGating) is
read natively, without its custom code: its 19 objectives at the token before the first
pad id, mixed by reward_transform_matrix and weighted by its gating network over the
hidden state where the prompt ends (<|eot_id|><|start_header_id|>assistant<|end_header_id|>
then two newlines; a conversation without it fails). Responses sharing a prompt share
its computation. A conversation longer than --max-length fails.

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
	o.scorer.add(f, "", `--output + ".judgments.jsonl"`)
	f.IntVar(&o.threads, "threads", 0, "worker threads of the reward model (0: all cores)")
	f.BoolVar(&o.progress, "progress", true, "a live progress bar on a terminal (false: plain lines)")
	return cmd
}

func runScore(cmd *cobra.Command, o scoreOptions) error {
	if o.input == "" || o.output == "" {
		return usagef("score: --input and --output are required (see 'relupo score --help')")
	}
	if err := o.scorer.check("score"); err != nil {
		return err
	}
	if o.threads < 0 || o.threads > kernels.MaxWorkers() {
		return usagef("score: --threads must be in [0, %d]", kernels.MaxWorkers())
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

	var failures failureLog
	scorer, err := o.scorer.build("score", o.threads, o.output+".judgments.jsonl", stderr, failures.add)
	if err != nil {
		return err
	}
	defer scorer.Close()
	fmt.Fprintf(stderr, "score: %d rows, %d responses, with the %s\n", len(rows), total, scorer.What)

	prog := newCountProgress(stderr, "score", "rows", o.progress)
	failed, err := scorer.Score(cmd.Context(), rows, prog.update)
	prog.finish()
	if err != nil {
		return err
	}
	if failed > 0 {
		fmt.Fprintf(stderr, "score: %d of %d responses could not be scored (null in the output):\n", failed, total)
		failures.print(stderr)
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
