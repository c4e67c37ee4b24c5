package main

import (
	"fmt"
	"os"
	"slices"

	"github.com/relupo/relupo/train"
	"github.com/spf13/cobra"
)

// dataKeys are the data options of logps and eval: those of data stats,
// and skip_invalid. Every list here grows from tokenKeys, so that the
// commands build the pairs train builds.
var dataKeys = append(slices.Clone(statsKeys), "skip_invalid")

// tokenKeys are the options that decide each pair's token ids.
var tokenKeys = []string{"model_name_or_path", "data", "data_format", "max_length", "max_prompt_length", "truncation_mode",
	"chat_template", "chat_template_kwargs", "completion_only_assistant_content", "tokenizer"}

// warn prints a note for the user on standard error.
func warn(msg string) { fmt.Fprintf(os.Stderr, "relupo: %s\n", msg) }

func newLogpsCmd() *cobra.Command {
	o := train.DefaultOptions()
	var out, config string
	cmd := &cobra.Command{
		Use:   "logps --model DIR --data FILE [--adapter DIR] [--out FILE]",
		Short: "Write each pair's summed response log-probs and label counts as JSON lines",
		Long: `Scores every pair of --data with --model, reading the data exactly as 'relupo train'
does with the same options and defaults (max_length 1024, max_prompt_length 512,
keep_end), and writes a reference log-prob file that 'relupo train --ref-logps' and
'relupo eval --ref-logps' accept. It is JSON lines: first a header

  {"relupo_logps": {"version", "model", "data": [{"path", "fraction", "bytes", "sha256"}],
                    "data_format", "max_length", "max_prompt_length", "truncation_mode",
                    "chat_template", "chat_template_kwargs" (when set),
                    "completion_only_assistant_content", "skip_invalid",
                    "compute_dtype", "pairs", "adapter" (with --adapter)}}

recording what produced it, then one line per pair, in data order:

  {"chosen_logps": <sum>, "rejected_logps": <sum>, "chosen_tokens": <n>,
   "rejected_tokens": <n>, "prompt_tokens": <n>, "ids": <hash of the pair's token ids>}

where the sums run over the response's label tokens (each scored from the previous
position; prompt tokens are context only). Pre-tokenized rows are used verbatim; text
formats go through the model's chat template and tokenizer. A record that cannot be
scored is an error naming it, unless --skip-invalid is given. 'relupo train
--ref-logps' refuses a file whose data files, data options or per-pair token counts
differ from the run's, naming the first pair that differs.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := applyConfig(cmd, &o, config, false); err != nil {
				return err
			}
			f, err := train.Logps(cmd.Context(), o, warn)
			if err != nil {
				return err
			}
			if out == "" || out == "-" {
				return f.Write(cmd.OutOrStdout())
			}
			return f.WriteFile(out)
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "output file (default: standard output); written atomically")
	cmd.Flags().StringVar(&config, "config", "", configHelp)
	bindFlags(&o, cmd.Flags(), append(slices.Clone(dataKeys), "adapter")...)
	return cmd
}
