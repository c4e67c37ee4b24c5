// Package optim holds the optimizer side of training with Hugging Face
// Trainer semantics: AdamW exactly as torch.optim.AdamW, the weight-decay
// exclusions of the HF Trainer, gradient clipping as
// torch.nn.utils.clip_grad_norm_, and the learning-rate schedules of
// transformers' get_scheduler.
package optim

import (
	"errors"
	"fmt"
	"math"
	"runtime"
	"sort"
	"strings"
	"sync"

	"github.com/relupo/relupo/kernels"
)

// Param is one named parameter tensor, flattened. Name is the Hugging Face
// parameter name (for example "model.layers.0.self_attn.q_proj.weight");
// Grad has the same length as Data, or is nil when the parameter received no
// gradient (PyTorch's grad None), in which case the optimizer skips it.
type Param struct {
	Name string
	Data []float32
	Grad []float32
}

// AdamW is torch.optim.AdamW (amsgrad=False, maximize=False, the
// single-tensor implementation that PyTorch uses on CPU) with fp32 state.
// For each parameter with a gradient, step t (counted per parameter, as
// PyTorch does) computes
//
//	p ← p·(1 − lr·wd)                       only when DecayParam(name) and wd ≠ 0
//	m ← β1·m + (1−β1)·g
//	v ← β2·v + (1−β2)·g²
//	p ← p − (lr/(1−β1ᵗ)) · m / (√v/√(1−β2ᵗ) + ε)
//
// in float32 with the same operation order and rounding as PyTorch's CPU
// kernels on x86 with FMA (the two moment updates end in a fused
// multiply-add; the scalars lr·wd, the bias corrections and the step size are
// computed in float64 and rounded to float32 when applied, as PyTorch does
// with Python floats). Results agree with PyTorch bit for bit there.
//
// Create one with [NewAdamW]; the zero value is not usable because β1 = 0
// is a legitimate setting that a zero value could not tell apart.
type AdamW struct {
	// Beta1 and Beta2 are the moment decay rates, in [0, 1).
	Beta1, Beta2 float64
	// Eps is added to the denominator; it must be non-negative.
	Eps float64
	// WeightDecay is the decoupled weight-decay coefficient; non-negative.
	WeightDecay float64
	// Decay reports whether a parameter receives weight decay. Nil means
	// [DecayParam] (the HF Trainer's rule).
	Decay func(name string) bool
	// Profile, if not nil, counts the time of each Step as the optimizer's
	// part of a training step's time split (relupo bench --profile).
	Profile *kernels.Profile

	state map[string]*adamState
}

type adamState struct {
	step int64
	m, v []float32
}

// NewAdamW returns AdamW with the HF Trainer defaults (adamw_torch):
// β1 = 0.9, β2 = 0.999, ε = 1e-8, weight decay 0.
func NewAdamW() *AdamW {
	return &AdamW{Beta1: 0.9, Beta2: 0.999, Eps: 1e-8}
}

// DecayParam reports whether the HF Trainer applies weight decay to the named
// parameter. Trainer.get_decay_parameter_names excludes parameters of
// nn.LayerNorm modules (and, in older transformers, every layer type in
// ALL_LAYERNORM_LAYERS, to which the Llama code added LlamaRMSNorm) and every
// name matching, after lower-casing, one of the patterns "bias",
// "layernorm", "rmsnorm", "(^|\.)norm($|\.)" and "_norm($|\.)". With HF
// names those patterns cover every normalization weight of the supported
// architectures: model.norm.weight, input_layernorm, post_attention_layernorm,
// Qwen3's q_norm/k_norm, and all biases.
func DecayParam(name string) bool {
	n := strings.ToLower(name)
	if strings.Contains(n, "bias") || strings.Contains(n, "layernorm") || strings.Contains(n, "rmsnorm") {
		return false
	}
	for _, seg := range strings.Split(n, ".") {
		if seg == "norm" || strings.HasSuffix(seg, "_norm") {
			return false
		}
	}
	return true
}

