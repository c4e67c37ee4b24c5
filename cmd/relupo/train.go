package main

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/relupo/relupo/dist"
	"github.com/relupo/relupo/train"
	"github.com/spf13/cobra"
)

func newTrainCmd() *cobra.Command {
	opts := train.DefaultOptions()
	var config string
	var jsonOut bool
	progress := true
	cmd := &cobra.Command{
		Use:   "train --model DIR --data FILE [flags]",
		Short: "Align a model with preference pairs (RePO by default)",
		Long: `Trains a Hugging Face model folder on preference pairs with RePO (or SimPO, DPO,
IPO, hinge, RePO++ and the DPO-based RePO variants), with the semantics of the
Hugging Face Trainer. Every flag is also a YAML key (the flag with '_' for '-'),
so the official SimPO/RePO recipes run with --config recipe.yaml; flags given on
the command line override the file, keys with no effect are listed in one line,
the loss a recipe means is printed (a SimPO recipe trains simpo), and keys that
would change the method relupo cannot follow (a non-AdamW optim, ln: false,
torch_dtype other than float32 without use_peft, do_eval without evaluation data)
are refused, each named.

Writes OUTPUT_DIR/metrics.jsonl (TRL metric names), OUTPUT_DIR/checkpoint-STEP/
every --save-steps, and finally the trained model (config.json, model.safetensors
in the input's dtype, tokenizer files, the chat template it trained with,
README.md) into OUTPUT_DIR.

--use-peft trains LoRA adapters (TRL's flags: --lora-r 16, --lora-alpha 32,
--lora-dropout 0.05, --lora-target-modules q_proj,v_proj or all-linear,
--use-rslora; --lora-init DIR starts from an existing adapter) on a frozen base:
only the adapters get gradients, AdamW state and weight decay, and clipping uses
their norm. The DPO-family losses take the base with the adapters off as their
reference (no second copy; --ref-model still works). OUTPUT_DIR then gets
adapter_model.safetensors and adapter_config.json in PEFT's format (checkpoints
too), and with --merge-adapter also the merged model; 'relupo merge' merges
later. --gradient-checkpointing recomputes each layer in backward instead of
keeping its activations: less memory, bit-identical results. A new run refuses a non-empty OUTPUT_DIR unless
--overwrite-output-dir or --resume-from-checkpoint is given. Under mpirun (a relupo
built with -tags mpi) it runs data-parallel: see the README. On SIGINT or
SIGTERM it finishes the step, writes a checkpoint and exits with code 1, saying
how to resume.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := applyConfig(cmd, &opts, config, true); err != nil {
				return err
			}
			if err := opts.Validate(); err != nil {
				return usageError{err}
			}
			return withRanks(func(comm dist.Comm) error {
				lead := comm.Rank() == 0 // rank 0 alone talks and writes
				note := warn
				if !lead {
					note = nil
				}
				ctx := cmd.Context()
				t, err := train.SetupRanks(ctx, opts, comm, note)
				if err != nil {
					return err
				}
				if lead {
					t.Progress = newProgress(os.Stderr, progress)
					l := t.Config.Loss
					fmt.Fprintf(os.Stderr, "relupo: %s (β %g, γ %g) on %d pairs (%d held out), %s model with %d parameters%s\n",
						l.LossType, l.Beta, l.Gamma, len(t.Train), len(t.Eval), t.Policy.Config.ModelType, t.Policy.Config.NumParams(), rankNote(comm, opts))
					if n := train.TruncatedPairs(t.Train); n > 0 {
						tr := t.Config.Data.Truncation
						fmt.Fprintf(os.Stderr, "relupo: truncation cuts %s (max_length %d, max_prompt_length %d, %s); 'relupo data stats' shows the lengths\n",
							truncatedNote(n, len(t.Train)), tr.MaxLength, tr.MaxPromptLength, tr.Mode)
					}
				}
				sum, err := t.Run(ctx)
				if err != nil || !lead {
					return err
				}
				return printSummary(cmd, sum, jsonOut)
			})
		},
	}
	cmd.Flags().StringVar(&config, "config", "", "YAML recipe (SimPO/RePO/TRL keys); command-line flags override it")
	cmd.Flags().BoolVar(&progress, "progress", true, "on a terminal, show a live progress line fitted to its width; false prints a plain line at each logged step instead, as when stderr is not a terminal")
	cmd.Flags().BoolVar(&jsonOut, "json", false, "print the final summary as one JSON object")
	bindFlags(&opts, cmd.Flags())
	_ = cmd.Flags().MarkHidden("adapter") // logps, eval and generate run an adapter; train starts from one with --lora-init
	return cmd
}

// printSummary prints a finished run's summary.
func printSummary(cmd *cobra.Command, sum train.Summary, jsonOut bool) error {
	if jsonOut {
		return json.NewEncoder(cmd.OutOrStdout()).Encode(sum)
	}
	fmt.Fprintf(cmd.OutOrStdout(), "trained %d steps in %.1fs, mean loss %.4g; model written to %s\n", sum.Steps, sum.Seconds, sum.TrainLoss, sum.OutputDir)
	if sum.Truncated > 0 {
		fmt.Fprintf(cmd.OutOrStdout(), "truncation cut %s\n", truncatedNote(sum.Truncated, sum.Pairs))
	}
	if len(sum.Eval) > 0 {
		fmt.Fprintf(cmd.OutOrStdout(), "eval: %s\n", summarize(sum.Eval))
	}
	return nil
}

// truncatedNote says how many of the training pairs truncation cut.
func truncatedNote(n, pairs int) string {
	return fmt.Sprintf("%d of %d training pairs (%.1f%%)", n, pairs, 100*float64(n)/float64(max(pairs, 1)))
}
