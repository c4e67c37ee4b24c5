package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/relupo/relupo/bench"
	"github.com/relupo/relupo/internal/atomicfile"
	"github.com/relupo/relupo/kernels"
	"github.com/relupo/relupo/model"
	"github.com/relupo/relupo/train"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// loraBenchOptions are `relupo bench`'s flags for issue 15's fine-tuning
// rows: one row in this process, or every row side by side with the
// PyTorch baseline (bench/lora_bench.py), each in a process of its own.
type loraBenchOptions struct {
	usePEFT, checkpointing bool
	baseDType              string
	r                      int
	alpha                  float64
	sideBySide             string
	rounds, epochPairs     int
	python, script         string
	coreType, coreScript   string
	noPyTorch              bool
	results                string
}

// addLoRABenchFlags registers the flags of loraBenchOptions.
func addLoRABenchFlags(f *pflag.FlagSet, o *loraBenchOptions) {
	f.BoolVar(&o.usePEFT, "use-peft", false, "time issue 15's LoRA training step: the base frozen, adapters on every linear layer trained, one pair a step unless --pairs is given (--use-peft=false: the same step fully fine-tuned)")
	f.BoolVar(&o.checkpointing, "gradient-checkpointing", false, "time the training step with gradient checkpointing (each layer recomputed in backward)")
	f.StringVar(&o.baseDType, "base-dtype", "bf16", "with --use-peft: the frozen base's dtype, bf16 or float32; with --mode decode, bf16 holds the weights as generate holds a bf16 checkpoint (default there: float32)")
	f.IntVar(&o.r, "lora-r", 16, "with --use-peft: the adapters' rank")
	f.Float64Var(&o.alpha, "lora-alpha", 32, "with --use-peft: the adapters' α (scale α/r)")
	f.StringVar(&o.sideBySide, "side-by-side", "", "run these rows, each side in a process of its own, relupo and PyTorch (bench/lora_bench.py) alternating: comma-separated among "+strings.Join(bench.LoRARowNames, ", ")+" (lora: bf16 base; one pair a step unless --pairs is given)")
	f.IntVar(&o.rounds, "rounds", 1, "with --side-by-side: run every row this many times, alternating")
	f.IntVar(&o.epochPairs, "epoch-pairs", 60000, "with --side-by-side: project the hours of one epoch of this many pairs from relupo's step")
	f.StringVar(&o.python, "python", "/usr/bin/python3", "with --side-by-side: the Python that has torch")
	f.StringVar(&o.script, "pytorch-script", "bench/lora_bench.py", "with --side-by-side: the PyTorch baseline")
	f.StringVar(&o.coreType, "pytorch-coretype", "auto", "with --side-by-side: OPENBLAS_CORETYPE of the PyTorch runs; auto times SkylakeX, Cooperlake, Haswell, Zen and OpenBLAS's own choice (\"default\") and takes the fastest")
	f.StringVar(&o.coreScript, "coretype-script", "bench/openblas_coretype.py", "with --side-by-side and --pytorch-coretype auto: the script that times the core types")
	f.BoolVar(&o.noPyTorch, "no-pytorch", false, "with --side-by-side: run relupo's rows only")
	f.StringVar(&o.results, "results", "", "with --side-by-side: also write every row's measurements to this JSON file")
}

// loraBenchActive reports whether the flags ask for a fine-tuning row:
// --use-peft or --gradient-checkpointing given (--use-peft=false: the full
// fine-tuning row), or --side-by-side.
func loraBenchActive(f *pflag.FlagSet) bool {
	return f.Changed("use-peft") || f.Changed("gradient-checkpointing") || f.Changed("side-by-side")
}

