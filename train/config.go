package train

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"

	"github.com/relupo/relupo/data"
	"github.com/relupo/relupo/kernels"
	"github.com/relupo/relupo/model"
	"github.com/relupo/relupo/optim"
	"github.com/relupo/relupo/peft"
	"github.com/relupo/relupo/pref"
	"github.com/relupo/relupo/safetensors"
)

// Config is a validated training run, in the small typed parts that the
// library works with. [Options.Config] builds it; each part can also be
// built alone (see [Options.DataConfig] and the others) by the commands
// that need only that part.
type Config struct {
	// Model is the policy's Hugging Face folder.
	Model   string
	Data    DataConfig
	Loss    LossConfig
	Ref     RefConfig
	Loop    LoopConfig
	Compute Compute
	Output  OutputConfig
	// PEFT is the LoRA side of the run; PEFT.Enabled is false for full
	// fine-tuning.
	PEFT PEFTConfig
}

// PEFTConfig is the LoRA side of a run (use_peft): which adapters are
// trained, where they start and what is written at the end.
type PEFTConfig struct {
	// Enabled trains LoRA adapters only; the base weights are frozen.
	Enabled bool
	// LoRA is the adapters' configuration: the options', or the Init
	// adapter's.
	LoRA model.LoRAConfig
	// Init is a PEFT adapter folder to start from; empty starts a fresh
	// adapter (model.Adapter.Init, seeded by the run's seed).
	Init string
	// Merge also writes the merged model beside the adapter.
	Merge bool
	// BaseDType is how the frozen base weights are held: "auto" (the
	// checkpoint's dtype), "bf16" or "float32".
	BaseDType string
}

// The LoRA defaults of TRL's ModelConfig, and PEFT's default target
// modules for the Llama, Mistral, Qwen and Gemma model types (TRL's
// lora_target_modules None leaves the choice to PEFT).
const (
	DefaultLoRAR       = 16
	DefaultLoRAAlpha   = 32.0
	DefaultLoRADropout = 0.05
)

// DefaultLoRATargets are PEFT's default target modules for the model types
// relupo reads.
var DefaultLoRATargets = []string{"q_proj", "v_proj"}

// DataConfig says which files hold the pairs and how they become examples.
type DataConfig struct {
	// Train and Eval are the training and evaluation files.
	Train, Eval []data.Source
	// EvalSplitRatio holds out this fraction of the training pairs for
	// evaluation when Eval is empty (seeded by LoopConfig.Seed).
	EvalSplitRatio float64
	Format         data.Format
	Encode         data.EncodeOptions
	Truncation     data.Truncation
	// SkipInvalid skips (and counts) records that cannot be trained on
	// instead of stopping at the first.
	SkipInvalid bool
	// Tokenizer is the folder whose tokenizer.json and chat template encode
	// text records; empty means the model folder.
	Tokenizer string
}

// TokenizerDir is the folder that encodes text records: Tokenizer, or the
// model folder modelDir.
func (c DataConfig) TokenizerDir(modelDir string) string {
	if c.Tokenizer != "" {
		return c.Tokenizer
	}
	return modelDir
}

// load is the data.LoadConfig of some of c's files for a model with the
// given folder and limits.
func (c DataConfig) load(srcs []data.Source, modelDir string, lim data.Limits) data.LoadConfig {
	return data.LoadConfig{Sources: srcs, Format: c.Format, Tokenizer: c.TokenizerDir(modelDir), Encode: c.Encode,
		Truncation: c.Truncation, Limits: lim, SkipInvalid: c.SkipInvalid, Strict: !c.SkipInvalid}
}

// LossConfig is the loss of every step: pref.Config (loss type, β, γ, label
// smoothing, sft_weight) and the dynamic-γ schedule.
type LossConfig struct {
	pref.Config
	// GammaEnd, when not NaN, moves γ linearly from Config.Gamma at the
	// first step to GammaEnd at the last.
	GammaEnd float64
}

