// Package bench measures relupo's throughput in the shapes of the PyTorch
// baselines, for side-by-side runs.
package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"runtime"
	"slices"
	"time"

	"github.com/relupo/relupo/kernels"
	"github.com/relupo/relupo/model"
)

// DecodeConfig sets up a KV-cache decoding benchmark (see [Decode]).
type DecodeConfig struct {
	// Model is the shape of the randomly initialized model.
	Model model.Config
	// Seq sets the lengths: every prompt has Seq/4 tokens and Seq/4 tokens
	// are decoded after it (at least one each).
	Seq int
	// Pairs sets the batch: 2·Pairs sequences decode together, as the
	// training benchmark's pairs of chosen and rejected sequences.
	Pairs int
	// Runs is the number of timed runs after the warm-up run.
	Runs int
	// Threads is the number of worker threads; 0 means all cores.
	Threads int
	// Precision is how the matrix products treat their operands.
	Precision kernels.Precision
	// Log, if not nil, receives a line per timed run:
	// "run N: prefill Xs, decode Ys".
	Log io.Writer
	// CPUProfile, when set, receives a CPU profile of the timed runs.
	CPUProfile string
	// BF16Weights holds the weight matrices as bfloat16 (a frozen base,
	// model.NewFrozenBF16), as generate holds a bf16 checkpoint.
	BF16Weights bool
}

// DecodeResult is the outcome of [Decode]. Times are medians over the
// timed runs; its JSON keys are those BENCHMARKS.md reports.
type DecodeResult struct {
	// Mode is "decode".
	Mode string `json:"mode"`
	// Threads is the number of worker threads.
	Threads int `json:"threads"`
	// Sequences is the number of sequences decoded together.
	Sequences int `json:"sequences"`
	// PromptTokens and NewTokens are the lengths of each sequence's prompt
	// and of its decoded continuation.
	PromptTokens int `json:"prompt_tokens"`
	NewTokens    int `json:"new_tokens"`
	// ParamsTotal counts the model's parameters.
	ParamsTotal int64 `json:"params_total"`
	// RunsMeasured is the number of timed runs.
	RunsMeasured int `json:"runs_measured"`
	// DecodeSeconds is the time to decode NewTokens tokens for every
	// sequence, the prefill left out; TokensPerSecond the tokens decoded per
	// second (all sequences together) and StepMillis the time of one decode
	// step.
	DecodeSeconds   float64 `json:"decode_s_median"`
	TokensPerSecond float64 `json:"tokens_per_s"`
	StepMillis      float64 `json:"step_ms_median"`
	// PrefillSeconds is the time to prefill every prompt, and
	// PrefillTokensPerSecond the prompt tokens prefilled per second.
	PrefillSeconds         float64 `json:"prefill_s_median"`
	PrefillTokensPerSecond float64 `json:"prefill_tokens_per_s"`
	// PeakRSSGB is the process's peak resident memory, in GB (see
	// [PeakRSSGB]).
	PeakRSSGB float64 `json:"peak_rss_GB"`
	// Kernels describes the matrix kernels used (kernels.Describe), and Go
	// the Go version (runtime.Version).
	Kernels string `json:"kernels"`
	Go      string `json:"go"`
	// WeightsDType is how the weight matrices were held: float32 or bf16.
	WeightsDType string `json:"weights_dtype"`
}

// Decode times KV-cache decoding: 2·c.Pairs sequences of a randomly
// initialized model of shape c.Model, each prefilled with a prompt of
// c.Seq/4 random tokens, then c.Seq/4 greedy tokens decoded one step at a
// time for all sequences together. After one warm-up run, c.Runs runs are
// timed. Tokens per second count decoded tokens over the decode phase only;
// the prefill is timed separately. Decode stops with ctx's error when ctx is
// cancelled.
func Decode(ctx context.Context, c DecodeConfig) (DecodeResult, error) {
	cfg := c.Model
	switch {
	case cfg.VocabSize < 1 || cfg.HiddenSize < 1 || cfg.NumLayers < 1 || cfg.NumHeads < 1:
		return DecodeResult{}, errors.New("bench: decode: the model shape needs a vocabulary, hidden size, layers and heads")
	case c.Seq < 1 || c.Pairs < 1 || c.Runs < 1:
		return DecodeResult{}, fmt.Errorf("bench: decode: seq %d, pairs %d and runs %d must be ≥ 1", c.Seq, c.Pairs, c.Runs)
	}
	pool := kernels.NewPool(c.Threads)
	defer pool.Close()
	pool.SetPrecision(c.Precision)
	var m *model.Model
	if c.BF16Weights {
		m = model.NewFrozenBF16(cfg, 0)
	} else {
		m = model.New(cfg)
		m.Params.Init(0, 0.02)
	}
	B, P, T := 2*c.Pairs, max(c.Seq/4, 1), max(c.Seq/4, 1)
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
	if _, _, err := decodeRun(ctx, d, caches, prompts, T); err != nil { // warm-up
		return DecodeResult{}, err
	}
	stop, err := startCPUProfile(c.CPUProfile)
	if err != nil {
		return DecodeResult{}, err
	}
	defer stop()
	var pre, dec []float64
	for i := range c.Runs {
		p, dt, err := decodeRun(ctx, d, caches, prompts, T)
		if err != nil {
			return DecodeResult{}, err
		}
		pre, dec = append(pre, p), append(dec, dt)
		if c.Log != nil {
			fmt.Fprintf(c.Log, "run %d: prefill %.3fs, decode %.3fs\n", i+1, p, dt)
		}
	}
	slices.Sort(pre)
	slices.Sort(dec)
	medP, medD := pre[len(pre)/2], dec[len(dec)/2]
	return DecodeResult{
		Mode: "decode", Threads: pool.Workers(), Sequences: B, PromptTokens: P, NewTokens: T,
		ParamsTotal: cfg.NumParams(), RunsMeasured: len(dec),
		DecodeSeconds: medD, TokensPerSecond: float64(B*T) / medD, StepMillis: 1000 * medD / float64(T),
		PrefillSeconds: medP, PrefillTokensPerSecond: float64(B*P) / medP,
		PeakRSSGB: PeakRSSGB(), Kernels: kernels.Describe(), Go: runtime.Version(), WeightsDType: map[bool]string{false: "float32", true: "bf16"}[c.BF16Weights],
	}, nil
}

// decodeRun prefills prompts into the emptied caches, then decodes newTokens
// greedy tokens for all of them, and returns the seconds each phase took.
func decodeRun(ctx context.Context, d *model.Decoder, caches []*model.KVCache, prompts [][]int32, newTokens int) (prefill, decode float64, err error) {
	for _, c := range caches {
		c.Reset()
	}
	t0 := time.Now()
	logits, err := d.Forward(caches, prompts)
	if err != nil {
		return 0, 0, fmt.Errorf("bench: decode: %w", err)
	}
	prefill = time.Since(t0).Seconds()
	t1 := time.Now()
	in := make([][]int32, len(prompts))
	for range newTokens {
		if err := ctx.Err(); err != nil {
			return 0, 0, err
		}
		for s := range in {
			in[s] = []int32{int32(model.Argmax(logits[s]))}
		}
		if logits, err = d.Forward(caches, in); err != nil {
			return 0, 0, fmt.Errorf("bench: decode: %w", err)
		}
	}
	return prefill, time.Since(t1).Seconds(), nil
}