// runLoRABench runs what loraBenchOptions ask: one row here, or the rows
// side by side with PyTorch.
func runLoRABench(cmd *cobra.Command, o benchOptions, cfg model.Config, T int, comp train.Compute) error {
	lo := o.lora
	switch {
	case o.mode != "train":
		return usagef("bench: --use-peft, --gradient-checkpointing and --side-by-side time training steps: leave --mode train")
	case o.lengthsData != "":
		return usagef("bench: --use-peft, --gradient-checkpointing and --side-by-side take random pairs, not --data")
	case lo.r < 1 || !(lo.alpha > 0):
		return usagef("bench: --lora-r must be ≥ 1 and --lora-alpha > 0")
	case lo.baseDType != "bf16" && lo.baseDType != "float32":
		return usagef("bench: --base-dtype %q: bf16 or float32", lo.baseDType)
	case lo.rounds < 1:
		return usagef("bench: --rounds must be ≥ 1")
	}
	pairs := o.pairs
	if !cmd.Flags().Changed("pairs") {
		pairs = 1 // issue 15's rows: one pair of 2 × seq tokens
	}
	name := o.preset
	if o.shape != "" {
		name = "shape " + o.shape
	}
	ctx, out := cmd.Context(), cmd.OutOrStdout()
	if lo.sideBySide == "" {
		row := bench.LoRARow{LoRA: lo.usePEFT, Checkpointing: lo.checkpointing, BaseF32: lo.baseDType == "float32"}
		log := &labelWriter{w: os.Stderr, label: "[" + name + " " + row.String() + "] "}
		res, err := bench.LoRAStep(ctx, bench.LoRAStepConfig{Name: name, Model: cfg, Row: row, R: lo.r, Alpha: lo.alpha,
			Seq: T, Pairs: pairs, Steps: o.steps, Seconds: o.seconds, Compute: comp, Log: log})
		if err != nil {
			return err
		}
		if o.jsonOut {
			return json.NewEncoder(out).Encode(res)
		}
		_, err = fmt.Fprintf(out, "%s %s: %.1f tokens/s, %.2fs/step (median of %d), peak RSS %.2f GB (estimate %.2f GB), %d trainable parameters\n",
			name, row, res.TokensPerS, res.StepSMedian, res.StepsMeasured, res.PeakRSSGB, res.EstimateGB, res.ParamsTrainable)
		return err
	}
	rows, err := bench.ParseLoRARows(lo.sideBySide)
	if err != nil {
		return usageError{err}
	}
	if cmd.Flags().Changed("use-peft") || cmd.Flags().Changed("gradient-checkpointing") || cmd.Flags().Changed("base-dtype") {
		return usagef("bench: --side-by-side names its rows itself (%s): leave out --use-peft, --gradient-checkpointing and --base-dtype", strings.Join(bench.LoRARowNames, ", "))
	}
	if comp.Precision != kernels.F32 {
		return usagef("bench: --side-by-side compares float32 products (the baseline's): leave --compute-dtype float32")
	}
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("bench: finding relupo's own binary to run its rows: %w", err)
	}
	coreType := lo.coreType
	if coreType == "default" {
		coreType = ""
	}
	res, err := bench.SideBySide(ctx, bench.SideBySideConfig{Preset: o.preset, Shape: o.shape, Rows: rows, Seq: T, Pairs: pairs,
		Steps: o.steps, Seconds: o.seconds, Rounds: lo.rounds, Threads: o.threads, R: lo.r, Alpha: lo.alpha,
		Relupo: []string{self}, Python: lo.python, Script: lo.script, NoPyTorch: lo.noPyTorch,
		CoreType: coreType, CoreTypeScript: lo.coreScript, EpochPairs: lo.epochPairs, Log: os.Stderr})
	if err != nil {
		return err
	}
	if lo.results != "" {
		if err := atomicfile.Write(lo.results, func(w io.Writer) error {
			enc := json.NewEncoder(w)
			enc.SetIndent("", " ")
			return enc.Encode(res)
		}); err != nil {
			return fmt.Errorf("bench: --results: %w", err)
		}
	}
	if o.jsonOut {
		return json.NewEncoder(out).Encode(res)
	}
	return bench.WriteSideBySide(out, name, lo.epochPairs, res)
}
