package generate

import (
	"context"
	"errors"
	"fmt"
	"math"
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
	// Seed seeds every sequence's sampler: sample j of prompt i draws from
	// PCG(Seed, SampleStream(i, j)), so results do not depend on BatchSize,
	// on the number of threads, nor on NumReturnSequences (sample j of a
	// prompt is the same whether 2 or 8 are drawn).
	Seed uint64
	// NumReturnSequences is how many answers are sampled per prompt (K);
	// 0 means 1. The prompt is prefilled once and its cache copied for
	// each of the K samples.
	NumReturnSequences int
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
	// sequences finish the next prompt takes their place (continuous
	// batching), once there is room for all its K samples (a prompt with
	// more samples than BatchSize decodes alone).
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

// SampleStream is the random stream of sample j of prompt i (both from
// 0): i in the low 32 bits and j in the high ones, so that sample 0 of
// prompt i draws from stream i, as a single answer per prompt does.
func SampleStream(i, j int) uint64 { return uint64(uint32(i)) | uint64(uint32(j))<<32 }

// Run generates NumReturnSequences answers for every prompt, in order:
// result i·K+j is sample j of prompt i. onDone, if not nil, is called after
// each answer completes (Progress counts answers). Decoding stops with
// ctx's error when ctx is cancelled.
func Run(ctx context.Context, d *model.Decoder, tok Detokenizer, prompts [][]int32, opt Options, onDone func(Progress)) ([]Result, error) {
	if err := opt.Sampling.Validate(); err != nil {
		return nil, err
	}
	if opt.MaxNewTokens < 1 {
		return nil, errors.New("generate: max new tokens must be ≥ 1")
	}
	if opt.NumReturnSequences < 0 {
		return nil, fmt.Errorf("generate: num return sequences %d must be ≥ 1", opt.NumReturnSequences)
	}
	K := max(opt.NumReturnSequences, 1)
	if len(prompts) > math.MaxUint32 || K > math.MaxUint32 {
		return nil, fmt.Errorf("generate: %d prompts × %d samples: at most 2³² of each", len(prompts), K)
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

	// A slot is one sequence being decoded. A prompt enters as one slot
	// that prefills it (sample −1); its logits are then shared by K slots,
	// one per sample, each with a copy of the prompt's cache.
	type slot struct {
		i, j    int // prompt index, sample index (−1: the prompt's prefill)
		cache   *model.KVCache
		sampler *Sampler
		next    []int32 // tokens to feed next
		out     []int
	}
	results := make([]Result, len(prompts)*K)
	var active []*slot
	var free []*model.KVCache
	nextPrompt, done := 0, 0
	prog := Progress{Total: len(results)}
	start := time.Now()
	cache := func() *model.KVCache {
		if n := len(free); n > 0 {
			c := free[n-1]
			free = free[:n-1]
			return c
		}
		return d.NewCache()
	}

	finish := func(s *slot, reason string, text string, textTokens int) {
		results[s.i*K+s.j] = Result{OutputIDs: s.out, Text: text, FinishReason: reason, PromptTokens: len(prompts[s.i]), TextTokens: textTokens}
		s.cache.Reset()
		free = append(free, s.cache)
		done++
		if onDone != nil {
			prog.Done, prog.Elapsed = done, time.Since(start)
			onDone(prog)
		}
	}

	for done < len(results) {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		for nextPrompt < len(prompts) && (len(active) == 0 || len(active)+K <= batch) {
			active = append(active, &slot{i: nextPrompt, j: -1, cache: cache(), next: prompts[nextPrompt]})
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
			nums := make([]int, 0, len(active))
			for _, s := range active {
				if len(nums) == 0 || nums[len(nums)-1] != s.i+1 {
					nums = append(nums, s.i+1)
				}
			}
			return nil, fmt.Errorf("generate: decoding prompts %v: %w", nums, err)
		}
		var kept []*slot
		for j, s := range active {
			// A model with NaN or infinite weights gives non-finite logits,
			// from which sampling would emit token 0 and an empty answer.
			if k := nonFinite(logits[j]); k >= 0 {
				return nil, fmt.Errorf("generate: prompt %d, token %d: the model's logits are not finite (logit of token %d is %v): its weights hold NaN or infinite values, or overflowed", s.i+1, len(s.out)+1, k, logits[j][k])
			}
			samples := []*slot{s}
			if s.j < 0 { // a prefilled prompt: its K samples start from its logits
				samples = make([]*slot, K)
				for k := range samples {
					c := s.cache
					if k > 0 {
						c = cache()
						copyCache(c, s.cache)
					}
					samples[k] = &slot{i: s.i, j: k, cache: c, sampler: NewSampler(opt.Sampling, opt.Seed, SampleStream(s.i, k))}
				}
			}
			for _, s := range samples {
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
		}
		active = kept
	}
	return results, nil
}

// copyCache makes dst a copy of src, reusing dst's memory.
func copyCache(dst, src *model.KVCache) {
	if len(dst.K) != len(src.K) {
		dst.K, dst.V = make([][]float32, len(src.K)), make([][]float32, len(src.V))
	}
	for l := range src.K {
		dst.K[l] = append(dst.K[l][:0], src.K[l]...)
		dst.V[l] = append(dst.V[l][:0], src.V[l]...)
	}
	dst.Len = src.Len
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
