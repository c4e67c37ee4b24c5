package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/relupo/relupo/data"
	"github.com/relupo/relupo/kernels"
	"github.com/relupo/relupo/model"
	"github.com/relupo/relupo/train"
	"github.com/spf13/cobra"
)

// dataKeys are the options that decide how data becomes token ids; logps,
// eval and train share them so that they build identical rows.
var dataKeys = []string{"model_name_or_path", "data", "data_format", "max_length", "max_prompt_length", "truncation_mode",
	"chat_template", "completion_only_assistant_content", "per_device_eval_batch_size", "threads"}

// loadForInference loads the model and the examples of --data for the
// forward-only commands.
//
// With strict, every record must yield a pair (so that output lines match
// input records); otherwise --skip-invalid skips and reports unusable
// records, and without it they are errors.
func loadForInference(cmd *cobra.Command, o train.Options, strict bool) (*model.Model, []train.Example, *kernels.Pool, error) {
	if o.Model == "" {
		return nil, nil, nil, usagef("%s: --model is required", cmd.Name())
	}
	if len(o.Data) == 0 {
		return nil, nil, nil, usagef("%s: --data is required", cmd.Name())
	}
	format, err := data.ParseFormat(o.DataFormat)
	if err != nil {
		return nil, nil, nil, usageError{err}
	}
	srcs, err := data.ParseMixture(strings.Join(o.Data, ","))
	if err != nil {
		return nil, nil, nil, usageError{err}
	}
	m, _, err := model.Load(o.Model)
	if err != nil {
		return nil, nil, nil, err
	}
	enc, err := train.NewEncoder(o, m.Config)
	if err != nil {
		return nil, nil, nil, err
	}
	exs, err := train.LoadExamples(cmd.Context(), srcs, train.LoadOptions{
		Format: format, Encoder: enc, MaxLength: o.MaxLength, MaxPromptLength: o.MaxPromptLength, TruncationMode: o.TruncationMode,
		Strict: strict || !o.SkipInvalid, SkipInvalid: o.SkipInvalid && !strict,
		OnSkip: func(err error) { fmt.Fprintf(os.Stderr, "relupo: skipping %v\n", err) },
	})
	if err != nil {
		return nil, nil, nil, err
	}
	return m, exs, kernels.NewPool(o.Threads), nil
}

func newLogpsCmd() *cobra.Command {
	o := train.DefaultOptions()
	o.MaxLength, o.MaxPromptLength = 0, 0 // verbatim unless asked
	var out string
	cmd := &cobra.Command{
		Use:   "logps --model DIR --data FILE [--out FILE]",
		Short: "Write each pair's summed response log-probs and label counts as JSON lines",
		Long: `For each pair of --data, in input order, writes one JSON line
  {"chosen_logps": <sum>, "rejected_logps": <sum>, "chosen_tokens": <n>, "rejected_tokens": <n>}
where the sums run over the response's label tokens (each scored from the previous
position; prompt tokens are context only). Pre-tokenized rows (prompt_input_ids,
chosen_input_ids, rejected_input_ids) are used verbatim, with nothing added; text
formats go through the model's chat template and tokenizer. No truncation is done
unless --max-length is given. Every record must yield a pair, so that output lines
match input records: a record that cannot be scored is an error naming it. The
output can be given to 'relupo train --ref-logps'.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			m, exs, pool, err := loadForInference(cmd, o, true)
			if err != nil {
				return err
			}
			defer pool.Close()
			var w io.Writer = cmd.OutOrStdout()
			var f *os.File
			if out != "" && out != "-" {
				if f, err = os.CreateTemp(filepath.Dir(out), ".logps-*"); err != nil {
					return fmt.Errorf("logps: %w", err)
				}
				defer os.Remove(f.Name())
				w = f
			}
			bw := bufio.NewWriter(w)
			enc := json.NewEncoder(bw)
			ws := &model.Workspace{Pool: pool}
			var werr error
			err = train.Logps(m, ws, exs, o.PerDeviceEvalBatchSize, func(_ int, lp train.PairLogps) {
				for i := range lp.Chosen {
					if werr == nil {
						werr = enc.Encode(train.LogpsLine{ChosenLogps: lp.Chosen[i], RejectedLogps: lp.Rejected[i],
							ChosenTokens: int(lp.ChosenTokens[i]), RejectedTokens: int(lp.RejectedTokens[i])})
					}
				}
			})
			if err == nil {
				err = werr
			}
			if err == nil {
				err = bw.Flush()
			}
			if err != nil {
				return fmt.Errorf("logps: %w", err)
			}
			if f != nil {
				if err := f.Close(); err != nil {
					return fmt.Errorf("logps: %w", err)
				}
				if err := os.Rename(f.Name(), out); err != nil {
					return fmt.Errorf("logps: %w", err)
				}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "output file (default: standard output); written atomically")
	o.BindFlags(cmd.Flags(), dataKeys...)
	return cmd
}
