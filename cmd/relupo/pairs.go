package main

import (
	"fmt"
	"io"
	"math"
	"os"

	"github.com/relupo/relupo/internal/atomicfile"
	prefpairs "github.com/relupo/relupo/pairs"
	"github.com/relupo/relupo/score"
	"github.com/spf13/cobra"
)

// pairsOptions are the flags of `relupo pairs`.
type pairsOptions struct {
	input, output string
	minScoreGap   float64
}

func newPairsCmd() *cobra.Command {
	var o pairsOptions
	cmd := &cobra.Command{
		Use:   "pairs --input scored.jsonl --output pairs.jsonl [--min-score-gap X]",
		Short: "Build preference pairs from scored samples: the best response chosen, the worst rejected",
		Long: `Reads the rows 'relupo score' writes (a prompt, its responses and their "scores") and
makes one preference pair per prompt, as the SimPO and RePO on-policy data sets were made:
chosen is the response with the highest score and rejected the one with the lowest (the
first of equal scores). Empty (or white-space-only) responses and unscored ones (null)
are not candidates. A prompt is dropped, and counted, when fewer than two responses are
candidates, when the best and worst scores are equal (a tie), or when they differ by less
than --min-score-gap.

--output is written atomically in the layout of princeton-nlp's on-policy data sets
(llama3-ultrafeedback-armorm): prompt_id, prompt, chosen and rejected as message lists
(the prompt's messages, then the response), all_generated_responses, all_rm_scores,
score_chosen and score_rejected; 'relupo train --data' reads it as it is. The counts are
printed; a run that makes no pair fails and writes nothing.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runPairs(cmd, o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.input, "input", "", "scored rows, as relupo score writes them (required)")
	f.StringVar(&o.output, "output", "", "preference pairs, JSON lines (required)")
	f.Float64Var(&o.minScoreGap, "min-score-gap", 0, "drop prompts whose best and worst scores differ by less than this")
	return cmd
}

func runPairs(cmd *cobra.Command, o pairsOptions) error {
	if o.input == "" || o.output == "" {
		return usagef("pairs: --input and --output are required (see 'relupo pairs --help')")
	}
	if math.IsNaN(o.minScoreGap) || math.IsInf(o.minScoreGap, 0) || o.minScoreGap < 0 {
		return usagef("pairs: --min-score-gap must be a finite number ≥ 0, not %v", o.minScoreGap)
	}
	f, err := os.Open(o.input)
	if err != nil {
		return fmt.Errorf("pairs: %w", err)
	}
	rows, err := score.ReadRows(f, o.input)
	f.Close()
	if err != nil {
		return fmt.Errorf("pairs: %w", err)
	}
	scored := 0
	for _, r := range rows {
		if r.Scores != nil {
			scored++
		}
	}
	if scored == 0 {
		return fmt.Errorf("pairs: %s: no row has \"scores\" (run relupo score on it first)", o.input)
	}
	ps, st := prefpairs.Build(rows, prefpairs.Options{MinScoreGap: o.minScoreGap})
	stderr := cmd.ErrOrStderr()
	fmt.Fprintf(stderr, "pairs: %s\n", st)
	if len(ps) == 0 {
		return fmt.Errorf("pairs: %s: no pair could be made (%d rows, none with two candidates whose scores differ by at least %g)", o.input, st.Rows, o.minScoreGap)
	}
	if err := atomicfile.Write(o.output, func(w io.Writer) error { return prefpairs.Write(w, ps) }); err != nil {
		return fmt.Errorf("pairs: %w", err)
	}
	fmt.Fprintf(stderr, "pairs: wrote %d pairs to %s\n", len(ps), o.output)
	return nil
}
