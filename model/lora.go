package model

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
)

// LoRAConfig describes low-rank adapters as PEFT's LoraConfig does: each
// targeted linear layer y = W x becomes y = W x + Scale·B(A x), with A
// [R, in] and B [out, R]; Dropout applies to the adapter's input x only.
type LoRAConfig struct {
	R       int
	Alpha   float64
	Dropout float64
	// Targets are module names from LoRAModules, in that order.
	Targets []string
	// RSLoRA scales by Alpha/√R instead of Alpha/R (use_rslora).
	RSLoRA bool
}

// LoRAModules are the linear layers an adapter can target, in the order
// of a decoder layer's state dict.
var LoRAModules = []string{"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}

// ParseLoRATargets reads a target_modules value: a comma-separated list of
// module names (q_proj, v_proj, …) or "all-linear" (every linear layer
// except lm_head, as PEFT does). The result is in LoRAModules order.
func ParseLoRATargets(s string) ([]string, error) {
	s = strings.TrimSpace(s)
	if s == "all-linear" {
		return slices.Clone(LoRAModules), nil
	}
	want := map[string]bool{}
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if !slices.Contains(LoRAModules, f) {
			return nil, fmt.Errorf("lora target module %q: this model's linear layers are %s (or all-linear)", f, strings.Join(LoRAModules, ", "))
		}
		want[f] = true
	}
	if len(want) == 0 {
		return nil, fmt.Errorf("lora target modules %q names no module", s)
	}
	var out []string
	for _, m := range LoRAModules {
		if want[m] {
			out = append(out, m)
		}
	}
	return out, nil
}

// Scale is the factor of the adapter's product: Alpha/R, or Alpha/√R with
// RSLoRA.
func (c LoRAConfig) Scale() float32 {
	if c.RSLoRA {
		return float32(c.Alpha / math.Sqrt(float64(c.R)))
	}
	return float32(c.Alpha / float64(c.R))
}

// Validate checks the configuration.
func (c LoRAConfig) Validate() error {
	switch {
	case c.R <= 0:
		return fmt.Errorf("lora r %d: must be positive", c.R)
	case !(c.Alpha > 0) || math.IsInf(c.Alpha, 0):
		return fmt.Errorf("lora alpha %v: must be positive and finite", c.Alpha)
	case !(c.Dropout >= 0 && c.Dropout < 1):
		return fmt.Errorf("lora dropout %v: must be in [0, 1)", c.Dropout)
	case len(c.Targets) == 0:
		return fmt.Errorf("lora: no target modules")
	}
	for _, t := range c.Targets {
		if !slices.Contains(LoRAModules, t) {
			return fmt.Errorf("lora target module %q: this model's linear layers are %s", t, strings.Join(LoRAModules, ", "))
		}
	}
	return nil
}

// LoRA is one linear layer's adapter: A [R, In] and B [Out, R], views into
// the Adapter's allocation.
type LoRA struct {
	A, B    []float32
	In, Out int
}

// LayerAdapter holds the adapters of one decoder layer; nil where the
// module is not targeted.
type LayerAdapter struct {
	Q, K, V, O, Gate, Up, Down *LoRA
}

// module returns the adapter slot of a module name.
func (la *LayerAdapter) module(name string) **LoRA {
	switch name {
	case "q_proj":
		return &la.Q
	case "k_proj":
		return &la.K
	case "v_proj":
		return &la.V
	case "o_proj":
		return &la.O
	case "gate_proj":
		return &la.Gate
	case "up_proj":
		return &la.Up
	case "down_proj":
		return &la.Down
	}
	return nil
}

// Adapter is a set of LoRA adapters for a model (or, used as gradients,
// their gradients) in one float32 allocation. Its tensors are named and
// ordered as PEFT saves them:
//
//	base_model.model.model.layers.N.self_attn.q_proj.lora_A.weight [R, in]
//	base_model.model.model.layers.N.self_attn.q_proj.lora_B.weight [out, R]
//	… k_proj, v_proj, o_proj, then mlp.gate_proj, mlp.up_proj, mlp.down_proj
type Adapter struct {
	Config LoRAConfig
	Layers []LayerAdapter
	Mem    []float32 // the single backing allocation

	tensors []Tensor
}

