package main

import (
	"encoding/json"
	"fmt"

	"github.com/relupo/relupo/model"
	"github.com/relupo/relupo/pref"
	"github.com/relupo/relupo/train"
	"github.com/spf13/cobra"
)

func newEvalCmd() *cobra.Command {
	o := train.DefaultOptions()
	cmd := &cobra.Command{
		Use:   "eval --model DIR --data FILE [--ref-model DIR] [--loss-type TYPE]",
		Short: "Preference accuracy, margins and loss of a model on held-out pairs",
		Long: `Runs the model over every pair of --data and prints one JSON object with the
mean loss of the chosen loss type, the preference accuracy (rewards/accuracies:
the fraction of pairs whose chosen response the model prefers), the mean margin,
the fraction of pairs still active for RePO at γ, the margin quantiles and the
mean label counts of the responses. The DPO-family losses need --ref-model or
--ref-logps. Data options are those of 'relupo train'.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			lc := pref.Config{LossType: o.LossType, Beta: o.Beta, Gamma: o.GammaBetaRatio, LabelSmoothing: o.LabelSmoothing}
			if err := lc.Validate(); err != nil {
				return usageError{err}
			}
			if lc.NeedsReference() && o.RefModel == "" && o.RefLogps == "" {
				return usagef("eval: loss %s needs --ref-model or --ref-logps", o.LossType)
			}
			m, exs, pool, err := loadForInference(cmd, o, false)
			if err != nil {
				return err
			}
			defer pool.Close()
			if len(exs) == 0 {
				return fmt.Errorf("eval: %v holds no usable pairs", o.Data)
			}
			ws := &model.Workspace{Pool: pool}
			var ref [][2]float64
			if lc.NeedsReference() {
				if ref, err = train.ReferenceLogps(o, m, exs, pool); err != nil {
					return err
				}
			}
			row, err := train.Evaluate(m, ws, exs, ref, lc, o.PerDeviceEvalBatchSize)
			if err != nil {
				return err
			}
			row["pairs"] = float64(len(exs))
			return json.NewEncoder(cmd.OutOrStdout()).Encode(row)
		},
	}
	o.BindFlags(cmd.Flags(), append(dataKeys, "skip_invalid", "loss_type", "beta", "gamma_beta_ratio", "label_smoothing", "ref_model", "ref_logps")...)
	return cmd
}