// At is the pref.Config of step (0-based) of a run of maxSteps steps.
func (l LossConfig) At(step, maxSteps int) pref.Config {
	c := l.Config
	if !math.IsNaN(l.GammaEnd) && maxSteps > 1 {
		f := float64(step) / float64(maxSteps-1)
		c.Gamma = l.Gamma + (l.GammaEnd-l.Gamma)*min(f, 1)
	}
	return c
}

// Dynamic reports whether γ follows a schedule.
func (l LossConfig) Dynamic() bool { return !math.IsNaN(l.GammaEnd) }

// RefConfig is where the DPO-family losses get the reference log-probs of
// examples that do not carry them in their records.
type RefConfig struct {
	// Model is the reference model's folder; empty means the initial
	// policy.
	Model string
	// Logps is a `relupo logps` file for the training data, checked against
	// it (see ReadLogpsFile); empty means computing them.
	Logps string
}

// LoopConfig is the Hugging Face Trainer's side of a run: the optimizer,
// its schedule, batching, and when to log, evaluate and save.
type LoopConfig struct {
	LearningRate float64
	Scheduler    string // optim.Schedules
	WarmupRatio  float64
	WarmupSteps  int
	// Beta1, Beta2, Eps and WeightDecay configure AdamW.
	Beta1, Beta2, Eps, WeightDecay float64
	// MaxGradNorm clips the global gradient norm; 0 disables clipping.
	MaxGradNorm float64
	// BatchSize and EvalBatchSize are pairs per micro-batch; Accumulation
	// is micro-batches per optimizer step.
	BatchSize, EvalBatchSize, Accumulation int
	// Epochs is used when MaxSteps ≤ 0.
	Epochs   float64
	MaxSteps int
	Seed     int
	// LoggingSteps, EvalSteps and SaveSteps are intervals in steps; 0 means
	// never (evaluation and logging still happen at the end).
	LoggingSteps, EvalSteps, SaveSteps int
	// SaveTotalLimit keeps that many checkpoints (0: all).
	SaveTotalLimit int
	// ResumeFrom is a checkpoint folder or "latest".
	ResumeFrom string
	// SkipNonfinite skips (and counts) a step with a non-finite value
	// instead of stopping.
	SkipNonfinite bool
	// SharePrompt runs each pair's prompt once for both responses.
	SharePrompt bool
	// ZeroStage 1 shards AdamW's state across data-parallel ranks.
	ZeroStage int
}

// adamW returns a fresh AdamW with c's hyperparameters.
func (c LoopConfig) adamW() *optim.AdamW {
	return &optim.AdamW{Beta1: c.Beta1, Beta2: c.Beta2, Eps: c.Eps, WeightDecay: c.WeightDecay}
}

// Compute says how the engine runs: worker threads and the precision of
// the matrix products. The zero Compute is float32 on every core.
type Compute struct {
	Threads   int // 0: all cores
	Precision kernels.Precision
	// Force runs even when the memory pre-flight says the run will not fit.
	Force bool
	// Checkpoint turns on gradient checkpointing (model.Workspace.Checkpoint):
	// each layer's input is kept and the layer recomputed in backward.
	Checkpoint bool
}

// OutputConfig is where a run writes, and in which dtype.
type OutputConfig struct {
	Dir string
	// SaveDType is the final model's dtype: "auto" (the input's), float32,
	// float16 or bfloat16.
	SaveDType string
	// Overwrite lets a new run start in a non-empty Dir (see checkOutput).
	Overwrite bool
}

// dtype resolves SaveDType against the input model's dtype.
func (c OutputConfig) dtype(input safetensors.DType) (safetensors.DType, error) {
	return saveDType(c.SaveDType, input)
}

