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
	"github.com/relupo/relupo/train"
	"github.com/spf13/cobra"
)

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
			p, ok := bench.Presets[preset]
			if !ok {
				return usagef("bench: unknown --preset %q (30m or 135m)", preset)
			}
			cfg, T := p.Model, p.Seq
			if shape != "" {
				var err error
				if cfg, err = bench.ParseShape(shape); err != nil {
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
			prec, err := bench.ParsePrecision(computeDType)
			if err != nil {
				return usagef("bench: --compute-dtype: %v", err)
			}
			ctx, out := cmd.Context(), cmd.OutOrStdout()
			log := &labelWriter{w: os.Stderr, label: "[" + preset + " " + mode + "] "}
			comp := train.Compute{Threads: threads, Precision: prec}
			switch {
			case mode == "decode": // KV-cache decoding
				res, err := bench.Decode(ctx, bench.DecodeConfig{Model: cfg, Seq: T, Pairs: pairs, Runs: steps, Threads: threads, Precision: prec, Log: log})
				if err != nil {
					return err
				}
				return printDecodeBench(cmd, preset, res, jsonOut)
			case lengthsData != "":
				if lengthsTok == "" {
					return usagef("bench: --data needs --tokenizer, the model folder whose tokenizer and chat template measure the pairs")
				}
				lens, err := bench.PairLengths(ctx, lengthsData, lengthsTok, data.Truncation{MaxLength: maxLen, MaxPromptLength: maxPrompt, Mode: "keep_end"})
				if err != nil {
					return err
				}
				if lengthsOut != "" {
					if err := bench.WriteLengths(lengthsOut, lens); err != nil {
						return err
					}
				}
				res, err := bench.Realistic(ctx, bench.RealisticConfig{Model: cfg, Lengths: lens, Batch: pairs, Share: sharePrompt, Compute: comp, Log: log})
				if err != nil {
					return err
				}
				if jsonOut {
					return json.NewEncoder(out).Encode(withPreset{preset, res})
				}
				_, err = fmt.Fprintf(out, "%s realistic (shared prompts: %v): %d pairs in %.1fs: %.2f pairs/s, %d tokens computed, peak RSS %.2f GB\n",
					preset, res.SharePrompt, res.Pairs, res.Seconds, res.PairsPerS, res.Tokens, res.PeakRSSGB)
				return err
			}
			res, err := bench.Train(ctx, bench.TrainConfig{Model: cfg, Mode: mode, Seq: T, Pairs: pairs, Steps: steps, Seconds: seconds,
				Compute: comp, CPUProfile: cpuProfile, Log: log})
			if err != nil {
				return err
			}
			if jsonOut {
				return json.NewEncoder(out).Encode(withPreset{preset, res})
			}
			_, err = fmt.Fprintf(out, "%s %s: %.0f tokens/s, %.3fs/step (median of %d), %.1f GFLOP/s, peak RSS %.2f GB\n",
				preset, mode, res.TokensPerS, res.StepSMedian, res.StepsMeasured, res.GFlops, res.PeakRSSGB)
			return err
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
	_, err := fmt.Fprintf(out, "%s decode: %.0f tokens/s (%d sequences × %d new tokens after %d-token prompts, %.1f ms/step, median of %d); prefill %.0f tokens/s; peak RSS %.2f GB\n",
		preset, res.TokensPerSecond, res.Sequences, res.NewTokens, res.PromptTokens, res.StepMillis, res.RunsMeasured, res.PrefillTokensPerSecond, res.PeakRSSGB)
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
