package main

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"

	"github.com/relupo/relupo/train"
	"github.com/spf13/cobra"
)

// statsKeys are the training options that decide what data stats sees
// (invalid records are counted, never fatal, so skip_invalid is not one).
var statsKeys = append(slices.Clone(tokenKeys), "per_device_eval_batch_size", "threads", "compute_dtype")

func newDataCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "data",
		Short: "Inspect preference data as training would tokenize it",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return usagef("data: give a subcommand (see 'relupo data --help')")
		},
	}
	cmd.AddCommand(newDataStatsCmd(), newDataPreviewCmd())
	return cmd
}

func newDataStatsCmd() *cobra.Command {
	o := train.DefaultOptions()
	var margins bool
	var gamma float64
	var config string
	cmd := &cobra.Command{
		Use:   "stats --model DIR --data FILE [--margins [--gamma G]]",
		Short: "Token-length, truncation and (with --margins) RePO margin statistics of a data set",
		Long: fmt.Sprintf(`Tokenizes --data exactly as 'relupo train' does (the model's chat template and
tokenizer, the same --data-format, --chat-template and truncation options) and prints
one JSON object:

  count            pairs that training would use
  skipped          records the reader skips (empty or identical responses)
  invalid          records training stops on unless --skip-invalid is given (a text the
                   template or tokenizer cannot encode, or a response that truncation
                   leaves without tokens); skip_reasons and invalid_reasons show the
                   first few of each
  prompt_tokens, chosen_tokens, rejected_tokens
                   length distributions before truncation (min, p50, p90, p99, max,
                   mean); the responses include the end-of-turn and EOS tokens
  truncated        pairs whose prompt (prompt_cut) or responses (responses_cut) the
                   official truncation at --max-length/--max-prompt-length cuts
  turns            user turns per prompt (text records)

With --margins the model scores every pair as training sees it (after truncation) and
"margins" holds the distribution of the RePO margin M = S_w/n_w - S_l/n_l (the
difference of the average response log-probs): p10, p50, p90 and mean, the fraction
of pairs with M >= --gamma (pairs RePO filters out: they get no gradient), the same
fraction at each γ of the paper's grid %v, and a suggested γ range.

The suggestion is the grid values at which at most %g%% of the pairs start out filtered,
that is from the smallest such γ (at least the 90th percentile of M) to %v. Below it a
noticeable share of the data gives no gradient from the first step; the paper's run in
its Fig. 4 has 13%% filtered at step 100, rising to 58%% as training separates the
pairs. The paper's best values were 0.4 to 0.6 (default 0.5); larger γ over-optimizes.
When even γ = %v filters more than %g%%, no range is suggested: the model already
separates much of this data.`, train.GammaGrid, 100*train.MaxInitialFiltered, train.GammaGrid[len(train.GammaGrid)-1], train.GammaGrid[len(train.GammaGrid)-1], 100*train.MaxInitialFiltered),
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := applyConfig(cmd, &o, config, false); err != nil {
				return err
			}
			if math.IsNaN(gamma) || math.IsInf(gamma, 0) {
				return usagef("data stats: --gamma must be a finite number")
			}
			st, err := train.Stats(cmd.Context(), o, train.StatsOptions{Margins: margins, Gamma: gamma})
			if err != nil {
				return err
			}
			enc := json.NewEncoder(cmd.OutOrStdout())
			enc.SetIndent("", "  ")
			return enc.Encode(st)
		},
	}
	f := cmd.Flags()
	f.BoolVar(&margins, "margins", false, "run the model and report the RePO margin distribution and a γ range")
	f.Float64Var(&gamma, "gamma", 0.5, "with --margins, the γ whose filtered fraction is reported")
	f.StringVar(&config, "config", "", configHelp)
	bindFlags(&o, f, statsKeys...)
	return cmd
}
