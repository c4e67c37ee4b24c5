package main

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/relupo/relupo/internal/quickstart"
	"github.com/spf13/cobra"
)

func newQuickstartCmd() *cobra.Command {
	o := quickstart.Options{OutputDir: "relupo-quickstart", Epochs: 6, TrainPairs: 2048, EvalPairs: 256}
	var jsonOut bool
	var computeDType string
	cmd := &cobra.Command{
		Use:   "quickstart",
		Short: "Train a small built-in model with RePO on a built-in task (about ten seconds on 2 cores)",
		Long: `Builds a small Llama (2 layers, width 64) and a synthetic preference task in memory,
then trains it with RePO and reports held-out preference accuracy before and after.
Nothing is read from disk or the network.

The task: a prompt is a set of 4 to 8 distinct symbols in random order. The chosen
response lists those symbols in ascending order; the rejected one lists as many
symbols absent from the prompt, also sorted. Only by attending to the prompt can a
model tell them apart, so a random model is right about half of the time.

Writes the trained model (config.json, model.safetensors), metrics.jsonl and a
README.md to --output-dir.

The other commands take any Hugging Face model folder of a supported architecture
(config.json model_type): llama, mistral, qwen2, qwen3, smollm3, olmo2, olmo3,
granite, phi3, gemma, gemma2 and gemma3_text (Gemma 3's text model, Gemma3ForCausalLM); SmolLM, SmolLM2
and other Llama-style models load as llama.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.TrainPairs < 8 || o.EvalPairs < 1 || !(o.Epochs > 0) {
				return usagef("quickstart: --train-pairs must be ≥ 8, --eval-pairs ≥ 1 and --epochs > 0")
			}
			o.ComputeDType = computeDType
			o.Progress = newProgress(os.Stderr, true)
			fmt.Fprintf(os.Stderr, "relupo quickstart: RePO (γ = 0.5) on %d synthetic pairs, %d held out\n", o.TrainPairs, o.EvalPairs)
			res, err := quickstart.Run(cmd.Context(), o)
			if err != nil {
				return err
			}
			if jsonOut {
				return json.NewEncoder(cmd.OutOrStdout()).Encode(res)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "held-out preference accuracy: %.1f%% before, %.1f%% after %d RePO steps (%.0fs)\nmodel and metrics.jsonl written to %s\n",
				100*res.AccuracyBefore, 100*res.AccuracyAfter, res.Steps, res.Seconds, res.OutputDir)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.OutputDir, "output-dir", o.OutputDir, "where the trained model and metrics.jsonl go")
	f.Float64Var(&o.Epochs, "epochs", o.Epochs, "training epochs")
	f.IntVar(&o.TrainPairs, "train-pairs", o.TrainPairs, "synthetic training pairs")
	f.IntVar(&o.EvalPairs, "eval-pairs", o.EvalPairs, "held-out pairs")
	f.IntVar(&o.Threads, "threads", 0, "worker threads (0: all cores)")
	f.StringVar(&computeDType, "compute-dtype", "float32", "precision of the matrix products: float32 or bf16")
	f.BoolVar(&jsonOut, "json", false, "print the summary as one JSON object: accuracy_before, accuracy_after, output_dir, seconds")
	return cmd
}
