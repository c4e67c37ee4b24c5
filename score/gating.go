package score

import (
	"fmt"
	"math"
	"slices"

	"github.com/relupo/relupo/model"
	"github.com/relupo/relupo/safetensors"
)

// ArmoRMPattern is the token sequence ArmoRM (RLHFlow/ArmoRM-Llama3-8B-v0.1)
// reads its gating input at: the Llama-3 ids of
// "<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n", the end of
// the prompt and the start of the response. The gating network reads the
// final hidden state at the last occurrence's first token.
var ArmoRMPattern = []int32{128009, 128006, 78191, 128007, 271}

// Gating is the head of ArmoRM's LlamaForRewardModelWithGating: K
// objectives regressed from the final hidden state at the scored position
// (regression_layer, [K, hidden]), mixed by reward_transform_matrix
// [K, K], and weighted by a gating network over the hidden state at the
// prompt's end (Pattern): n_hidden Linear+ReLU layers and a last Linear,
// then softmax(x / Temperature) · LogitScale. The score is
// Σ_j gate_j · (rewards · transform)_j.
type Gating struct {
	// Regression is regression_layer.weight [K, hidden].
	Regression []float32
	// Transform is reward_transform_matrix [K, K].
	Transform []float32
	// Layers are the gating network's linear layers, in order.
	Layers []Linear
	// Temperature is config.json's gating_temperature (10 by default).
	Temperature float64
	// LogitScale is gating.logit_scale.
	LogitScale float32
	// K is the number of objectives (num_objectives, 19 by default).
	K int
	// Pattern is the token sequence the gating input is read at
	// (ArmoRMPattern).
	Pattern []int32
}

// Linear is a linear layer: Weight [Out, In] and Bias [Out] (nil: none).
type Linear struct {
	Weight, Bias []float32
	In, Out      int
}

// apply returns W·x + b, summed in float64.
func (l *Linear) apply(x []float64) []float64 {
	y := make([]float64, l.Out)
	for o := range l.Out {
		var s float64
		for i, w := range l.Weight[o*l.In : (o+1)*l.In] {
			s += float64(w) * x[i]
		}
		if l.Bias != nil {
			s += float64(l.Bias[o])
		}
		y[o] = s
	}
	return y
}

// gatePosition returns where the gating input is read: the first token of
// the last occurrence of the pattern in ids, or -1 when there is none.
func (g *Gating) gatePosition(ids []int32) int {
	for j := len(ids) - len(g.Pattern); j >= 0; j-- {
		if slices.Equal(ids[j:j+len(g.Pattern)], g.Pattern) {
			return j
		}
	}
	return -1
}

// score returns the score from the final hidden states at the scored
// position (h) and at the gating position (p).
func (g *Gating) score(h, p []float32) float64 {
	D := len(h)
	rewards := make([]float64, g.K)
	for k := range g.K {
		var s float64
		for i, w := range g.Regression[k*D : (k+1)*D] {
			s += float64(w) * float64(h[i])
		}
		rewards[k] = s
	}
	x := make([]float64, D)
	for i, v := range p {
		x[i] = float64(v)
	}
	for li := range g.Layers {
		x = g.Layers[li].apply(x)
		if li < len(g.Layers)-1 {
			for i, v := range x {
				x[i] = max(v, 0)
			}
		}
	}
	// softmax(x / T) · scale
	mx := math.Inf(-1)
	for i := range x {
		x[i] /= g.Temperature
		mx = max(mx, x[i])
	}
	var z float64
	for i, v := range x {
		x[i] = math.Exp(v - mx)
		z += x[i]
	}
	var score float64
	for j := range g.K {
		var adj float64 // (rewards · transform)_j
		for k := range g.K {
			adj += rewards[k] * float64(g.Transform[k*g.K+j])
		}
		score += x[j] / z * float64(g.LogitScale) * adj
	}
	return score
}

// readGating reads ArmoRM's heads from the checkpoint in dir, checked
// against config.json's num_objectives, gating_hidden_dim and
// gating_n_hidden (defaults 19, 1024, 3, as its configuration code has).
func readGating(dir string, cfg model.Config) (*Gating, error) {
	num := func(key string, def float64) float64 {
		if v, ok := cfg.Raw[key].(float64); ok {
			return v
		}
		return def
	}
	g := &Gating{K: int(num("num_objectives", 19)), Temperature: num("gating_temperature", 10), Pattern: ArmoRMPattern}
	hidden, nHidden := int(num("gating_hidden_dim", 1024)), int(num("gating_n_hidden", 3))
	if g.K < 1 || g.K > 1<<16 || hidden < 1 || hidden > 1<<20 || nHidden < 0 || nHidden > 64 || !(g.Temperature > 0) {
		return nil, fmt.Errorf("score: reward model %s: config.json's num_objectives %d, gating_hidden_dim %d, gating_n_hidden %d, gating_temperature %g are not a gating network relupo can read", dir, g.K, hidden, nHidden, g.Temperature)
	}
	ck, err := safetensors.OpenCheckpoint(dir)
	if err != nil {
		return nil, fmt.Errorf("score: reward model: %w", err)
	}
	defer ck.Close()
	read := func(name string, shape ...int) ([]float32, error) {
		info, ok := ck.Info(name)
		if !ok {
			return nil, fmt.Errorf("score: reward model %s: the checkpoint has no %s (LlamaForRewardModelWithGating's heads)", dir, name)
		}
		if !slices.Equal(info.Shape, shape) {
			return nil, fmt.Errorf("score: reward model %s: %s has shape %v, config.json implies %v", dir, name, info.Shape, shape)
		}
		if !info.DType.IsFloat() {
			return nil, fmt.Errorf("score: reward model %s: %s has dtype %s; want F32, F16 or BF16", dir, name, info.DType)
		}
		v, err := ck.Float32(name)
		if err != nil {
			return nil, fmt.Errorf("score: reward model: %w", err)
		}
		return v, nil
	}
	D := cfg.HiddenSize
	if g.Regression, err = read("regression_layer.weight", g.K, D); err != nil {
		return nil, err
	}
	if g.Transform, err = read("reward_transform_matrix", g.K, g.K); err != nil {
		return nil, err
	}
	scale, err := read("gating.logit_scale", 1)
	if err != nil {
		return nil, err
	}
	g.LogitScale = scale[0]
	in := D
	for l := 0; l <= nHidden; l++ {
		out := hidden
		if l == nHidden {
			out = g.K
		}
		lin := Linear{In: in, Out: out}
		if lin.Weight, err = read(fmt.Sprintf("gating.layers.%d.weight", l), out, in); err != nil {
			return nil, err
		}
		if _, ok := ck.Info(fmt.Sprintf("gating.layers.%d.bias", l)); ok || l < nHidden {
			if lin.Bias, err = read(fmt.Sprintf("gating.layers.%d.bias", l), out); err != nil {
				return nil, err
			}
		}
		g.Layers = append(g.Layers, lin)
		in = out
	}
	if _, ok := ck.Info(fmt.Sprintf("gating.layers.%d.weight", nHidden+1)); ok {
		return nil, fmt.Errorf("score: reward model %s: the checkpoint has more gating layers than config.json's gating_n_hidden %d implies", dir, nHidden)
	}
	return g, nil
}
