package main

import (
	"encoding/json"

	"github.com/relupo/relupo/train"
	"github.com/spf13/cobra"
)

func newEvalCmd() *cobra.Command {
	o := train.DefaultOptions()
	var config string
	cmd := &cobra.Command{
		Use:   "eval --model DIR --data FILE [--adapter DIR] [--ref-model DIR] [--loss-type TYPE]",
		Short: "Preference accuracy, margins and loss of a model on held-out pairs",
		Long: `Runs the model over every pair of --data and prints one JSON object with the
mean loss of the chosen loss type (the same loss as training, --sft-weight
included), the preference accuracy (rewards/accuracies: the fraction of pairs
whose chosen response the model prefers), the mean margin, the fraction of pairs
still active for RePO at γ, the margin quantiles and the mean label counts of the
responses. The DPO-family losses need --ref-model or --ref-logps (a 'relupo logps'
file made with the same data options). Data options are those of 'relupo train'.
--adapter runs a PEFT LoRA adapter folder on top of --model without merging it.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := applyConfig(cmd, &o, config, true); err != nil {
				return err
			}
			row, err := train.Evaluate(cmd.Context(), o, warn)
			if err != nil {
				return err
			}
			return json.NewEncoder(cmd.OutOrStdout()).Encode(row)
		},
	}
	cmd.Flags().StringVar(&config, "config", "", configHelp+" (and its loss, as train reads it)")
	bindFlags(&o, cmd.Flags(), append(dataKeys, "loss_type", "beta", "gamma_beta_ratio", "label_smoothing", "sft_weight", "ref_model", "ref_logps", "adapter")...)
	return cmd
}
