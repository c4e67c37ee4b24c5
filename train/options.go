package train

import (
	"fmt"
	"math"
	"os"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/relupo/relupo/kernels"
	"github.com/spf13/pflag"
	"go.yaml.in/yaml/v3"
)

// Options is every setting of a training run. Each field is both a YAML key
// (the official SimPO/RePO recipe and Hugging Face TrainingArguments names)
// and a command-line flag, the key in kebab-case, unless a flag tag names it
// otherwise. Flags override the YAML file, which overrides the defaults.
type Options struct {
	Model          string             `key:"model_name_or_path" flag:"model" help:"policy model folder (config.json, *.safetensors, tokenizer files)"`
	Data           []string           `key:"data" help:"training data files, each optionally with a fraction: a.jsonl,b.parquet:0.5"`
	DatasetMixer   map[string]float64 `key:"dataset_mixer" flag:"-" help:"recipe form of data: {path: fraction}"`
	DataFormat     string             `key:"data_format" help:"record format: auto, trl-standard, trl-conversational, implicit-prompt, hh, sharegpt, tokenized"`
	EvalData       []string           `key:"eval_data" help:"held-out evaluation files"`
	EvalSplitRatio float64            `key:"eval_split_ratio" help:"hold out this fraction of the training data for evaluation when no eval data is given"`
	OutputDir      string             `key:"output_dir" help:"where checkpoints, metrics.jsonl and the final model go"`

	LossType       string  `key:"loss_type" help:"repo, repo++, simpo, dpo, ipo, hinge, dpo+repo or dpo+repo++"`
	Beta           float64 `key:"beta" help:"β: inverse temperature (for repo it only scales the logged rewards)"`
	GammaBetaRatio float64 `key:"gamma_beta_ratio" alias:"gamma" help:"γ: the margin threshold on the length-normalized margin (repo, repo++, simpo)"`
	GammaEnd       float64 `key:"gamma_end" help:"if set, γ moves linearly from gamma_beta_ratio at the first step to this value at the last (dynamic γ; NaN: off)"`
	LabelSmoothing float64 `key:"label_smoothing" help:"ε for simpo and dpo"`
	SFTWeight      float64 `key:"sft_weight" help:"add this weight times the token-mean cross-entropy of the chosen responses to the loss (SimPO/RePO code)"`

	LearningRate              float64 `key:"learning_rate" help:"peak learning rate"`
	LRSchedulerType           string  `key:"lr_scheduler_type" help:"constant, constant_with_warmup, linear or cosine"`
	WarmupRatio               float64 `key:"warmup_ratio" help:"fraction of steps spent warming up (used when warmup_steps is 0)"`
	WarmupSteps               int     `key:"warmup_steps" help:"warm-up steps; overrides warmup_ratio"`
	WeightDecay               float64 `key:"weight_decay" help:"AdamW decoupled weight decay (not applied to biases and norms)"`
	AdamBeta1                 float64 `key:"adam_beta1" help:"AdamW β1"`
	AdamBeta2                 float64 `key:"adam_beta2" help:"AdamW β2"`
	AdamEpsilon               float64 `key:"adam_epsilon" help:"AdamW ε"`
	MaxGradNorm               float64 `key:"max_grad_norm" help:"clip the global gradient norm to this; 0 disables clipping"`
	PerDeviceTrainBatchSize   int     `key:"per_device_train_batch_size" help:"pairs per micro-batch"`
	PerDeviceEvalBatchSize    int     `key:"per_device_eval_batch_size" help:"pairs per evaluation batch"`
	GradientAccumulationSteps int     `key:"gradient_accumulation_steps" help:"micro-batches per optimizer step"`
	NumTrainEpochs            float64 `key:"num_train_epochs" help:"epochs to train (may be fractional)"`
	MaxSteps                  int     `key:"max_steps" help:"if > 0, the number of optimizer steps; overrides num_train_epochs"`
	Seed                      int     `key:"seed" help:"seed for shuffling and the evaluation split"`

	LoggingSteps   int    `key:"logging_steps" help:"log metrics every this many steps"`
	EvalSteps      int    `key:"eval_steps" help:"evaluate every this many steps (0: only at the end, when there is eval data)"`
	SaveSteps      int    `key:"save_steps" help:"write a checkpoint every this many steps (0: none)"`
	SaveTotalLimit int    `key:"save_total_limit" help:"keep at most this many checkpoints (0: all)"`
	SaveDType      string `key:"save_dtype" help:"dtype of the final model: auto (the input's), float32, float16 or bfloat16"`
	ResumeFrom     string `key:"resume_from_checkpoint" help:"checkpoint folder to resume from, or 'latest' for the newest in output_dir"`

	RefModel string `key:"ref_model" help:"reference model folder for the DPO-family losses (default: the initial policy)"`
	RefLogps string `key:"ref_logps" help:"reference log-probs written by 'relupo logps', instead of running a reference model"`

	MaxLength       int    `key:"max_length" help:"longest prompt+response in tokens"`
	MaxPromptLength int    `key:"max_prompt_length" help:"prompt tokens kept when a pair is too long"`
	TruncationMode  string `key:"truncation_mode" help:"keep_end (keep the end of a long prompt) or keep_start"`

	ChatTemplate                   string `key:"chat_template" help:"Jinja chat template text, a path to a .jinja file, or simpo-mistral; overrides the tokenizer's template"`
	CompletionOnlyAssistantContent bool   `key:"completion_only_assistant_content" help:"TRL's convention: the assistant header belongs to the prompt (add_generation_prompt), so only the assistant's content is scored"`
	SkipInvalid                    bool   `key:"skip_invalid" help:"skip records that cannot be trained on (counted in the summary) instead of stopping"`

	SkipNonfiniteSteps bool `key:"skip_nonfinite_steps" help:"skip (and count) a step whose loss or gradient is not finite, instead of stopping"`
	Force              bool `key:"force" help:"run even when the memory estimate exceeds the available memory"`
	SharePrompt        bool `key:"share_prompt" help:"run each pair's prompt once for both responses (exact up to float32 rounding); false runs prompt+chosen and prompt+rejected separately"`
	Threads            int  `key:"threads" help:"worker threads (0: all cores)"`

	ComputeDType string `key:"compute_dtype" help:"precision of the matrix products: float32, or bf16 (operands rounded to bfloat16, float32 sums; weights, optimizer and everything else stay float32). Default: bf16 if the recipe says bf16: true, else float32"`
	BF16         bool   `key:"bf16" help:"the Hugging Face Trainer's mixed-precision switch: true means compute_dtype bf16 when compute_dtype is not set"`
}

