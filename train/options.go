package train

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
)

// Options is every setting of a training run as the user gives it: each
// field is both a YAML key (the official SimPO/RePO recipe and Hugging Face
// TrainingArguments names, in the key tag) and a command-line flag, the key
// in kebab-case unless a flag tag names it otherwise (the command binds
// them; flags override the YAML file, which overrides the defaults). The
// library does not work from Options: [Options.Config] validates them once
// and turns them into the typed [Config].
type Options struct {
	Model          string             `key:"model_name_or_path" flag:"model" alias:"model-name-or-path" help:"policy model folder (config.json, *.safetensors, tokenizer files)"`
	Tokenizer      string             `key:"tokenizer" help:"folder of the tokenizer files and chat template that encode text data (default: the model folder); pre-tokenized data needs none"`
	Data           []string           `key:"data" help:"training data files (JSON, JSONL, .gz, Parquet, Arrow), each optionally with a fraction: a.jsonl,b.parquet:0.5"`
	DatasetMixer   map[string]float64 `key:"dataset_mixer" flag:"-" help:"recipe form of data: {path: fraction}"`
	DataFormat     string             `key:"data_format" help:"record format: auto, trl-standard, trl-conversational, implicit-prompt, hh, sharegpt, tokenized"`
	EvalData       []string           `key:"eval_data" help:"held-out evaluation files"`
	EvalSplitRatio float64            `key:"eval_split_ratio" help:"hold out this fraction of the training data for evaluation when no eval data is given"`
	OutputDir      string             `key:"output_dir" help:"where checkpoints, metrics.jsonl and the final model go"`

	LossType       string  `key:"loss_type" help:"repo, repo++, simpo, simpo-hinge (SimPO's reference-free hinge), dpo (or TRL's name for it, sigmoid), ipo, hinge (DPO's), dpo+repo or dpo+repo++"`
	Beta           float64 `key:"beta" help:"β: inverse temperature (for repo it only scales the logged rewards); NaN (unset): the loss's conventional value, 2 for repo, repo++ and simpo, 0.1 for dpo, ipo, hinge and the DPO-based RePO variants"`
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
	Overwrite      bool   `key:"overwrite_output_dir" help:"start a new run in a non-empty output_dir (its checkpoints, metrics and reference cache are removed first); without it a new run refuses a folder that holds anything"`

	Adapter string `key:"adapter" help:"PEFT LoRA adapter folder (adapter_config.json, adapter_model.safetensors) to run on top of --model, without merging"`

	RefModel string `key:"ref_model" help:"reference model folder for the DPO-family losses (default: the initial policy)"`
	RefLogps string `key:"ref_logps" help:"reference log-probs of the training data written by 'relupo logps' with the same data options, instead of running a reference model (evaluation data uses its own columns or the reference model)"`

	MaxLength       int    `key:"max_length" help:"longest prompt+response in tokens"`
	MaxPromptLength int    `key:"max_prompt_length" help:"prompt tokens kept when a pair is too long"`
	TruncationMode  string `key:"truncation_mode" help:"keep_end (keep the end of a long prompt) or keep_start"`

	ChatTemplate                   string       `key:"chat_template" help:"chat template overriding the tokenizer's: Jinja text, a .jinja file, a tokenizer_config.json, a model folder, or simpo-mistral; saved with the trained model"`
	CompletionOnlyAssistantContent bool         `key:"completion_only_assistant_content" help:"TRL's convention: the assistant header belongs to the prompt (add_generation_prompt), so only the assistant's content is scored"`
	ChatTemplateKwargs             TemplateVars `key:"chat_template_kwargs" help:"extra chat template variables, a JSON object such as '{\"enable_thinking\": false}' (Qwen3, SmolLM3), as apply_chat_template's keyword arguments; in YAML a mapping"`
	SkipInvalid                    bool         `key:"skip_invalid" help:"skip records that cannot be trained on (counted in the summary) instead of stopping"`

	SkipNonfiniteSteps bool `key:"skip_nonfinite_steps" help:"skip (and count) a step whose loss or gradient is not finite, instead of stopping"`
	Force              bool `key:"force" help:"run even when the memory estimate exceeds the available memory"`
	SharePrompt        bool `key:"share_prompt" help:"run each pair's prompt once for both responses (exact up to float32 rounding); false runs prompt+chosen and prompt+rejected separately"`
	Threads            int  `key:"threads" help:"worker threads (0: all cores)"`
	ZeroStage          int  `key:"zero_stage" help:"under mpirun (a relupo built with -tags mpi): 1 shards the AdamW state across the ranks (ZeRO stage 1: its memory per rank ÷ ranks); 0 keeps it whole on every rank"`

	UsePEFT           bool     `key:"use_peft" help:"train LoRA adapters (PEFT's format) instead of every weight: the base stays frozen (in its checkpoint's 2-byte dtype when it has one), and OUTPUT_DIR gets adapter_model.safetensors and adapter_config.json"`
	LoraR             int      `key:"lora_r" help:"LoRA rank r (0, unset: TRL's default 16, or --lora-init's adapter's)"`
	LoraAlpha         float64  `key:"lora_alpha" help:"LoRA α: the update is scaled by α/r (NaN, unset: TRL's default 32, or --lora-init's adapter's)"`
	LoraDropout       float64  `key:"lora_dropout" help:"dropout on the LoRA adapters' input (NaN, unset: TRL's default 0.05, or --lora-init's adapter's)"`
	LoraTargetModules []string `key:"lora_target_modules" help:"the linear layers that get adapters: names among q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj, or all-linear (unset: PEFT's default for Llama, Mistral, Qwen and Gemma models, q_proj,v_proj)"`
	UseRSLoRA         bool     `key:"use_rslora" help:"rank-stabilized LoRA: scale the update by α/√r instead of α/r"`
	LoraInit          string   `key:"lora_init" help:"start from this PEFT adapter folder (adapter_config.json, adapter_model.safetensors) instead of a fresh adapter; its r, α, targets and rsLoRA apply"`
	MergeAdapter      bool     `key:"merge_adapter" help:"with use_peft, also write the merged model (W + scale·B·A in the base's dtype: config.json, model.safetensors, tokenizer files) into output_dir beside the adapter"`
	BaseDType         string   `key:"base_dtype" help:"with use_peft, how the frozen base weights are held: auto (2 bytes a weight for a 2-byte checkpoint: bf16 as it is, fp16 converted to bf16, which drops 3 mantissa bits; float32 stays float32), bf16 (a float32 checkpoint rounded to bfloat16) or float32"`

	GradientCheckpointing bool `key:"gradient_checkpointing" help:"keep only each layer's input in the forward pass and recompute the layer inside backward: less memory for about a third more compute; the results are bit-identical"`

	ComputeDType string `key:"compute_dtype" help:"precision of the matrix products: float32, or bf16 (operands rounded to bfloat16, float32 sums; weights, optimizer and everything else stay float32). Default: bf16 if the recipe says bf16: true, else float32"`
	BF16         bool   `key:"bf16" help:"the Hugging Face Trainer's mixed-precision switch: true means compute_dtype bf16 when compute_dtype is not set"`
}

