package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"

	"github.com/relupo/relupo/bench"
	"github.com/relupo/relupo/data"
	"github.com/relupo/relupo/dist"
	"github.com/relupo/relupo/train"
	"github.com/spf13/cobra"
)

// benchOptions are the flags of `relupo bench`.
type benchOptions struct {
	preset, mode, shape                 string
	steps, pairs, seq, threads          int
	seconds                             float64
	jsonOut, sharePrompt                bool
	cpuProfile, computeDType            string
	lengthsData, lengthsTok, lengthsOut string
	maxLen, maxPrompt                   int
	lora                                loraBenchOptions // issue 15's fine-tuning rows (bench_lora.go)
	profile                             bool
}

func newBenchCmd() *cobra.Command {
	var o benchOptions
	cmd := &cobra.Command{
		Use:   "bench [--preset 30m|135m] [--mode train|ref-forward|decode]",
		Short: "Measure training-step throughput on a preset model shape",
		Long: `Times training steps the way ../shared/reference/bench_train.py does for PyTorch, so
the two can be run side by side: a randomly initialized Llama of the preset's shape,
2 pairs = 4 sequences of --seq tokens (the first quarter of each is prompt), and one
step = forward, RePO loss (every pair active), backward and AdamW.

  30m:  vocab 8192, hidden 512, intermediate 1376, 8 layers, 8 heads, 8 kv heads, seq 512
  135m: vocab 49152, hidden 576, intermediate 1536, 30 layers, 9 heads, 3 kv heads, tied, seq 256
  llama3.2-1b, llama3-8b: Llama-3.2-1B's and Llama-3-8B's shapes, seq 512, for the
  fine-tuning rows: --use-peft (LoRA r 16 on every linear layer, a bf16 base),
  --use-peft=false (full fine-tuning), --gradient-checkpointing, and
  --side-by-side ROWS (each row's relupo and PyTorch runs alternating, bench/lora_bench.py)

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
			return runBench(cmd, o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.preset, "preset", "30m", "model shape: 30m or 135m")
	f.StringVar(&o.shape, "shape", "", "explicit shape V,D,I,L,H,KV (vocab, hidden, intermediate, layers, heads, kv heads)")
	f.StringVar(&o.mode, "mode", "train", "train, ref-forward or decode")
	f.IntVar(&o.steps, "steps", 3, "timed steps after one warm-up step")
	f.Float64Var(&o.seconds, "seconds", 0, "instead of --steps, time steps until this many seconds after the warm-up began (at most 20), as bench_train.py's max_seconds does")
	f.IntVar(&o.pairs, "pairs", 2, "preference pairs per step (2 sequences each)")
	f.IntVar(&o.seq, "seq", 0, "tokens per sequence (default: the preset's)")
	f.IntVar(&o.threads, "threads", 0, "worker threads (0: all cores)")
	f.BoolVar(&o.jsonOut, "json", false, "print the result as one JSON object on the last line")
	f.StringVar(&o.lengthsData, "data", "", "realistic batches: take the token lengths of this preference data set's pairs (random ids of those lengths)")
	f.StringVar(&o.lengthsTok, "tokenizer", "", "with --data: the model folder whose chat template and tokenizer measure the pairs")
	f.StringVar(&o.lengthsOut, "write-lengths", "", "with --data: also write the lengths as JSON lines {prompt, chosen, rejected}, for the PyTorch baseline")
	f.IntVar(&o.maxLen, "max-length", 512, "with --data: truncation max_length")
	f.BoolVar(&o.sharePrompt, "share-prompt", true, "with --data: run each pair's prompt once for both responses (--share-prompt=false: packed but unshared)")
	f.IntVar(&o.maxPrompt, "max-prompt-length", 384, "with --data: truncation max_prompt_length")
	f.StringVar(&o.computeDType, "compute-dtype", "float32", "precision of the matrix products: float32 or bf16 (see relupo train --help)")
	f.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of the timed steps (or decoding runs, or realistic pass) to this file (go tool pprof)")
	f.BoolVar(&o.profile, "profile", false, "split the timed steps' time into GEMM, attention, elementwise, optimizer and other, with the products' fraction of the measured peak")
	addLoRABenchFlags(f, &o.lora)
	return cmd
}

// runBench checks the flags, runs the benchmark the mode asks for and
// prints its result.
func runBench(cmd *cobra.Command, o benchOptions) error {
	p, ok := bench.Presets[o.preset]
	if !ok {
		return usagef("bench: unknown --preset %q (30m or 135m)", o.preset)
	}
	cfg, T := p.Model, p.Seq
	if o.shape != "" {
		var err error
		if cfg, err = bench.ParseShape(o.shape); err != nil {
			return usageError{err}
		}
	}
	if o.seq > 0 {
		T = o.seq
	}
	if o.mode != "train" && o.mode != "ref-forward" && o.mode != "decode" {
		return usagef("bench: unknown --mode %q (train, ref-forward or decode)", o.mode)
	}
	if o.steps < 1 || o.pairs < 1 || T < 2 {
		return usagef("bench: --steps, --pairs must be ≥ 1 and --seq ≥ 2")
	}
	if o.seconds < 0 || math.IsNaN(o.seconds) {
		return usagef("bench: --seconds must be ≥ 0")
	}
	prec, err := bench.ParsePrecision(o.computeDType)
	if err != nil {
		return usagef("bench: --compute-dtype: %v", err)
	}
	ctx, out := cmd.Context(), cmd.OutOrStdout()
	var log io.Writer = &labelWriter{w: os.Stderr, label: "[" + o.preset + " " + o.mode + "] "}
	comp := train.Compute{Threads: o.threads, Precision: prec}
	if loraBenchActive(cmd.Flags()) {
		return runLoRABench(cmd, o, cfg, T, comp)
	}
	if f := cmd.Flags(); (o.mode == "decode" || o.lengthsData != "") && (f.Changed("profile") || f.Changed("seconds")) {
		return usagef("bench: --profile and --seconds are for timing training steps; --mode decode and --data time a fixed run (--cpuprofile profiles it)")
	}
	switch {
	case o.mode == "decode": // KV-cache decoding
		bf16 := false // the random weights in float32 unless --base-dtype bf16 is given
		if cmd.Flags().Changed("base-dtype") {
			switch o.lora.baseDType {
			case "bf16":
				bf16 = true
			case "float32":
			default:
				return usagef("bench: --base-dtype %q: bf16 or float32", o.lora.baseDType)
			}
		}
		res, err := bench.Decode(ctx, bench.DecodeConfig{Model: cfg, Seq: T, Pairs: o.pairs, Runs: o.steps, Threads: o.threads, Precision: prec, Log: log,
			CPUProfile: o.cpuProfile, BF16Weights: bf16})
		if err != nil {
			return err
		}
		return printDecodeBench(cmd, o.preset, res, o.jsonOut)
	case o.lengthsData != "":
		if o.lengthsTok == "" {
			return usagef("bench: --data needs --tokenizer, the model folder whose tokenizer and chat template measure the pairs")
		}
		lens, err := bench.PairLengths(ctx, o.lengthsData, o.lengthsTok, data.Truncation{MaxLength: o.maxLen, MaxPromptLength: o.maxPrompt, Mode: "keep_end"})
		if err != nil {
			return err
		}
		if o.lengthsOut != "" {
			if err := bench.WriteLengths(o.lengthsOut, lens); err != nil {
				return err
			}
		}
		res, err := bench.Realistic(ctx, bench.RealisticConfig{Model: cfg, Lengths: lens, Batch: o.pairs, Share: o.sharePrompt, Compute: comp, Log: log, CPUProfile: o.cpuProfile})
		if err != nil {
			return err
		}
		if o.jsonOut {
			return json.NewEncoder(out).Encode(withPreset{o.preset, res})
		}
		_, err = fmt.Fprintf(out, "%s realistic (shared prompts: %v): %d pairs in %.1fs: %.2f pairs/s, %d tokens computed, peak RSS %.2f GB\n",
			o.preset, res.SharePrompt, res.Pairs, res.Seconds, res.PairsPerS, res.Tokens, res.PeakRSSGB)
		return err
	}
	return withRanks(func(comm dist.Comm) error {
		if comm.Size() > 1 && o.seconds > 0 {
			return usagef("bench: under mpirun, time a fixed number of --steps (the ranks must run the same steps), not --seconds")
		}
		if comm.Rank() != 0 {
			log = nil
		}
		res, err := bench.Train(ctx, bench.TrainConfig{Model: cfg, Mode: o.mode, Seq: T, Pairs: o.pairs, Steps: o.steps, Seconds: o.seconds,
			Compute: comp, CPUProfile: o.cpuProfile, Log: log, Comm: comm, Profile: o.profile})
		if err != nil || comm.Rank() != 0 {
			return err
		}
		if o.jsonOut {
			return json.NewEncoder(out).Encode(withPreset{o.preset, res})
		}
		_, err = fmt.Fprintf(out, "%s %s: %.0f tokens/s, %.3fs/step (median of %d), %.1f GFLOP/s, peak RSS %.2f GB%s\n",
			o.preset, o.mode, res.TokensPerS, res.StepSMedian, res.StepsMeasured, res.GFlops, res.PeakRSSGB, rankCount(res.Ranks))
		if err == nil && res.Profile != nil {
			err = res.Profile.WriteTable(out)
		}
		return err
	})
}

// rankCount names the ranks of a job of several.
func rankCount(n int) string {
	if n < 2 {
		return ""
	}
	return fmt.Sprintf(" (%d ranks together)", n)
}

// withPreset is a benchmark result with the preset's name, as the JSON
// line the side-by-side scripts read.
type withPreset struct {
	Preset string `json:"preset"`
	Result any    `json:"-"`
}

// MarshalJSON writes the result's keys and "preset" in one object.
func (w withPreset) MarshalJSON() ([]byte, error) {
	b, err := json.Marshal(w.Result)
	if err != nil || len(b) < 2 || b[0] != '{' {
		return b, err
	}
	p, _ := json.Marshal(w.Preset)
	out := append([]byte(`{"preset":`), p...)
	if len(b) > 2 {
		out = append(out, ',')
	}
	return append(out, b[1:]...), nil
}

// printDecodeBench prints the result of bench.Decode for `relupo bench
// --mode decode`: one JSON object (res's keys and "preset") with jsonOut,
// otherwise one line.
func printDecodeBench(cmd *cobra.Command, preset string, res bench.DecodeResult, jsonOut bool) error {
	out := cmd.OutOrStdout()
	if jsonOut {
		return json.NewEncoder(out).Encode(withPreset{preset, res})
	}
	_, err := fmt.Fprintf(out, "%s decode (%s weights): %.0f tokens/s (%d sequences × %d new tokens after %d-token prompts, %.1f ms/step, median of %d); prefill %.0f tokens/s; peak RSS %.2f GB\n",
		preset, res.WeightsDType, res.TokensPerSecond, res.Sequences, res.NewTokens, res.PromptTokens, res.StepMillis, res.RunsMeasured, res.PrefillTokensPerSecond, res.PeakRSSGB)
	return err
}

// labelWriter writes label before every line written through it, as
// `relupo bench` labels the lines of bench's Log with "[preset mode] ".
type labelWriter struct {
	w     io.Writer
	label string
	mid   bool // within a line: the label is written
}

func (l *labelWriter) Write(b []byte) (int, error) {
	for n := 0; n < len(b); {
		if !l.mid {
			if _, err := io.WriteString(l.w, l.label); err != nil {
				return n, err
			}
		}
		line := b[n:]
		if i := bytes.IndexByte(line, '\n'); i >= 0 {
			line = line[:i+1]
		}
		if _, err := l.w.Write(line); err != nil {
			return n, err
		}
		n += len(line)
		l.mid = line[len(line)-1] != '\n'
	}
	return len(b), nil
}