// Precision is the matrix-product precision the options ask for:
// compute_dtype, or bf16 when it is unset and bf16 is true.
func (o *Options) Precision() (kernels.Precision, error) {
	if o.ComputeDType == "" && o.BF16 {
		return kernels.BF16, nil
	}
	return kernels.ParsePrecision(o.ComputeDType)
}

// DefaultOptions are the defaults of a run: RePO with γ = 0.5 and the
// Hugging Face Trainer / SimPO config defaults for everything else.
func DefaultOptions() Options {
	return Options{
		DataFormat:                "auto",
		OutputDir:                 "relupo-output",
		LossType:                  "repo",
		Beta:                      2.0,
		GammaBetaRatio:            0.5,
		GammaEnd:                  math.NaN(),
		LearningRate:              1e-6,
		LRSchedulerType:           "cosine",
		WarmupRatio:               0.1,
		AdamBeta1:                 0.9,
		AdamBeta2:                 0.999,
		AdamEpsilon:               1e-8,
		MaxGradNorm:               1.0,
		PerDeviceTrainBatchSize:   2,
		PerDeviceEvalBatchSize:    4,
		GradientAccumulationSteps: 1,
		NumTrainEpochs:            1,
		Seed:                      42,
		LoggingSteps:              5,
		SaveDType:                 "auto",
		MaxLength:                 1024,
		MaxPromptLength:           512,
		TruncationMode:            "keep_end",
		SharePrompt:               true,
	}
}

// optionField is one field of Options with its names.
type optionField struct {
	key, flag, alias, help string
	index                  int
}

func optionFields() []optionField {
	t := reflect.TypeOf(Options{})
	var out []optionField
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		of := optionField{key: f.Tag.Get("key"), flag: f.Tag.Get("flag"), alias: f.Tag.Get("alias"), help: f.Tag.Get("help"), index: i}
		if of.flag == "" {
			of.flag = strings.ReplaceAll(of.key, "_", "-")
		}
		out = append(out, of)
	}
	return out
}