// DefaultOptions are the defaults of a run: RePO with γ = 0.5 and the
// Hugging Face Trainer / SimPO config defaults for everything else.
func DefaultOptions() Options {
	return Options{
		DataFormat:                "auto",
		OutputDir:                 "relupo-output",
		LossType:                  "repo",
		Beta:                      math.NaN(), // the loss's default (pref.DefaultBeta)
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
		LoraAlpha:                 math.NaN(), // TRL's 32, or the --lora-init adapter's
		LoraDropout:               math.NaN(), // TRL's 0.05, or the --lora-init adapter's
		BaseDType:                 "auto",
	}
}

// TemplateVars are extra chat template variables (chat_template_kwargs).
// As a flag it reads and prints a JSON object.
type TemplateVars map[string]any

// String returns v as a JSON object ("" when empty).
func (v TemplateVars) String() string {
	if len(v) == 0 {
		return ""
	}
	b, err := json.Marshal(map[string]any(v))
	if err != nil {
		return fmt.Sprint(map[string]any(v))
	}
	return string(b)
}

// Set reads a JSON object; "" clears v.
func (v *TemplateVars) Set(s string) error {
	if s == "" {
		*v = nil
		return nil
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(s), &m); err != nil || m == nil {
		return errors.New(`want a JSON object such as {"enable_thinking": false}`)
	}
	*v = m
	return nil
}

// Type names the flag's value in help.
func (v *TemplateVars) Type() string { return "json" }