// saveDType maps --save-dtype to a safetensors dtype; "auto" keeps the input's.
func saveDType(s string, input safetensors.DType) (safetensors.DType, error) {
	switch s {
	case "auto", "":
		if input == "" {
			input = safetensors.F32
		}
		return input, nil
	case "float32", "fp32":
		return safetensors.F32, nil
	case "float16", "fp16":
		return safetensors.F16, nil
	case "bfloat16", "bf16":
		return safetensors.BF16, nil
	}
	return "", fmt.Errorf("save_dtype %q is not one of auto, float32, float16, bfloat16", s)
}

// Precision is the matrix-product precision the options ask for:
// compute_dtype, or bf16 when it is unset and bf16 is true.
func (o *Options) Precision() (kernels.Precision, error) {
	if o.ComputeDType == "" && o.BF16 {
		return kernels.BF16, nil
	}
	return kernels.ParsePrecision(o.ComputeDType)
}

// problems collects validation messages.
type problems []string

func (p *problems) add(format string, args ...any) { *p = append(*p, fmt.Sprintf(format, args...)) }

func (p problems) err() error {
	if len(p) == 0 {
		return nil
	}
	return fmt.Errorf("invalid options: %s", strings.Join(p, "; "))
}

// Config validates every option of a training run, all at once (the error
// lists each problem), and returns the typed configuration.
func (o *Options) Config() (Config, error) {
	var bad problems
	if o.Model == "" {
		bad.add("model_name_or_path (--model) is required")
	}
	if len(o.Data) == 0 && len(o.DatasetMixer) == 0 {
		bad.add("data (--data) or dataset_mixer is required")
	}
	if o.OutputDir == "" {
		bad.add("output_dir is required")
	}
	c := Config{Model: o.Model, Ref: RefConfig{Model: o.RefModel, Logps: o.RefLogps},
		Output: OutputConfig{Dir: o.OutputDir, SaveDType: o.SaveDType, Overwrite: o.Overwrite}}
	var err error
	if c.Data, err = o.DataConfig(); err != nil {
		bad.add("%v", err)
	}
	if !(o.EvalSplitRatio >= 0 && o.EvalSplitRatio < 1) {
		bad.add("eval_split_ratio must be in [0, 1)")
	}
	if o.EvalSteps > 0 && len(o.EvalData) == 0 && o.EvalSplitRatio == 0 {
		bad.add("eval_steps (--eval-steps) %d asks for an evaluation every %d steps, but there is no evaluation data: give eval_data (--eval-data) or eval_split_ratio, or leave eval_steps unset", o.EvalSteps, o.EvalSteps)
	}
	if c.Loss, err = o.LossConfig(); err != nil {
		bad.add("%v", err)
	}
	if c.Loop, err = o.LoopConfig(); err != nil {
		bad.add("%v", err)
	}
	if c.Compute, err = o.Compute(); err != nil {
		bad.add("%v", err)
	}
	if _, err := saveDType(o.SaveDType, ""); err != nil {
		bad.add("%v", err)
	}
	if c.PEFT, err = o.PEFTConfig(); err != nil {
		bad.add("%v", err)
	}
	if o.Adapter != "" {
		bad.add("adapter (--adapter) runs an adapter in logps, eval and generate; training starts from one with use_peft and lora_init (--use-peft --lora-init %s)", o.Adapter)
	}
	if o.Model != "" && o.OutputDir != "" && sameFolder(o.Model, o.OutputDir) {
		bad.add("output_dir %s is the input model's folder (--model): the final save would overwrite the weights it trains from; choose another output_dir", o.OutputDir)
	}
	if err := bad.err(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// Validate checks every option of a training run (see [Options.Config]).
func (o *Options) Validate() error {
	_, err := o.Config()
	return err
}

// DataConfig returns the data part of the options: the training files
// (--data entries and the recipe's dataset_mixer, in a stable order), the
// evaluation files, the format, the text pipeline and the truncation.
func (o *Options) DataConfig() (DataConfig, error) {
	c := DataConfig{EvalSplitRatio: o.EvalSplitRatio, SkipInvalid: o.SkipInvalid, Tokenizer: o.Tokenizer,
		Encode: data.EncodeOptions{ChatTemplate: o.ChatTemplate, AssistantHeaderInPrompt: o.CompletionOnlyAssistantContent,
			TemplateVars: o.ChatTemplateKwargs},
		Truncation: data.Truncation{MaxLength: o.MaxLength, MaxPromptLength: o.MaxPromptLength, Mode: o.TruncationMode}}
	var err error
	if c.Format, err = data.ParseFormat(o.DataFormat); err != nil {
		return DataConfig{}, errors.New(strings.TrimPrefix(err.Error(), "data: "))
	}
	if err := c.Truncation.Validate(); err != nil {
		return DataConfig{}, err
	}
	if o.Tokenizer != "" {
		if _, err := os.Stat(filepath.Join(o.Tokenizer, "tokenizer.json")); err != nil {
			return DataConfig{}, fmt.Errorf("tokenizer (--tokenizer) %s: no tokenizer.json there", o.Tokenizer)
		}
	}
	if len(o.Data) > 0 {
		if c.Train, err = data.ParseMixture(strings.Join(o.Data, ",")); err != nil {
			return DataConfig{}, err
		}
	}
	keys := make([]string, 0, len(o.DatasetMixer))
	for k := range o.DatasetMixer {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		f := o.DatasetMixer[k]
		if !(f >= 0 && f <= 1) {
			return DataConfig{}, fmt.Errorf("dataset_mixer: %s: fraction %v is not in [0, 1]", k, f)
		}
		c.Train = append(c.Train, data.Source{Path: k, Fraction: f})
	}
	if len(o.EvalData) > 0 {
		if c.Eval, err = data.ParseMixture(strings.Join(o.EvalData, ",")); err != nil {
			return DataConfig{}, err
		}
	}
	return c, nil
}

// LossConfig returns the loss of the options; this is the one place a
// pref.Config is made from them.
func (o *Options) LossConfig() (LossConfig, error) {
	c := LossConfig{Config: pref.Config{LossType: o.LossType, Beta: o.Beta, Gamma: o.GammaBetaRatio,
		LabelSmoothing: o.LabelSmoothing, SFTWeight: o.SFTWeight}, GammaEnd: o.GammaEnd}
	if math.IsNaN(c.Beta) {
		c.Beta = pref.DefaultBeta(c.Type())
	}
	if err := c.Validate(); err != nil {
		return LossConfig{}, errors.New(strings.TrimPrefix(err.Error(), "pref: "))
	}
	if math.IsInf(o.GammaEnd, 0) {
		return LossConfig{}, errors.New("gamma_end must be finite (or unset)")
	}
	c.LossType = c.Type()
	return c, nil
}

// LoopConfig returns the optimizer, batching and saving part of the options.
func (o *Options) LoopConfig() (LoopConfig, error) {
	var bad problems
	if !slices.Contains(optim.Schedules(), o.LRSchedulerType) {
		bad.add("lr_scheduler_type %q is not one of %s", o.LRSchedulerType, strings.Join(optim.Schedules(), ", "))
	}
	if !(o.LearningRate >= 0) || math.IsInf(o.LearningRate, 0) {
		bad.add("learning_rate must be ≥ 0, got %v", o.LearningRate)
	}
	if o.PerDeviceTrainBatchSize < 1 || o.PerDeviceEvalBatchSize < 1 || o.GradientAccumulationSteps < 1 {
		bad.add("batch sizes and gradient_accumulation_steps must be ≥ 1")
	}
	if o.MaxSteps <= 0 && !(o.NumTrainEpochs > 0) {
		bad.add("num_train_epochs must be > 0 when max_steps is not set")
	}
	if o.SaveTotalLimit < 0 {
		bad.add("save_total_limit must be ≥ 0 (0 keeps every checkpoint), got %d", o.SaveTotalLimit)
	}
	if o.ZeroStage != 0 && o.ZeroStage != 1 {
		bad.add("zero_stage must be 0 or 1 (ZeRO stage 1 shards the optimizer state), got %d", o.ZeroStage)
	}
	if len(bad) > 0 {
		return LoopConfig{}, errors.New(strings.Join(bad, "; "))
	}
	return LoopConfig{
		LearningRate: o.LearningRate, Scheduler: o.LRSchedulerType, WarmupRatio: o.WarmupRatio, WarmupSteps: o.WarmupSteps,
		Beta1: o.AdamBeta1, Beta2: o.AdamBeta2, Eps: o.AdamEpsilon, WeightDecay: o.WeightDecay, MaxGradNorm: o.MaxGradNorm,
		BatchSize: o.PerDeviceTrainBatchSize, EvalBatchSize: o.PerDeviceEvalBatchSize, Accumulation: o.GradientAccumulationSteps,
		Epochs: o.NumTrainEpochs, MaxSteps: o.MaxSteps, Seed: o.Seed,
		LoggingSteps: o.LoggingSteps, EvalSteps: o.EvalSteps, SaveSteps: o.SaveSteps, SaveTotalLimit: o.SaveTotalLimit,
		ResumeFrom: o.ResumeFrom, SkipNonfinite: o.SkipNonfiniteSteps, SharePrompt: o.SharePrompt, ZeroStage: o.ZeroStage,
	}, nil
}

// Compute returns the threads and precision of the options.
func (o *Options) Compute() (Compute, error) {
	prec, err := o.Precision()
	if err != nil {
		return Compute{}, err
	}
	if o.Threads < 0 {
		return Compute{}, fmt.Errorf("threads must be ≥ 0, got %d", o.Threads)
	}
	if limit := kernels.MaxWorkers(); o.Threads > limit {
		return Compute{}, fmt.Errorf("threads %d is more than %d (%d× the %d cores here): more threads than cores only add switching; use 0 for all cores", o.Threads, limit, kernels.WorkersPerCore, runtime.NumCPU())
	}
	return Compute{Threads: o.Threads, Precision: prec, Force: o.Force, Checkpoint: o.GradientCheckpointing}, nil
}

// loraOptionsGiven lists the LoRA options that are set (in flag order),
// with their YAML names.
func (o *Options) loraOptionsGiven() []string {
	var set []string
	for _, k := range []struct {
		key string
		on  bool
	}{
		{"lora_r", o.LoraR != 0}, {"lora_alpha", !math.IsNaN(o.LoraAlpha)}, {"lora_dropout", !math.IsNaN(o.LoraDropout)},
		{"lora_target_modules", len(o.LoraTargetModules) > 0}, {"use_rslora", o.UseRSLoRA}, {"lora_init", o.LoraInit != ""},
		{"merge_adapter", o.MergeAdapter}, {"base_dtype", o.BaseDType != "" && o.BaseDType != "auto"},
	} {
		if k.on {
			set = append(set, k.key)
		}
	}
	return set
}

// PEFTConfig returns the LoRA part of the options. LoRA options without
// use_peft, and a lora_init adapter whose r, α, targets or rsLoRA differ
// from options given with it, are errors.
func (o *Options) PEFTConfig() (PEFTConfig, error) {
	given := o.loraOptionsGiven()
	if !o.UsePEFT {
		if len(given) > 0 {
			return PEFTConfig{}, fmt.Errorf("%s only apply to LoRA training: add use_peft (--use-peft), or remove them", strings.Join(given, ", "))
		}
		return PEFTConfig{}, nil
	}
	c := PEFTConfig{Enabled: true, Init: o.LoraInit, Merge: o.MergeAdapter, BaseDType: o.BaseDType}
	switch o.BaseDType {
	case "", "auto":
		c.BaseDType = "auto"
	case "bf16", "bfloat16":
		c.BaseDType = "bf16"
	case "float32", "fp32":
		c.BaseDType = "float32"
	default:
		return PEFTConfig{}, fmt.Errorf("base_dtype %q is not one of auto, bf16, float32", o.BaseDType)
	}
	var targets []string
	if len(o.LoraTargetModules) > 0 {
		var err error
		if targets, err = model.ParseLoRATargets(strings.Join(o.LoraTargetModules, ",")); err != nil {
			return PEFTConfig{}, fmt.Errorf("lora_target_modules: %v", err)
		}
	}
	if o.LoraR < 0 {
		return PEFTConfig{}, fmt.Errorf("lora_r must be positive, got %d", o.LoraR)
	}
	lc := model.LoRAConfig{R: DefaultLoRAR, Alpha: DefaultLoRAAlpha, Dropout: DefaultLoRADropout, Targets: slices.Clone(DefaultLoRATargets)}
	if o.LoraInit != "" {
		mc, err := model.LoadConfig(o.Model)
		if err != nil {
			return PEFTConfig{}, fmt.Errorf("lora_init %s: the base model's config: %v", o.LoraInit, err)
		}
		pc, err := peft.ReadConfig(o.LoraInit, mc)
		if err != nil {
			return PEFTConfig{}, fmt.Errorf("lora_init: %v", strings.TrimPrefix(err.Error(), "peft: "))
		}
		lc = pc.LoRA
		var clash []string
		if o.LoraR != 0 && o.LoraR != lc.R {
			clash = append(clash, fmt.Sprintf("lora_r %d (the adapter's r is %d)", o.LoraR, lc.R))
		}
		if !math.IsNaN(o.LoraAlpha) && o.LoraAlpha != lc.Alpha {
			clash = append(clash, fmt.Sprintf("lora_alpha %g (the adapter's is %g)", o.LoraAlpha, lc.Alpha))
		}
		if targets != nil && !slices.Equal(targets, lc.Targets) {
			clash = append(clash, fmt.Sprintf("lora_target_modules %s (the adapter's are %s)", strings.Join(targets, ","), strings.Join(lc.Targets, ",")))
		}
		if o.UseRSLoRA && !lc.RSLoRA {
			clash = append(clash, "use_rslora (the adapter was trained without it)")
		}
		if len(clash) > 0 {
			return PEFTConfig{}, fmt.Errorf("lora_init %s fixes the adapter's shape and scale, but %s: remove them, or start a fresh adapter", o.LoraInit, strings.Join(clash, "; "))
		}
		if !math.IsNaN(o.LoraDropout) {
			lc.Dropout = o.LoraDropout // dropout changes training only, not the adapter
		}
	} else {
		if o.LoraR != 0 {
			lc.R = o.LoraR
		}
		if !math.IsNaN(o.LoraAlpha) {
			lc.Alpha = o.LoraAlpha
		}
		if !math.IsNaN(o.LoraDropout) {
			lc.Dropout = o.LoraDropout
		}
		if targets != nil {
			lc.Targets = targets
		}
		lc.RSLoRA = o.UseRSLoRA
	}
	if err := lc.Validate(); err != nil {
		return PEFTConfig{}, err
	}
	c.LoRA = lc
	return c, nil
}

// sameFolder reports whether paths a and b name the same folder: the same
// path once cleaned and made absolute, or the same existing folder
// reached another way (a link).
func sameFolder(a, b string) bool {
	aa, err1 := filepath.Abs(a)
	bb, err2 := filepath.Abs(b)
	if err1 == nil && err2 == nil && aa == bb {
		return true
	}
	sa, err1 := os.Stat(a)
	sb, err2 := os.Stat(b)
	return err1 == nil && err2 == nil && os.SameFile(sa, sb)
}
