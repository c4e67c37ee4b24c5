package train

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/relupo/relupo/pref"
)

// Recipe is a YAML recipe's keys and values, as the official SimPO/RePO,
// TRL and alignment-handbook recipes write them.
type Recipe map[string]any

// What a recipe means beyond the values of its keys: the trainer it was
// written for decides the loss when loss_type is missing or ambiguous, and
// some keys change the method or its memory in ways relupo cannot follow,
// which it refuses rather than train something else with exit 0.

// has reports whether the recipe sets key (to anything but null).
func (r Recipe) has(key string) bool {
	v, ok := r[key]
	return ok && v != nil
}

// str is the recipe's value of key as text ("" when unset).
func (r Recipe) str(key string) string {
	if !r.has(key) {
		return ""
	}
	return strings.TrimSpace(fmt.Sprint(r[key]))
}

// truthy reports whether the recipe sets key to true.
func (r Recipe) truthy(key string) bool {
	b, ok := r[key].(bool)
	return ok && b
}

// adamWNames are the Hugging Face optim values that are torch.optim.AdamW.
var adamWNames = []string{"adamw_torch", "adamw_hf", "adamw_torch_fused", "adamw_torch_npu_fused", "adamw_apex_fused"}

// RecipeKeys are the keys Apply reads beyond the options' own.
// (use_peft, the lora_* keys and gradient_checkpointing are options.)
var RecipeKeys = []string{"simpo_gamma", "cpo_alpha", "ln", "optim", "torch_dtype", "do_eval", "dataset_splits", "gradient_checkpointing_kwargs"}

// Apply gives o what the recipe means beyond its keys' values (after the
// values were set): the loss rules of [Recipe.loss], unless given
// explicitly, and the refusal of keys that would make relupo train
// something other than what the recipe asks. explicit reports whether a
// key was given on the command line (its YAML name). It returns notes for
// the user; the error lists every refused key.
func (r Recipe) Apply(o *Options, explicit func(key string) bool) ([]string, error) {
	var notes, refused []string
	if opt := r.str("optim"); opt != "" && !slices.Contains(adamWNames, opt) {
		refused = append(refused, fmt.Sprintf("optim: %s: relupo's optimizer is AdamW (adamw_torch)", opt))
	}
	if ln, ok := r["ln"].(bool); ok && !ln {
		refused = append(refused, "ln: false: SimPO without length normalization is not implemented")
	}
	switch dt := strings.ToLower(r.str("torch_dtype")); {
	case dt == "" || dt == "auto" || dt == "float32" || dt == "fp32" || dt == "<nil>":
	case o.UsePEFT && (dt == "bfloat16" || dt == "bf16" || dt == "float16" || dt == "fp16"):
		// The frozen base in a 2-byte dtype is what use_peft does with a
		// 2-byte checkpoint; a float32 one is rounded to bfloat16.
		if !explicit("base_dtype") && !r.has("base_dtype") {
			o.BaseDType = "bf16"
			if dt == "float16" || dt == "fp16" {
				notes = append(notes, "torch_dtype: float16 with use_peft: the frozen base is held as bfloat16 (base_dtype bf16), rounded from a float32 checkpoint or converted from a float16 one, whose 3 lowest mantissa bits are dropped (base_dtype float32 keeps them)")
			}
		}
	case o.UsePEFT:
		refused = append(refused, fmt.Sprintf("torch_dtype: %s: with use_peft the frozen base is held in its checkpoint's dtype or as bfloat16 (base_dtype); set torch_dtype: null or bfloat16", dt))
	default:
		refused = append(refused, fmt.Sprintf("torch_dtype: %s: relupo trains every weight in float32 (bf16: true or --compute-dtype bf16 gives bfloat16 products; use_peft keeps a frozen base in bfloat16); set torch_dtype: null", dt))
	}
	if r.truthy("do_eval") && len(o.EvalData) == 0 && o.EvalSplitRatio == 0 {
		refused = append(refused, "do_eval: true, but relupo reads no dataset_splits of a Hub dataset, so no evaluation would run: give eval_data (--eval-data) or eval_split_ratio, or set do_eval: false and remove eval_steps")
	}
	lossNote, err := r.loss(o, explicit)
	if err != nil {
		refused = append(refused, err.Error())
	} else if lossNote != "" {
		notes = append(notes, lossNote)
	}
	if len(refused) > 0 {
		return notes, &UsageError{fmt.Errorf("%s", strings.Join(refused, "; "))}
	}
	return notes, nil
}