func (o *AdamW) check(lr float64) error {
	switch {
	case o == nil:
		return errors.New("optim: nil AdamW")
	case !(o.Beta1 >= 0 && o.Beta1 < 1):
		return fmt.Errorf("optim: AdamW beta1 must be in [0, 1), got %v", o.Beta1)
	case !(o.Beta2 >= 0 && o.Beta2 < 1):
		return fmt.Errorf("optim: AdamW beta2 must be in [0, 1), got %v", o.Beta2)
	case !(o.Eps >= 0) || math.IsInf(o.Eps, 0):
		return fmt.Errorf("optim: AdamW eps must be non-negative and finite, got %v", o.Eps)
	case !(o.WeightDecay >= 0) || math.IsInf(o.WeightDecay, 0):
		return fmt.Errorf("optim: AdamW weight decay must be non-negative and finite, got %v", o.WeightDecay)
	case !(lr >= 0) || math.IsInf(lr, 0):
		return fmt.Errorf("optim: learning rate must be non-negative and finite, got %v", lr)
	}
	return nil
}

func (o *AdamW) decays(name string) bool {
	if o.Decay != nil {
		return o.Decay(name)
	}
	return DecayParam(name)
}

// Step applies one AdamW update with learning rate lr to every parameter
// that has a gradient. It checks everything before changing anything, so on
// error the parameters and the state are untouched.
func (o *AdamW) Step(params []Param, lr float64) error {
	if err := o.check(lr); err != nil {
		return err
	}
	seen := make(map[string]bool, len(params))
	for i, p := range params {
		if p.Name == "" {
			return fmt.Errorf("optim: AdamW step: parameter %d has no name", i)
		}
		if seen[p.Name] {
			return fmt.Errorf("optim: AdamW step: duplicate parameter %q", p.Name)
		}
		seen[p.Name] = true
		if p.Grad == nil {
			continue
		}
		if len(p.Grad) != len(p.Data) {
			return fmt.Errorf("optim: AdamW step: %s has %d values but %d gradients", p.Name, len(p.Data), len(p.Grad))
		}
		if st, ok := o.state[p.Name]; ok && len(st.m) != len(p.Data) {
			return fmt.Errorf("optim: AdamW step: %s has %d values but its optimizer state has %d", p.Name, len(p.Data), len(st.m))
		}
	}
	if o.state == nil {
		o.state = make(map[string]*adamState)
	}
	defer o.Profile.Stop(o.Profile.Start(), kernels.PartOptimizer, 0)
	for _, p := range params {
		if p.Grad == nil {
			continue
		}
		st, ok := o.state[p.Name]
		if !ok {
			st = &adamState{m: make([]float32, len(p.Data)), v: make([]float32, len(p.Data))}
			o.state[p.Name] = st
		}
		st.step++
		o.update(p, st, lr)
	}
	return nil
}

// parallelMin is the tensor size from which an update is split across
// goroutines; the update is elementwise, so the result does not depend on
// the split.
const parallelMin = 1 << 15

func (o *AdamW) update(p Param, st *adamState, lr float64) {
	t := float64(st.step)
	bc1 := 1 - math.Pow(o.Beta1, t)
	bc2 := 1 - math.Pow(o.Beta2, t)
	// The scalars are rounded to float32 as PyTorch applies Python floats to
	// float32 tensors.
	k := kernels.AdamWConsts{
		B1:         float32(o.Beta1),
		OneMinusB1: float32(1 - o.Beta1),
		B2:         float32(o.Beta2),
		OneMinusB2: float32(1 - o.Beta2),
		Eps:        float32(o.Eps),
		NegStep:    float32(-(lr / bc1)),
		BC2Sqrt:    float32(math.Sqrt(bc2)),
		Scale:      1,
		Decay:      o.WeightDecay != 0 && o.decays(p.Name),
	}
	if k.Decay {
		k.Scale = float32(1 - lr*o.WeightDecay)
	}
	n := len(p.Data)
	workers := min(runtime.GOMAXPROCS(0), n/parallelMin)
	if workers <= 1 {
		kernels.AdamW(p.Data, p.Grad[:n], st.m[:n], st.v[:n], k)
		return
	}
	var wg sync.WaitGroup
	chunk := (n + workers - 1) / workers
	for lo := 0; lo < n; lo += chunk {
		hi := min(lo+chunk, n)
		wg.Add(1)
		go func() {
			defer wg.Done()
			kernels.AdamW(p.Data[lo:hi], p.Grad[lo:hi], st.m[lo:hi], st.v[lo:hi], k)
		}()
	}
	wg.Wait()
}

// StateTensor is one named tensor of optimizer state, ready to be written
// to a safetensors checkpoint as F32.
type StateTensor struct {
	Name string
	Data []float32
}

// Names of the state tensors: the prefix followed by the parameter name.
// Step counts are stored as one-element float32 tensors, as PyTorch keeps
// state["step"]; float32 holds every integer up to 2²⁴ exactly.
const (
	StateExpAvgPrefix   = "exp_avg."
	StateExpAvgSqPrefix = "exp_avg_sq."
	StateStepPrefix     = "step."
)

