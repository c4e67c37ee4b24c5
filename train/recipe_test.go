package train

import (
	"math"
	"strings"
	"testing"
)

// A recipe's loss is the one its trainer would train, and keys that would
// change the method are refused, each named. Before, SimPO recipes trained
// RePO, sigmoid always meant DPO, hinge always DPO's hinge, simpo_gamma was
// ignored, and use_peft, optim, ln, torch_dtype and do_eval were listed as
// unused with exit 0. use_peft now trains LoRA, and torch_dtype bfloat16
// with it holds the frozen base in bfloat16.
func TestRecipeApply(t *testing.T) {
	for _, tc := range []struct {
		name     string
		recipe   Recipe
		explicit []string // keys given on the command line
		loss     string
		beta     float64 // NaN: left to the loss's default
		gamma    float64
		sft      float64
		note     string
		refused  []string
		// baseDType is the base_dtype the rules leave ("" : not checked).
		baseDType string
	}{
		{name: "SimPO recipe without loss_type", recipe: Recipe{"beta": 2.5, "gamma_beta_ratio": 0.55}, loss: "simpo", beta: 2.5, gamma: 0.5, note: "SimPO recipe"},
		{name: "sigmoid in a SimPO recipe", recipe: Recipe{"loss_type": "sigmoid", "gamma_beta_ratio": 0.5}, loss: "simpo", beta: math.NaN(), gamma: 0.5, note: "means SimPO"},
		{name: "hinge in a SimPO recipe", recipe: Recipe{"loss_type": "hinge", "gamma_beta_ratio": 0.5}, loss: "simpo-hinge", beta: math.NaN(), gamma: 0.5, note: "reference-free hinge"},
		{name: "sigmoid elsewhere is DPO", recipe: Recipe{"loss_type": "sigmoid"}, loss: "dpo", beta: math.NaN(), gamma: 0.5, note: "TRL's name for DPO"},
		{name: "hinge elsewhere is DPO's", recipe: Recipe{"loss_type": "hinge"}, loss: "hinge", beta: math.NaN(), gamma: 0.5},
		{name: "no loss at all", recipe: Recipe{"learning_rate": 1e-6}, loss: "repo", beta: math.NaN(), gamma: 0.5, note: "relupo's default, repo"},
		{name: "RePO recipe", recipe: Recipe{"loss_type": "repo", "gamma_beta_ratio": 0.6, "optim": "adamw_torch", "torch_dtype": nil}, loss: "repo", beta: math.NaN(), gamma: 0.5},
		{name: "TRL CPO-SimPO", recipe: Recipe{"loss_type": "simpo", "simpo_gamma": 0.5, "beta": 2.0}, loss: "simpo", beta: 2, gamma: 0.25, sft: 1, note: "simpo_gamma/β"},
		{name: "TRL CPO-SimPO defaults", recipe: Recipe{"loss_type": "simpo", "cpo_alpha": 0.0}, loss: "simpo", beta: 0.1, gamma: 5, sft: 0},
		{name: "the command line wins", recipe: Recipe{"gamma_beta_ratio": 0.5}, explicit: []string{"loss_type"}, loss: "repo", beta: math.NaN(), gamma: 0.5},
		{name: "use_peft with torch_dtype bfloat16 holds the base in bf16", recipe: Recipe{"loss_type": "repo", "use_peft": true, "torch_dtype": "bfloat16", "gradient_checkpointing": true},
			loss: "repo", beta: math.NaN(), gamma: 0.5, baseDType: "bf16"},
		{name: "use_peft with torch_dtype float16", recipe: Recipe{"loss_type": "repo", "use_peft": true, "torch_dtype": "float16"},
			loss: "repo", beta: math.NaN(), gamma: 0.5, baseDType: "bf16", note: "torch_dtype: float16 with use_peft"},
		{name: "base_dtype given wins over torch_dtype", recipe: Recipe{"loss_type": "repo", "use_peft": true, "torch_dtype": "bfloat16"}, explicit: []string{"base_dtype"},
			loss: "repo", beta: math.NaN(), gamma: 0.5, baseDType: "auto"},
		{name: "refused keys", recipe: Recipe{"loss_type": "repo", "optim": "sgd", "ln": false, "torch_dtype": "bfloat16", "do_eval": true},
			refused: []string{"optim: sgd", "ln: false", "torch_dtype: bfloat16", "do_eval"}},
		{name: "use_peft with torch_dtype float64", recipe: Recipe{"loss_type": "repo", "use_peft": true, "torch_dtype": "float64"}, refused: []string{"torch_dtype: float64"}},
		{name: "CPO with another loss", recipe: Recipe{"loss_type": "sigmoid", "cpo_alpha": 1.0}, refused: []string{"CPO recipe"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := DefaultOptions() // the recipe's values are applied before Apply; here only the rules matter
			if g, ok := tc.recipe["gamma_beta_ratio"].(float64); ok && g != 0 {
				o.GammaBetaRatio = 0.5
			}
			if b, ok := tc.recipe["beta"].(float64); ok {
				o.Beta = b
			}
			if lt, ok := tc.recipe["loss_type"].(string); ok {
				o.LossType = lt
			}
			o.UsePEFT = tc.recipe.truthy("use_peft")
			explicit := func(k string) bool {
				for _, e := range tc.explicit {
					if e == k {
						return true
					}
				}
				return false
			}
			notes, err := tc.recipe.Apply(&o, explicit)
			if len(tc.refused) > 0 {
				if err == nil {
					t.Fatal("accepted")
				}
				for _, r := range tc.refused {
					if !strings.Contains(err.Error(), r) {
						t.Errorf("error %q does not name %q", err, r)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			sameBeta := o.Beta == tc.beta || math.IsNaN(o.Beta) && math.IsNaN(tc.beta)
			if o.LossType != tc.loss || !sameBeta || math.Abs(o.GammaBetaRatio-tc.gamma) > 1e-12 || o.SFTWeight != tc.sft {
				t.Errorf("loss %s β %v γ %v sft %v; want %s, %v, %v, %v", o.LossType, o.Beta, o.GammaBetaRatio, o.SFTWeight, tc.loss, tc.beta, tc.gamma, tc.sft)
			}
			if tc.baseDType != "" && o.BaseDType != tc.baseDType {
				t.Errorf("base_dtype %q, want %q", o.BaseDType, tc.baseDType)
			}
			if tc.note != "" && !strings.Contains(strings.Join(notes, "\n"), tc.note) {
				t.Errorf("notes %q do not say %q", notes, tc.note)
			}
		})
	}
}