// loraShape returns a module's [out, in] in configuration c.
// loraSupported refuses adapters on a Fused model's fused projections:
// PEFT adapts qkv_proj and gate_up_proj as single modules (one A for q, k
// and v), which relupo's per-projection adapters cannot represent.
func (c Config) loraSupported(targets []string) error {
	if !c.Fused {
		return nil
	}
	for _, t := range targets {
		switch t {
		case "q_proj", "k_proj", "v_proj", "gate_proj", "up_proj":
			return fmt.Errorf("model: LoRA on %s is not supported for %s, whose checkpoint fuses it into qkv_proj or gate_up_proj (target o_proj and down_proj, or train the whole model)", t, c.ModelType)
		}
	}
	return nil
}

func (c Config) loraShape(module string) (out, in int) {
	D, I := c.HiddenSize, c.IntermediateSize
	qd, kvd := c.NumHeads*c.HeadDim, c.NumKVHeads*c.HeadDim
	switch module {
	case "q_proj":
		return qd, D
	case "k_proj", "v_proj":
		return kvd, D
	case "o_proj":
		return D, qd
	case "gate_proj", "up_proj":
		return I, D
	case "down_proj":
		return D, I
	}
	panic("model: unknown LoRA module " + module)
}

// loraPrefix is the PEFT name of a module of layer l, up to the module
// name.
func loraPrefix(l int, module string) string {
	block := "self_attn"
	if module == "gate_proj" || module == "up_proj" || module == "down_proj" {
		block = "mlp"
	}
	return fmt.Sprintf("base_model.model.model.layers.%d.%s.%s", l, block, module)
}

// NewAdapter allocates zeroed adapters of configuration lc for a model of
// configuration c.
func NewAdapter(c Config, lc LoRAConfig) (*Adapter, error) {
	if err := lc.Validate(); err != nil {
		return nil, err
	}
	if err := c.loraSupported(lc.Targets); err != nil {
		return nil, err
	}
	r := lc.R
	var total int
	for _, m := range lc.Targets {
		out, in := c.loraShape(m)
		total += r * (in + out)
	}
	total *= c.NumLayers
	a := &Adapter{Config: lc, Layers: make([]LayerAdapter, c.NumLayers), Mem: make([]float32, total)}
	off := 0
	take := func(n int) []float32 {
		v := a.Mem[off : off+n : off+n]
		off += n
		return v
	}
	for l := range a.Layers {
		for _, m := range LoRAModules {
			if !slices.Contains(lc.Targets, m) {
				continue
			}
			out, in := c.loraShape(m)
			lo := &LoRA{A: take(r * in), B: take(out * r), In: in, Out: out}
			*a.Layers[l].module(m) = lo
			pre := loraPrefix(l, m)
			a.tensors = append(a.tensors,
				Tensor{Name: pre + ".lora_A.weight", Shape: []int{r, in}, Data: lo.A},
				Tensor{Name: pre + ".lora_B.weight", Shape: []int{out, r}, Data: lo.B})
		}
	}
	return a, nil
}

// Tensors returns the adapter's tensors with PEFT's names, in PEFT's order.
func (a *Adapter) Tensors() []Tensor { return a.tensors }

// Zero sets every value to 0.
func (a *Adapter) Zero() { clear(a.Mem) }

// Init fills the adapters as PEFT initializes a new LoRA: A from
// Kaiming-uniform with a = √5 (uniform in ±1/√in) and B = 0, so the
// adapted model starts equal to the base. The values depend only on seed;
// the random stream is Go's PCG, not PyTorch's, so they differ from PEFT's
// draws for the same seed.
func (a *Adapter) Init(seed uint64) {
	r := rand.New(rand.NewPCG(seed, 0x5851f42d4c957f2d))
	for l := range a.Layers {
		for _, m := range LoRAModules {
			lo := *a.Layers[l].module(m)
			if lo == nil {
				continue
			}
			bound := 1 / math.Sqrt(float64(lo.In))
			for i := range lo.A {
				lo.A[i] = float32((2*r.Float64() - 1) * bound)
			}
			clear(lo.B)
		}
	}
}