// StepCount returns the number of updates the named parameter has received.
func (o *AdamW) StepCount(name string) int64 {
	if o == nil {
		return 0
	}
	if st, ok := o.state[name]; ok {
		return st.step
	}
	return 0
}

// State returns copies of the optimizer state, sorted by name: for every
// parameter that has been updated, "exp_avg.<name>" (m),
// "exp_avg_sq.<name>" (v) and "step.<name>" (one value).
func (o *AdamW) State() []StateTensor {
	if o == nil {
		return nil
	}
	out := make([]StateTensor, 0, 3*len(o.state))
	for name, st := range o.state {
		out = append(out,
			StateTensor{StateExpAvgPrefix + name, append([]float32(nil), st.m...)},
			StateTensor{StateExpAvgSqPrefix + name, append([]float32(nil), st.v...)},
			StateTensor{StateStepPrefix + name, []float32{float32(st.step)}})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// LoadState replaces the optimizer state with the tensors written by
// [AdamW.State], validated against params: every tensor must belong to one
// of params with the parameter's size, each parameter has either all three
// tensors or none (none: it was never updated), steps are positive integers
// below 2²⁴, and m and v are finite with v ≥ 0. On error the current state
// is kept. The tensors are copied.
func (o *AdamW) LoadState(params []Param, tensors []StateTensor) error {
	if o == nil {
		return errors.New("optim: nil AdamW")
	}
	size := make(map[string]int, len(params))
	for _, p := range params {
		size[p.Name] = len(p.Data)
	}
	type parts struct {
		m, v, step []float32
	}
	byParam := make(map[string]*parts)
	for _, t := range tensors {
		var name string
		var slot func(*parts) *[]float32
		switch {
		case strings.HasPrefix(t.Name, StateExpAvgSqPrefix):
			name, slot = strings.TrimPrefix(t.Name, StateExpAvgSqPrefix), func(p *parts) *[]float32 { return &p.v }
		case strings.HasPrefix(t.Name, StateExpAvgPrefix):
			name, slot = strings.TrimPrefix(t.Name, StateExpAvgPrefix), func(p *parts) *[]float32 { return &p.m }
		case strings.HasPrefix(t.Name, StateStepPrefix):
			name, slot = strings.TrimPrefix(t.Name, StateStepPrefix), func(p *parts) *[]float32 { return &p.step }
		default:
			return fmt.Errorf("optim: load AdamW state: unexpected tensor %q", t.Name)
		}
		n, ok := size[name]
		if !ok {
			return fmt.Errorf("optim: load AdamW state: tensor %q names no parameter of the model", t.Name)
		}
		want := n
		if strings.HasPrefix(t.Name, StateStepPrefix) {
			want = 1
		}
		if len(t.Data) != want {
			return fmt.Errorf("optim: load AdamW state: tensor %q has %d values, want %d", t.Name, len(t.Data), want)
		}
		p := byParam[name]
		if p == nil {
			p = &parts{}
			byParam[name] = p
		}
		s := slot(p)
		if *s != nil {
			return fmt.Errorf("optim: load AdamW state: duplicate tensor %q", t.Name)
		}
		*s = t.Data
	}
	state := make(map[string]*adamState, len(byParam))
	for name, p := range byParam {
		if p.m == nil || p.v == nil || p.step == nil {
			return fmt.Errorf("optim: load AdamW state: parameter %q needs %s, %s and %s tensors", name,
				StateExpAvgPrefix+name, StateExpAvgSqPrefix+name, StateStepPrefix+name)
		}
		step := float64(p.step[0])
		if !(step >= 1 && step < 1<<24) || step != math.Trunc(step) {
			return fmt.Errorf("optim: load AdamW state: %s%s = %v is not a positive integer step", StateStepPrefix, name, p.step[0])
		}
		for i := range p.m {
			m, v := float64(p.m[i]), float64(p.v[i])
			if math.IsNaN(m) || math.IsInf(m, 0) || !(v >= 0) || math.IsInf(v, 0) {
				return fmt.Errorf("optim: load AdamW state: %s has invalid moments at index %d (m=%v, v=%v)", name, i, m, v)
			}
		}
		state[name] = &adamState{step: int64(step), m: append([]float32(nil), p.m...), v: append([]float32(nil), p.v...)}
	}
	o.state = state
	return nil
}
