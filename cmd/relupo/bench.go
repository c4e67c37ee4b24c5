package main

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/relupo/relupo/kernels"
	"github.com/relupo/relupo/model"
	"github.com/relupo/relupo/train"
	"github.com/spf13/cobra"
)

// benchPresets mirror ../shared/reference/bench_train.py exactly.
var benchPresets = map[string]struct {
	cfg model.Config
	seq int
}{
	"30m": {model.Config{ModelType: "llama", VocabSize: 8192, HiddenSize: 512, IntermediateSize: 1376, NumLayers: 8,
		NumHeads: 8, NumKVHeads: 8, HeadDim: 64, RMSNormEps: 1e-5, RopeTheta: 10000, MaxPositionEmbeddings: 2048}, 512},
	"135m": {model.Config{ModelType: "llama", VocabSize: 49152, HiddenSize: 576, IntermediateSize: 1536, NumLayers: 30,
		NumHeads: 9, NumKVHeads: 3, HeadDim: 64, RMSNormEps: 1e-5, RopeTheta: 10000, MaxPositionEmbeddings: 2048, TieWordEmbeddings: true}, 256},
}

func newBenchCmd() *cobra.Command {
	var (
		preset, mode, shape string
		steps, pairs, seq   int
		seconds             float64
		threads             int
		jsonOut             bool
		cpuProfile          string
		lengthsData         string
		lengthsTok          string
		lengthsOut          string
		maxLen, maxPrompt   int
		sharePrompt         bool
		computeDType        string
	)
	cmd := &cobra.Command{
		Use:   "bench [--preset 30m|135m] [--mode train|ref-forward|decode]",
		Short: "Measure training-step throughput on a preset model shape",
		Long: `Times training steps the way ../shared/reference/bench_train.py does for PyTorch, so
the two can be run side by side: a randomly initialized Llama of the preset's shape,
2 pairs = 4 sequences of --seq tokens (the first quarter of each is prompt), and one
step = forward, RePO loss (every pair active), backward and AdamW.

  30m:  vocab 8192, hidden 512, intermediate 1376, 8 layers, 8 heads, 8 kv heads, seq 512
  135m: vocab 49152, hidden 576, intermediate 1536, 30 layers, 9 heads, 3 kv heads, tied, seq 256

--shape V,D,I,L,H,KV sets an explicit shape instead. --data FILE --tokenizer DIR
runs realistic batches instead: every pair of the data set, tokenized as training
would (truncated to --max-length/--max-prompt-length), becomes a pair of random ids
with the same prompt and response lengths, and one pass over all pairs in batches of
--pairs is timed (pairs/s); --write-lengths saves the lengths for
bench/trl_style_bench.py, the padded PyTorch baseline. --mode ref-forward times the
no-gradient forward pass a reference model needs. --mode decode times KV-cache
decoding: 2·pairs sequences prefilled with seq/4 tokens, then seq/4 greedy tokens each,
reporting decoded tokens/s (and prefill tokens/s). --compute-dtype bf16 times
bfloat16 matrix products (bench_train.py's bf16 argument runs PyTorch's autocast).
FLOPs are counted as the script does: 6·N_matmul·tokens + 12·L·D·T·tokens. --seconds S times
steps the way the script's max_seconds does (until S seconds after the warm-up began, at most
20), so that both sides sample the machine for as long. With --json the last line is one JSON
object with tokens_per_s, step_s_median, gflops, peak_rss_GB and the config.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			p, ok := benchPresets[preset]
			if !ok {
				return usagef("bench: unknown --preset %q (30m or 135m)", preset)
			}
			cfg, T := p.cfg, p.seq
			if shape != "" {
				var err error
				if cfg, err = parseShape(shape); err != nil {
					return usageError{err}
				}
			}
			if seq > 0 {
				T = seq
			}
			if mode != "train" && mode != "ref-forward" && mode != "decode" {
				return usagef("bench: unknown --mode %q (train, ref-forward or decode)", mode)
			}
			if steps < 1 || pairs < 1 || T < 2 {
				return usagef("bench: --steps, --pairs must be ≥ 1 and --seq ≥ 2")
			}
			if seconds < 0 || math.IsNaN(seconds) {
				return usagef("bench: --seconds must be ≥ 0")
			}
			prec, err := kernels.ParsePrecision(computeDType)
			if err != nil {
				return usagef("bench: --compute-dtype: %v", err)
			}
			pool := kernels.NewPool(threads)
			defer pool.Close()
			pool.SetPrecision(prec)
			if prec == kernels.BF16 && !kernels.NativeBF16() {
				fmt.Fprintln(os.Stderr, "relupo bench: bf16 is emulated here (no AMX-BF16 on this CPU or kernel path): bf16 numbers at float32 speed or lower")
			}
			if mode == "decode" { // KV-cache decoding; see generate.go
				return runDecodeBench(cmd, cfg, preset, T, pairs, steps, pool, jsonOut)
			}
			if lengthsData != "" {
				if lengthsTok == "" {
					return usagef("bench: --data needs --tokenizer, the model folder whose tokenizer and chat template measure the pairs")
				}
				lens, err := pairLengths(cmd, lengthsData, lengthsTok, maxLen, maxPrompt)
				if err != nil {
					return err
				}
				if lengthsOut != "" {
					if err := writeLengths(lengthsOut, lens); err != nil {
						return err
					}
				}
				return runRealisticBench(cmd, cfg, preset, lens, pairs, sharePrompt, pool, jsonOut)
			}
			// Each of the 2·pairs sequences: T tokens, the first quarter prompt.
			st := newBenchStepper(cfg, pool)
			r := rand.New(rand.NewPCG(0, 0))
			exs := make([]train.Example, pairs)
			for i := range exs {
				exs[i] = train.Example{Prompt: randomIDs(r, cfg, T/4), Chosen: randomIDs(r, cfg, T-T/4), Rejected: randomIDs(r, cfg, T-T/4)}
			}
			step := func() error {
				_, err := st.step(exs, false, mode == "train")
				return err
			}
			tokens := 2 * pairs * T
			flops := benchFlops(cfg, T, tokens, mode)
			t0 := time.Now()
			if err := step(); err != nil { // warm-up
				return err
			}
			fmt.Fprintf(os.Stderr, "[%s %s] warm-up step %.2fs\n", preset, mode, time.Since(t0).Seconds())
			if cpuProfile != "" {
				f, err := os.Create(cpuProfile)
				if err != nil {
					return fmt.Errorf("bench: %w", err)
				}
				defer f.Close()
				if err := pprof.StartCPUProfile(f); err != nil {
					return fmt.Errorf("bench: %w", err)
				}
				defer pprof.StopCPUProfile()
			}
			// With --seconds, time steps as bench_train.py does: until that
			// long after the warm-up began, at most benchMaxSteps.
			more := func(done int) bool {
				if seconds > 0 {
					return done < 1 || (time.Since(t0).Seconds() < seconds && done < benchMaxSteps)
				}
				return done < steps
			}
			var times []float64
			for i := 0; more(i); i++ {
				t := time.Now()
				if err := step(); err != nil {
					return err
				}
				times = append(times, time.Since(t).Seconds())
				fmt.Fprintf(os.Stderr, "[%s %s] step %d: %.3fs\n", preset, mode, i+1, times[i])
			}
			slices.Sort(times)
			med := times[len(times)/2]
			res := map[string]any{
				"preset": preset, "mode": mode, "threads": pool.Workers(), "seq_len": T, "sequences": 2 * pairs,
				"tokens_per_step": tokens, "params_total": cfg.NumParams(), "flops_per_step_G": flops / 1e9,
				"steps_measured": len(times), "step_s_median": med, "step_s_min": times[0],
				"tokens_per_s": float64(tokens) / med, "gflops": flops / med / 1e9, "peak_rss_GB": peakRSSGB(),
				"kernels": kernels.Describe(), "go": runtime.Version(), "compute_dtype": prec.String(),
				"bf16_native": prec == kernels.BF16 && kernels.NativeBF16(),
			}
			if jsonOut {
				return json.NewEncoder(cmd.OutOrStdout()).Encode(res)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s %s: %.0f tokens/s, %.3fs/step (median of %d), %.1f GFLOP/s, peak RSS %.2f GB\n",
				preset, mode, res["tokens_per_s"], med, len(times), res["gflops"], res["peak_rss_GB"])
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&preset, "preset", "30m", "model shape: 30m or 135m")
	f.StringVar(&shape, "shape", "", "explicit shape V,D,I,L,H,KV (vocab, hidden, intermediate, layers, heads, kv heads)")
	f.StringVar(&mode, "mode", "train", "train, ref-forward or decode")
	f.IntVar(&steps, "steps", 3, "timed steps after one warm-up step")
	f.Float64Var(&seconds, "seconds", 0, "instead of --steps, time steps until this many seconds after the warm-up began (at most 20), as bench_train.py's max_seconds does")
	f.IntVar(&pairs, "pairs", 2, "preference pairs per step (2 sequences each)")
	f.IntVar(&seq, "seq", 0, "tokens per sequence (default: the preset's)")
	f.IntVar(&threads, "threads", 0, "worker threads (0: all cores)")
	f.BoolVar(&jsonOut, "json", false, "print the result as one JSON object on the last line")
	f.StringVar(&lengthsData, "data", "", "realistic batches: take the token lengths of this preference data set's pairs (random ids of those lengths)")
	f.StringVar(&lengthsTok, "tokenizer", "", "with --data: the model folder whose chat template and tokenizer measure the pairs")
	f.StringVar(&lengthsOut, "write-lengths", "", "with --data: also write the lengths as JSON lines {prompt, chosen, rejected}, for the PyTorch baseline")
	f.IntVar(&maxLen, "max-length", 512, "with --data: truncation max_length")
	f.BoolVar(&sharePrompt, "share-prompt", true, "with --data: run each pair's prompt once for both responses (--share-prompt=false: packed but unshared)")
	f.IntVar(&maxPrompt, "max-prompt-length", 384, "with --data: truncation max_prompt_length")
	f.StringVar(&computeDType, "compute-dtype", "float32", "precision of the matrix products: float32 or bf16 (see relupo train --help)")
	f.StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile of the timed steps to this file (go tool pprof)")
	return cmd
}

// benchMaxSteps is the most steps --seconds times, as in bench_train.py.
const benchMaxSteps = 20

// benchFlops counts a step's FLOPs as bench_train.py does.
func benchFlops(c model.Config, T, tokens int, mode string) float64 {
	var mm int64
	for _, t := range c.Tensors() {
		if strings.HasSuffix(t.Name, "proj.weight") || t.Name == "lm_head.weight" {
			mm += int64(t.Shape[0] * t.Shape[1])
		}
	}
	if c.TieWordEmbeddings {
		mm += int64(c.VocabSize * c.HiddenSize)
	}
	f := 6*float64(mm)*float64(tokens) + 12*float64(c.NumLayers*c.HiddenSize*T)*float64(tokens)
	if mode == "ref-forward" {
		f /= 3
	}
	return f
}

func parseShape(s string) (model.Config, error) {
	parts := strings.Split(s, ",")
	if len(parts) != 6 {
		return model.Config{}, fmt.Errorf("bench: --shape wants V,D,I,L,H,KV, got %q", s)
	}
	v := make([]int, 6)
	for i, p := range parts {
		n, err := strconv.Atoi(strings.TrimSpace(p))
		if err != nil || n < 1 {
			return model.Config{}, fmt.Errorf("bench: --shape: %q is not a positive integer", p)
		}
		v[i] = n
	}
	if v[1]%v[4] != 0 || v[4]%v[5] != 0 {
		return model.Config{}, fmt.Errorf("bench: --shape: hidden must be a multiple of heads, and heads of kv heads")
	}
	return model.Config{ModelType: "llama", VocabSize: v[0], HiddenSize: v[1], IntermediateSize: v[2], NumLayers: v[3],
		NumHeads: v[4], NumKVHeads: v[5], HeadDim: v[1] / v[4], RMSNormEps: 1e-5, RopeTheta: 10000}, nil
}

// peakRSSGB is the process's resident-memory high-water mark (VmHWM), in GB.
func peakRSSGB() float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")))
			return float64(kb) / 1e6
		}
	}
	return 0
}
