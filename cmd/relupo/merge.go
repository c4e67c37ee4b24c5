package main

import (
	"fmt"

	"github.com/relupo/relupo/train"
	"github.com/spf13/cobra"
)

func newMergeCmd() *cobra.Command {
	var o train.MergeOptions
	cmd := &cobra.Command{
		Use:   "merge --model BASE --adapter DIR --output-dir OUT",
		Short: "Merge a LoRA adapter into its base model and write the full model",
		Long: `Writes BASE with the PEFT LoRA adapter DIR merged in, as PEFT's merge_and_unload:
every adapted weight becomes W + scale·B·A (scale α/r, or α/√r with use_rslora),
computed in float32 and saved in the base's dtype unless --save-dtype says otherwise,
so each merged weight is rounded once. OUT gets config.json, model.safetensors and
the tokenizer files (the adapter folder's when it has them, as 'relupo train
--use-peft' saves the chat template it trained with there, else the base's); the
folder is written aside and swapped in whole. The base is held in float32 while
merging (4 bytes a parameter).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := train.Merge(o); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "merged %s into %s; written to %s\n", o.Adapter, o.Model, o.OutputDir)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Model, "model", "", "base model folder the adapter was trained on (required)")
	f.StringVar(&o.Model, "model-name-or-path", "", "alias of --model")
	f.StringVar(&o.Adapter, "adapter", "", "PEFT adapter folder: adapter_config.json, adapter_model.safetensors (required)")
	f.StringVar(&o.OutputDir, "output-dir", "", "folder for the merged model (required)")
	f.StringVar(&o.SaveDType, "save-dtype", "auto", "dtype of the merged weights: auto (the base's), float32, float16 or bfloat16")
	f.BoolVar(&o.Overwrite, "overwrite-output-dir", false, "replace a model already in --output-dir")
	f.IntVar(&o.Threads, "threads", 0, "worker threads (0: all cores)")
	return cmd
}
