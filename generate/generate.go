package generate

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/relupo/relupo/model"
)

// Options control a generation run.
type Options struct {
	// MaxNewTokens bounds the tokens generated per prompt (the stop token
	// included).
	MaxNewTokens int
	Sampling     Sampling
	// Seed seeds every sequence's sampler; sequence i draws from
	// PCG(Seed, i), so results do not depend on BatchSize.
	Seed uint64
	// StopTokens end a sequence when generated (end-of-sequence and
	// end-of-turn ids). The stop token is kept in OutputIDs and left out of
	// Text.
	StopTokens []int
	// StopStrings end a sequence as soon as its text contains one of them;
	// Text is cut before the stop string.
	StopStrings []string
	// IgnoreEOS keeps generating through StopTokens until MaxNewTokens or a
	// stop string.
	IgnoreEOS bool
	// BatchSize is how many sequences decode together (default 8). When
	// one finishes the next prompt takes its place (continuous batching).
	BatchSize int
}

// Detokenizer turns ids into text; *tokenizer.Tokenizer is one.
type Detokenizer interface {
	Decode(ids []int, skipSpecialTokens bool) string
}

// Result is the answer to one prompt.
type Result struct {
	// OutputIDs are the generated token ids, the stop token included.
	OutputIDs []int
	// Text is OutputIDs decoded without special tokens, without the stop
	// token and cut before a stop string.
	Text string
	// FinishReason is "stop" (a stop token or stop string) or "length"
	// (MaxNewTokens reached).
	FinishReason string
	// PromptTokens is the length of the prompt.
	PromptTokens int
	// TextTokens is how many generated tokens make up Text: OutputIDs
	// without a trailing stop token.
	TextTokens int
}

// Progress is reported after each prompt completes.
type Progress struct {
	Done, Total     int
	PromptTokens    int // prefilled so far
	GeneratedTokens int // generated so far
	Elapsed         time.Duration
}

// Run generates an answer for every prompt, in order. onDone, if not nil,
// is called after each prompt completes. Decoding stops with ctx's error
// when ctx is cancelled.
func Run(ctx context.Context, d *model.Decoder, tok Detokenizer, prompts [][]int32, opt Options, onDone func(Progress)) ([]Result, error) {
	if err := opt.Sampling.Validate(); err != nil {
		return nil, err
	}
	if opt.MaxNewTokens < 1 {
		return nil, errors.New("generate: max new tokens must be ≥ 1")
	}
	cfg := d.Model.Config
	for i, p := range prompts {
		if len(p) == 0 {
			return nil, fmt.Errorf("generate: prompt %d is empty", i+1)
		}
		for _, t := range p {
			if t < 0 || int(t) >= cfg.VocabSize {
				return nil, fmt.Errorf("generate: prompt %d: token id %d outside the vocabulary [0, %d)", i+1, t, cfg.VocabSize)
			}
		}
		if cfg.SlidingWindow > 0 && len(p) > cfg.SlidingWindow {
			return nil, fmt.Errorf("generate: prompt %d has %d tokens, longer than the model's sliding_window %d", i+1, len(p), cfg.SlidingWindow)
		}
	}
	batch := opt.BatchSize
	if batch <= 0 {
		batch = 8
	}
	stops := map[int]bool{}
	if !opt.IgnoreEOS {
		for _, t := range opt.StopTokens {
			stops[t] = true
		}
	}

	type slot struct {
		i       int // prompt index
		cache   *model.KVCache
		sampler *Sampler
		next    []int32 // tokens to feed next
		out     []int
	}
	results := make([]Result, len(prompts))
	var active []*slot
	var free []*model.KVCache
	nextPrompt, done := 0, 0
	prog := Progress{Total: len(prompts)}
	start := time.Now()

	finish := func(s *slot, reason string, text string, textTokens int) {
		results[s.i] = Result{OutputIDs: s.out, Text: text, FinishReason: reason, PromptTokens: len(prompts[s.i]), TextTokens: textTokens}
		s.cache.Reset()
		free = append(free, s.cache)
		done++
		if onDone != nil {
			prog.Done, prog.Elapsed = done, time.Since(start)
			onDone(prog)
		}
	}

	for done < len(prompts) {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		for len(active) < batch && nextPrompt < len(prompts) {
			var c *model.KVCache
			if n := len(free); n > 0 {
				c, free = free[n-1], free[:n-1]
			} else {
				c = d.NewCache()
			}
			active = append(active, &slot{
				i: nextPrompt, cache: c, next: prompts[nextPrompt],
				sampler: NewSampler(opt.Sampling, opt.Seed, uint64(nextPrompt)),
			})
			prog.PromptTokens += len(prompts[nextPrompt])
			nextPrompt++
		}
		caches := make([]*model.KVCache, len(active))
		in := make([][]int32, len(active))
		for j, s := range active {
			caches[j], in[j] = s.cache, s.next
		}
		logits, err := d.Forward(caches, in)
		if err != nil {
			nums := make([]int, len(active))
			for j, s := range active {
				nums[j] = s.i + 1
			}
			return nil, fmt.Errorf("generate: decoding prompts %v: %w", nums, err)
		}
		kept := active[:0]
		for j, s := range active {
			// A model with NaN or infinite weights gives non-finite logits,
			// from which sampling would emit token 0 and an empty answer.
			if k := nonFinite(logits[j]); k >= 0 {
				return nil, fmt.Errorf("generate: prompt %d, token %d: the model's logits are not finite (logit of token %d is %v): its weights hold NaN or infinite values, or overflowed", s.i+1, len(s.out)+1, k, logits[j][k])
			}
			t := s.sampler.Sample(logits[j])
			s.out = append(s.out, t)
			prog.GeneratedTokens++
			switch {
			case stops[t]:
				finish(s, "stop", tok.Decode(s.out[:len(s.out)-1], true), len(s.out)-1)
				continue
			case len(opt.StopStrings) > 0:
				text := tok.Decode(s.out, true)
				if k := firstStop(text, opt.StopStrings); k >= 0 {
					finish(s, "stop", text[:k], len(s.out))
					continue
				}
			}
			if len(s.out) >= opt.MaxNewTokens {
				finish(s, "length", tok.Decode(s.out, true), len(s.out))
				continue
			}
			s.next = []int32{int32(t)}
			kept = append(kept, s)
		}
		active = slices.Clip(kept)
	}
	return results, nil
}

// nonFinite returns the index of the first NaN or infinite value in x, or
// −1.
func nonFinite(x []float32) int {
	for i, v := range x {
		if v-v != 0 { // NaN and ±Inf alone give a non-zero (NaN) difference
			return i
		}
	}
	return -1
}

// firstStop returns the index in text where the earliest stop string
// begins, or −1.
func firstStop(text string, stops []string) int {
	best := -1
	for _, s := range stops {
		if s == "" {
			continue
		}
		if k := strings.Index(text, s); k >= 0 && (best < 0 || k < best) {
			best = k
		}
	}
	return best
}