// loss decides the recipe's loss as the trainer it was written for would,
// unless --loss-type was given:
//   - SimPO recipes (gamma_beta_ratio without loss_type): SimPOConfig's
//     default loss_type, sigmoid, is SimPO, and its hinge is SimPO's
//     reference-free hinge;
//   - TRL CPO recipes (simpo_gamma or cpo_alpha) with loss_type simpo: γ is
//     the raw simpo_gamma (gamma_beta_ratio = simpo_gamma/β, β 0.1 by
//     default), and cpo_alpha (1 by default) weighs the chosen responses'
//     cross-entropy, which is relupo's sft_weight;
//   - otherwise TRL's meanings: sigmoid is DPO, hinge DPO's hinge.
//
// It returns a note naming the loss chosen and why.
func (r Recipe) loss(o *Options, explicit func(string) bool) (string, error) {
	if explicit("loss_type") {
		return "", nil
	}
	lt := r.str("loss_type")
	cpo := r.has("simpo_gamma") || r.has("cpo_alpha")
	simpo := r.has("gamma_beta_ratio") && !cpo
	switch {
	case cpo:
		if lt != pref.LossSimPO {
			return "", fmt.Errorf("a TRL CPO recipe (simpo_gamma, cpo_alpha) with loss_type %q: only CPO's simpo loss is implemented", lt)
		}
		if !r.has("beta") && !explicit("beta") {
			o.Beta = 0.1 // CPOConfig's default
		}
		g := 0.5 // CPOConfig's default simpo_gamma
		if r.has("simpo_gamma") {
			v, err := YAMLNumber(r["simpo_gamma"])
			if err != nil {
				return "", fmt.Errorf("simpo_gamma: %v", err)
			}
			g = v
		}
		if !r.has("gamma_beta_ratio") && !explicit("gamma_beta_ratio") {
			o.GammaBetaRatio = g / o.Beta
		}
		alpha := 1.0 // CPOConfig's default cpo_alpha
		if r.has("cpo_alpha") {
			v, err := YAMLNumber(r["cpo_alpha"])
			if err != nil {
				return "", fmt.Errorf("cpo_alpha: %v", err)
			}
			alpha = v
		}
		if !r.has("sft_weight") && !explicit("sft_weight") {
			o.SFTWeight = alpha
		}
		o.LossType = pref.LossSimPO
		return fmt.Sprintf("a TRL CPO recipe: loss simpo with β %g, gamma_beta_ratio = simpo_gamma/β = %g, sft_weight = cpo_alpha = %g", o.Beta, o.GammaBetaRatio, o.SFTWeight), nil
	case lt == "" && simpo:
		o.LossType = pref.LossSimPO
		return "a SimPO recipe without loss_type (SimPOConfig's default, sigmoid, is SimPO): training simpo", nil
	case lt == "":
		return fmt.Sprintf("the recipe sets no loss_type: training relupo's default, %s (γ %g)", o.LossType, o.GammaBetaRatio), nil
	case lt == pref.LossSigmoid && simpo:
		o.LossType = pref.LossSimPO
		return "loss_type sigmoid in a SimPO recipe (it has gamma_beta_ratio) means SimPO: training simpo", nil
	case lt == pref.LossSigmoid:
		o.LossType = pref.LossDPO
		return "loss_type sigmoid (TRL's name for DPO): training dpo", nil
	case lt == pref.LossHinge && simpo:
		o.LossType = pref.LossSimPOHinge
		return "loss_type hinge in a SimPO recipe means SimPO's reference-free hinge, max(0, 1 − β(M − γ)): training simpo-hinge", nil
	}
	return "", nil
}

// YAMLNumber reads a number from a decoded YAML value: an integer, a float,
// or a string, as YAML 1.1 readers (PyYAML among them) leave "1e-6".
func YAMLNumber(v any) (float64, error) {
	switch x := v.(type) {
	case int:
		return float64(x), nil
	case int64:
		return float64(x), nil
	case uint64:
		return float64(x), nil
	case float64:
		return x, nil
	case string:
		f, err := strconv.ParseFloat(strings.TrimSpace(x), 64)
		if err != nil {
			return 0, fmt.Errorf("want a number, got %q", x)
		}
		return f, nil
	}
	return 0, fmt.Errorf("want a number, got %v", v)
}