// BindFlags registers a flag for every option on fs (or only for the
// options whose YAML keys are listed), with o's values as defaults; parsing
// fs then writes into o.
func (o *Options) BindFlags(fs *pflag.FlagSet, keys ...string) {
	v := reflect.ValueOf(o).Elem()
	for _, f := range optionFields() {
		if f.flag == "-" || len(keys) > 0 && !slices.Contains(keys, f.key) {
			continue
		}
		names := []string{f.flag}
		if f.alias != "" {
			names = append(names, f.alias)
		}
		for i, name := range names {
			help := f.help
			if i > 0 {
				help = "alias of --" + f.flag
			}
			switch p := v.Field(f.index).Addr().Interface().(type) {
			case *string:
				fs.StringVar(p, name, *p, help)
			case *int:
				fs.IntVar(p, name, *p, help)
			case *float64:
				fs.Float64Var(p, name, *p, help)
			case *bool:
				fs.BoolVar(p, name, *p, help)
			case *[]string:
				fs.StringSliceVar(p, name, *p, help)
			}
		}
	}
}

// ApplyYAML reads a recipe file and sets every known key whose flag was not
// given on the command line (fs may be nil). It returns the keys it does not
// use, sorted, so that the caller can warn about them in one line.
func (o *Options) ApplyYAML(path string, fs *pflag.FlagSet) (unused []string, err error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	var raw map[string]any
	if err := yaml.Unmarshal(b, &raw); err != nil {
		return nil, fmt.Errorf("config: %s: %w", path, err)
	}
	byKey := map[string]optionField{}
	for _, f := range optionFields() {
		byKey[f.key] = f
	}
	v := reflect.ValueOf(o).Elem()
	keys := make([]string, 0, len(raw))
	for k := range raw {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		f, ok := byKey[k]
		if !ok {
			unused = append(unused, k)
			continue
		}
		if fs != nil && (flagChanged(fs, f.flag) || flagChanged(fs, f.alias)) {
			continue // the command line wins
		}
		if err := setField(v.Field(f.index), raw[k]); err != nil {
			return nil, fmt.Errorf("config: %s: key %s: %w", path, k, err)
		}
	}
	return unused, nil
}

func flagChanged(fs *pflag.FlagSet, name string) bool {
	if name == "" || name == "-" {
		return false
	}
	f := fs.Lookup(name)
	return f != nil && f.Changed
}

// setField assigns a decoded YAML value to an Options field, converting
// between the number forms YAML produces (1e-6 may arrive as a string, and
// 1e6 steps as a float).
func setField(dst reflect.Value, val any) error {
	switch p := dst.Addr().Interface().(type) {
	case *string:
		switch x := val.(type) {
		case string:
			*p = x
		case nil:
			*p = ""
		default:
			return fmt.Errorf("want a string, got %v", val)
		}
	case *float64:
		x, err := toFloat(val)
		if err != nil {
			return err
		}
		*p = x
	case *int:
		x, err := toFloat(val)
		if err != nil {
			return err
		}
		if x != math.Trunc(x) || math.Abs(x) > 1<<53 {
			return fmt.Errorf("want an integer, got %v", val)
		}
		*p = int(x)
	case *bool:
		x, ok := val.(bool)
		if !ok {
			return fmt.Errorf("want true or false, got %v", val)
		}
		*p = x
	case *[]string:
		switch x := val.(type) {
		case string:
			*p = []string{x}
		case []any:
			out := make([]string, 0, len(x))
			for _, it := range x {
				s, ok := it.(string)
				if !ok {
					return fmt.Errorf("want a list of strings, got %v", val)
				}
				out = append(out, s)
			}
			*p = out
		default:
			return fmt.Errorf("want a string or a list of strings, got %v", val)
		}
	case *map[string]float64:
		x, ok := val.(map[string]any)
		if !ok {
			return fmt.Errorf("want a mapping of dataset to fraction, got %v", val)
		}
		m := map[string]float64{}
		for k, fv := range x {
			f, err := toFloat(fv)
			if err != nil {
				return fmt.Errorf("%s: %w", k, err)
			}
			m[k] = f
		}
		*p = m
	default:
		return fmt.Errorf("unsupported option type %s", dst.Type())
	}
	return nil
}

func toFloat(val any) (float64, error) {
	switch x := val.(type) {
	case int:
		return float64(x), nil
	case int64:
		return float64(x), nil
	case uint64:
		return float64(x), nil
	case float64:
		return x, nil
	case string: // YAML 1.1 readers leave "1e-6" as a string; PyYAML does too.
		f, err := strconv.ParseFloat(strings.TrimSpace(x), 64)
		if err != nil {
			return 0, fmt.Errorf("want a number, got %q", x)
		}
		return f, nil
	}
	return 0, fmt.Errorf("want a number, got %v", val)
}
