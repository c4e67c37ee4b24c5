package main

import (
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/relupo/relupo/train"
	"github.com/spf13/pflag"
)

// An official RePO recipe (the keys of junkangwu/RePO's
// llama-3-8b-instruct-repo-v2.yaml, with a local dataset path) runs unchanged:
// known keys are applied, flags given on the command line win, and every key
// relupo does not use is reported.
func TestYAMLRecipeAndFlagPrecedence(t *testing.T) {
	recipe := `# Model arguments
model_name_or_path: meta-llama/Meta-Llama-3-8B-Instruct
torch_dtype: null
attn_implementation: flash_attention_2
# Data training arguments
dataset_mixer:
  data/llama3-ultrafeedback-armorm.parquet: 1.0
dataset_splits:
- train_prefs
- test_prefs
preprocessing_num_workers: 12
# RePO trainer config
bf16: true
beta: 10
gamma_beta_ratio: 0.6
loss_type: repo
do_eval: true
evaluation_strategy: steps
eval_steps: 400
gradient_accumulation_steps: 16
gradient_checkpointing: true
gradient_checkpointing_kwargs:
  use_reentrant: False
learning_rate: 1.0e-6
log_level: info
logging_steps: 5
lr_scheduler_type: cosine
max_length: 2048
max_prompt_length: 1800
num_train_epochs: 1
optim: adamw_torch
output_dir: outputs/llama-3-8b-instruct-repo-v2
run_name: llama-3-8b-instruct-repo-v2
per_device_train_batch_size: 2
per_device_eval_batch_size: 4
push_to_hub: false
save_strategy: "steps"
save_steps: 1000000
report_to:
- wandb
save_total_limit: 20
seed: 42
warmup_ratio: 0.1
`
	path := filepath.Join(t.TempDir(), "recipe.yaml")
	if err := os.WriteFile(path, []byte(recipe), 0o644); err != nil {
		t.Fatal(err)
	}
	o := train.DefaultOptions()
	fs := pflag.NewFlagSet("train", pflag.ContinueOnError)
	bindFlags(&o, fs)
	if err := fs.Parse([]string{"--learning-rate", "5e-7", "--gamma", "0.4", "--output-dir", "mine"}); err != nil {
		t.Fatal(err)
	}
	r, err := applyYAML(&o, path, fs)
	if err != nil {
		t.Fatal(err)
	}
	unused := r.unused
	wantUnused := []string{"attn_implementation", "dataset_splits", "do_eval", "evaluation_strategy",
		"gradient_checkpointing_kwargs", "log_level", "optim", "preprocessing_num_workers", "push_to_hub", "report_to", "run_name",
		"save_strategy", "torch_dtype"}
	if !slices.Equal(unused, wantUnused) {
		t.Errorf("unused keys %v,\nwant %v", unused, wantUnused)
	}
	prec, err := o.Precision()
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"bf16: true → bf16 matrix products", prec.String(), "bf16"},
		{"learning_rate (flag wins)", o.LearningRate, 5e-7},
		{"gamma_beta_ratio (alias flag wins)", o.GammaBetaRatio, 0.4},
		{"output_dir (flag wins)", o.OutputDir, "mine"},
		{"beta", o.Beta, 10.0},
		{"loss_type", o.LossType, "repo"},
		{"gradient_accumulation_steps", o.GradientAccumulationSteps, 16},
		{"max_prompt_length", o.MaxPromptLength, 1800},
		{"gradient_checkpointing (an option now)", o.GradientCheckpointing, true},
		{"save_steps (1000000)", o.SaveSteps, 1000000},
		{"warmup_ratio", o.WarmupRatio, 0.1},
		{"model", o.Model, "meta-llama/Meta-Llama-3-8B-Instruct"},
		{"dataset_mixer", o.DatasetMixer["data/llama3-ultrafeedback-armorm.parquet"], 1.0},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
}

func TestYAMLErrors(t *testing.T) {
	for _, tc := range []struct{ name, yaml, want string }{
		{"bad number", "learning_rate: fast\n", "key learning_rate: want a number"},
		{"fractional int", "max_steps: 2.5\n", "key max_steps: want an integer"},
		{"bad yaml", "a: [\n", "recipe.yaml"},
		{"mixer type", "dataset_mixer: [a, b]\n", "key dataset_mixer: want a mapping"},
		{"template kwargs type", "chat_template_kwargs: [enable_thinking]\n", "key chat_template_kwargs: want a mapping such as {enable_thinking: false}"},
		{"template kwargs json", "chat_template_kwargs: 'enable_thinking=false'\n", `key chat_template_kwargs: want a JSON object such as {"enable_thinking": false}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "recipe.yaml")
			os.WriteFile(path, []byte(tc.yaml), 0o644)
			o := train.DefaultOptions()
			_, err := applyYAML(&o, path, nil)
			if err == nil || !contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }

// chat_template_kwargs arrives as a YAML mapping, a JSON string in YAML, or
// a JSON flag (which wins), and reaches the data pipeline's renderer.
func TestChatTemplateKwargs(t *testing.T) {
	for _, tc := range []struct{ yaml, flag, want string }{
		{"chat_template_kwargs: {enable_thinking: false}\n", "", `{"enable_thinking":false}`},
		{"chat_template_kwargs: '{\"enable_thinking\": true, \"x\": 2}'\n", "", `{"enable_thinking":true,"x":2}`},
		{"chat_template_kwargs: {enable_thinking: false}\n", `{"enable_thinking": true}`, `{"enable_thinking":true}`},
		{"learning_rate: 1e-6\n", "", ""},
	} {
		path := filepath.Join(t.TempDir(), "recipe.yaml")
		os.WriteFile(path, []byte(tc.yaml), 0o644)
		o := train.DefaultOptions()
		fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
		bindFlags(&o, fs)
		if tc.flag != "" {
			if err := fs.Parse([]string{"--chat-template-kwargs", tc.flag}); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := applyYAML(&o, path, fs); err != nil {
			t.Fatal(err)
		}
		if got := o.ChatTemplateKwargs.String(); got != tc.want {
			t.Errorf("yaml %q flag %q: got %s, want %s", tc.yaml, tc.flag, got, tc.want)
		}
		dc, err := o.DataConfig()
		if err != nil && tc.want != "" {
			t.Fatal(err)
		}
		if err == nil && train.TemplateVars(dc.Encode.TemplateVars).String() != tc.want {
			t.Errorf("data config's template variables %v, want %s", dc.Encode.TemplateVars, tc.want)
		}
	}
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	o := train.DefaultOptions()
	bindFlags(&o, fs)
	fs.SetOutput(io.Discard)
	if err := fs.Parse([]string{"--chat-template-kwargs", "enable_thinking=false"}); err == nil || !strings.Contains(err.Error(), "want a JSON object") {
		t.Errorf("got %v, want a JSON error", err)
	}
}
