package model

import (
	"fmt"
	"math/rand/v2"
	"strings"
)

// Params holds every weight of the model (or, used as gradients, every
// gradient) in one float32 allocation. The named fields are views into it in
// Hugging Face's state-dict order:
//
//	model.embed_tokens.weight                      [vocab, hidden]
//	model.layers.N.input_layernorm.weight          [hidden]
//	model.layers.N.self_attn.q_proj.weight (.bias) [heads·headDim, hidden]
//	model.layers.N.self_attn.k_proj.weight (.bias) [kvHeads·headDim, hidden]
//	model.layers.N.self_attn.v_proj.weight (.bias) [kvHeads·headDim, hidden]
//	model.layers.N.self_attn.o_proj.weight (.bias) [hidden, heads·headDim]
//	model.layers.N.self_attn.q_norm.weight         [headDim] (Qwen3)
//	model.layers.N.self_attn.k_norm.weight         [headDim] (Qwen3)
//	model.layers.N.post_attention_layernorm.weight [hidden]
//	model.layers.N.pre_feedforward_layernorm.weight  [hidden] (Gemma)
//	model.layers.N.mlp.gate_proj.weight            [intermediate, hidden]
//	model.layers.N.mlp.up_proj.weight              [intermediate, hidden]
//	model.layers.N.mlp.down_proj.weight            [hidden, intermediate]
//	model.layers.N.post_feedforward_layernorm.weight [hidden] (Gemma)
//	model.norm.weight                              [hidden]
//	lm_head.weight                                 [vocab, hidden] (absent when tied)
//
// Linear weights are [out, in] as in PyTorch. With tied embeddings LMHead is
// the same slice as Embed, so gradients of both uses add up in one place.
//
// In Llama, post_attention_layernorm is the MLP's input norm (MLPNorm). In
// Gemma it normalizes the attention output (PostAttnNorm), and
// pre_feedforward_layernorm is the MLP's input norm (MLPNorm). OLMo-2 has
// Gemma's post_attention_layernorm and post_feedforward_layernorm and no
// input norms, and its q_norm and k_norm span the whole projection.
type Params struct {
	Embed     []float32
	Layers    []LayerParams
	FinalNorm []float32
	LMHead    []float32

	Mem     []float32 // the single backing allocation
	tensors []Tensor
	gemma   bool // norm weights act as 1 + w (Init sets them to 0)

	// Frozen is set when the weight matrices (the embedding, lm_head and
	// every *_proj) are held as bfloat16 bits in the H fields (HEmbed,
	// HLMHead, LayerParams.HWq, …) instead of float32: a frozen base under
	// LoRA at 2 bytes a parameter (LoadWith, NewFrozenBF16). Their float32
	// fields are then nil, and Mem holds only the norm weights and biases.
	// Such a model runs Forward, LastLogits, the Decoder and
	// BackwardAdapter; Backward and Save refuse it.
	Frozen          bool
	HEmbed, HLMHead []uint16
	frozenMem       []uint16 // the matrices' allocation (nil when they alias mapped files)
}

// LayerParams are the weights of one decoder layer; optional ones are nil.
type LayerParams struct {
	AttnNorm          []float32
	Wq, Wk, Wv, Wo    []float32
	Bq, Bk, Bv, Bo    []float32
	QNorm, KNorm      []float32
	PostAttnNorm      []float32 // Gemma, OLMo-2: the attention output's norm
	MLPNorm           []float32
	PostMLPNorm       []float32 // Gemma, OLMo-2: the MLP output's norm
	WGate, WUp, WDown []float32

	// WGateUp is WGate and WUp as one [2·intermediate, hidden] matrix (they
	// are adjacent in memory), so that both projections run as one product.
	WGateUp []float32
	// WQKV is Wq, Wk and Wv as one [(heads+2·kv heads)·head_dim, hidden]
	// matrix, allocated so for a Fused model (Phi-3's qkv_proj).
	WQKV []float32

	// A frozen base's matrices as bfloat16 bits (Params.Frozen), read-only:
	// they may alias a read-only mapping of the checkpoint file.
	HWq, HWk, HWv, HWo, HWGateUp, HWDown []uint16
}

// Tensor is a named view of part of a Params allocation.
type Tensor struct {
	Name  string
	Shape []int
	Data  []float32
	// Half holds a frozen base's matrix as bfloat16 bits (Params.Frozen);
	// Data is then nil. Read-only.
	Half []uint16
}

type tensorSpec struct {
	name  string
	shape []int
	field func(p *Params) *[]float32
}

func (s tensorSpec) size() int64 {
	n := int64(1)
	for _, d := range s.shape {
		n *= int64(d)
	}
	return n
}

// tensorSpecs lists the model's tensors in Hugging Face order.
func (c Config) tensorSpecs() []tensorSpec {
	D, I, V, hd := c.HiddenSize, c.IntermediateSize, c.VocabSize, c.HeadDim
	qd, kvd := c.NumHeads*hd, c.NumKVHeads*hd
	specs := []tensorSpec{{"model.embed_tokens.weight", []int{V, D}, func(p *Params) *[]float32 { return &p.Embed }}}
	for l := 0; l < c.NumLayers; l++ {
		pre := fmt.Sprintf("model.layers.%d.", l)
		lp := func(get func(*LayerParams) *[]float32) func(*Params) *[]float32 {
			return func(p *Params) *[]float32 { return get(&p.Layers[l]) }
		}
		add := func(name string, shape []int, get func(*LayerParams) *[]float32) {
			specs = append(specs, tensorSpec{pre + name, shape, lp(get)})
		}
		if !c.NoPreNorms {
			add("input_layernorm.weight", []int{D}, func(l *LayerParams) *[]float32 { return &l.AttnNorm })
		}
		if c.Fused {
			add("self_attn.qkv_proj.weight", []int{qd + 2*kvd, D}, func(l *LayerParams) *[]float32 { return &l.WQKV })
		} else {
			add("self_attn.q_proj.weight", []int{qd, D}, func(l *LayerParams) *[]float32 { return &l.Wq })
		}
		if c.QKVBias {
			add("self_attn.q_proj.bias", []int{qd}, func(l *LayerParams) *[]float32 { return &l.Bq })
		}
		if !c.Fused {
			add("self_attn.k_proj.weight", []int{kvd, D}, func(l *LayerParams) *[]float32 { return &l.Wk })
		}
		if c.QKVBias {
			add("self_attn.k_proj.bias", []int{kvd}, func(l *LayerParams) *[]float32 { return &l.Bk })
		}
		if !c.Fused {
			add("self_attn.v_proj.weight", []int{kvd, D}, func(l *LayerParams) *[]float32 { return &l.Wv })
		}
		if c.QKVBias {
			add("self_attn.v_proj.bias", []int{kvd}, func(l *LayerParams) *[]float32 { return &l.Bv })
		}
		add("self_attn.o_proj.weight", []int{D, qd}, func(l *LayerParams) *[]float32 { return &l.Wo })
		if c.OBias {
			add("self_attn.o_proj.bias", []int{D}, func(l *LayerParams) *[]float32 { return &l.Bo })
		}
		if c.QKNorm {
			qn, kn := hd, hd
			if c.QKNormFull {
				qn, kn = qd, kvd
			}
			add("self_attn.q_norm.weight", []int{qn}, func(l *LayerParams) *[]float32 { return &l.QNorm })
			add("self_attn.k_norm.weight", []int{kn}, func(l *LayerParams) *[]float32 { return &l.KNorm })
		}
		if c.PostNorms {
			add("post_attention_layernorm.weight", []int{D}, func(l *LayerParams) *[]float32 { return &l.PostAttnNorm })
			if !c.NoPreNorms {
				add("pre_feedforward_layernorm.weight", []int{D}, func(l *LayerParams) *[]float32 { return &l.MLPNorm })
			}
		} else {
			add("post_attention_layernorm.weight", []int{D}, func(l *LayerParams) *[]float32 { return &l.MLPNorm })
		}
		if c.Fused {
			add("mlp.gate_up_proj.weight", []int{2 * I, D}, func(l *LayerParams) *[]float32 { return &l.WGateUp })
		} else {
			add("mlp.gate_proj.weight", []int{I, D}, func(l *LayerParams) *[]float32 { return &l.WGate })
			add("mlp.up_proj.weight", []int{I, D}, func(l *LayerParams) *[]float32 { return &l.WUp })
		}
		add("mlp.down_proj.weight", []int{D, I}, func(l *LayerParams) *[]float32 { return &l.WDown })
		if c.PostNorms {
			add("post_feedforward_layernorm.weight", []int{D}, func(l *LayerParams) *[]float32 { return &l.PostMLPNorm })
		}
	}
	specs = append(specs, tensorSpec{"model.norm.weight", []int{D}, func(p *Params) *[]float32 { return &p.FinalNorm }})
	if !c.TieWordEmbeddings {
		specs = append(specs, tensorSpec{"lm_head.weight", []int{V, D}, func(p *Params) *[]float32 { return &p.LMHead }})
	}
	return specs
}

// NewParams allocates zeroed parameters (or gradients) for the configuration.
func NewParams(c Config) *Params {
	specs := c.tensorSpecs()
	var total int64
	for _, s := range specs {
		total += s.size()
	}
	p := &Params{Layers: make([]LayerParams, c.NumLayers), Mem: make([]float32, total), gemma: c.Gemma}
	off := int64(0)
	l := 0
	for _, s := range specs {
		n := s.size()
		view := p.Mem[off : off+n : off+n]
		*s.field(p) = view
		p.tensors = append(p.tensors, Tensor{Name: s.name, Shape: s.shape, Data: view})
		if strings.HasSuffix(s.name, ".mlp.gate_proj.weight") {
			// up_proj follows gate_proj in tensorSpecs, with the same shape.
			p.Layers[l].WGateUp = p.Mem[off : off+2*n : off+2*n]
			l++
		}
		off += n
	}
	if c.TieWordEmbeddings {
		p.LMHead = p.Embed
	}
	if c.Fused {
		for l := range p.Layers {
			splitFused(c, &p.Layers[l])
		}
	}
	return p
}

// splitFused makes a Fused layer's Wq, Wk, Wv and WGate, WUp the row
// blocks of its WQKV and WGateUp.
func splitFused(c Config, w *LayerParams) {
	w.Wq, w.Wk, w.Wv = splitQKV(c, w.WQKV)
	n := c.IntermediateSize * c.HiddenSize
	w.WGate, w.WUp = w.WGateUp[:n:n], w.WGateUp[n:]
}

// splitQKV returns the q, k and v row blocks of a fused qkv_proj matrix.
func splitQKV[T float32 | uint16](c Config, qkv []T) (q, k, v []T) {
	qd, kvd := c.NumHeads*c.HeadDim*c.HiddenSize, c.NumKVHeads*c.HeadDim*c.HiddenSize
	return qkv[:qd:qd], qkv[qd : qd+kvd : qd+kvd], qkv[qd+kvd:]
}

// Tensors returns the named tensors in Hugging Face order; a tied lm_head is
// not listed, as save_pretrained omits it.
func (p *Params) Tensors() []Tensor { return p.tensors }

// Zero sets every value to 0.
func (p *Params) Zero() { clear(p.Mem) }

// CopyFrom copies every value of q, which must have the same configuration.
func (p *Params) CopyFrom(q *Params) { copy(p.Mem, q.Mem) }

// Init fills the parameters as transformers initializes a new Llama:
// every weight matrix and the embedding from N(0, std²), biases with 0 and
// normalization weights with 1 (with 0 for Gemma, whose norms scale by
// 1 + w). The values depend only on seed.
func (p *Params) Init(seed uint64, std float64) {
	r := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	one := float32(1)
	if p.gemma {
		one = 0
	}
	for _, t := range p.tensors {
		switch {
		case strings.HasSuffix(t.Name, "norm.weight"):
			for i := range t.Data {
				t.Data[i] = one
			}
		case strings.HasSuffix(t.Name, ".bias"):
			clear(t.Data)
		default:
			for i := range t.Data {
				t.Data[i] = float32(r.NormFloat64() * std)
			}
		}
	}
}

// Tensors lists the names and shapes of the configuration's parameters in
// Hugging Face order, without allocating them (Data is nil).
func (c Config) Tensors() []Tensor {
	specs := c.tensorSpecs()
	out := make([]Tensor, len(specs))
	for i, s := range specs {
		out[i] = Tensor{Name: s.name, Shape: s.shape}
	}
	return out
}

// MemoryEstimate is an upper bound, in bytes, of what the model needs to
// process micro-batches of up to tokens tokens: the float32 weights and the
// logits of a chunk of rows, and for training the weights' gradients, the
// two AdamW moments, the activations Forward saves for every layer and
// Backward's scratch space; without training, one layer's activations (a
// Forward with Workspace.NoGrad, whose layers share them). It ignores the
// Go runtime's own overhead (a few tens of MB). It is MemoryEstimateFor
// with MemoryOptions{Training: training}.
func (c Config) MemoryEstimate(tokens int, training bool) int64 {
	return c.MemoryEstimateFor(tokens, MemoryOptions{Training: training})
}

// MemoryOptions describe a run for MemoryEstimateFor.
type MemoryOptions struct {
	// Training is a training step (Forward and Backward, and the
	// optimizer's state); otherwise a Forward with Workspace.NoGrad.
	Training bool
	// LoRA, when set, adds adapters of this configuration; in training
	// only they have gradients and AdamW moments, the base none.
	LoRA *LoRAConfig
	// Checkpoint is gradient checkpointing (Workspace.Checkpoint): one
	// layer's activations and every layer's input instead of every
	// layer's activations.
	Checkpoint bool
	// FrozenBF16 holds the base's weight matrices as bfloat16 bits
	// (Params.Frozen): 2 bytes a parameter instead of 4.
	FrozenBF16 bool
}

// MemoryEstimateFor is an upper bound, in bytes, of what the model needs
// to process micro-batches of up to tokens tokens in the run o describes:
// the weights (2 bytes a matrix parameter with FrozenBF16, 4 otherwise;
// norm weights and biases are always float32) and the logits of a chunk
// of rows; for training, the trained weights' gradients and two AdamW
// moments (the base's, or with LoRA the adapters' alone, which then also
// count their float32 weights), the activations Forward saves (every
// layer's, or with Checkpoint one layer's plus each layer's input of
// tokens·hidden values) and Backward's scratch space; without training one
// layer's activations. It ignores the Go runtime's own overhead (a few
// tens of MB).
func (c Config) MemoryEstimateFor(tokens int, o MemoryOptions) int64 {
	D, I, H, KV, hd, V := int64(c.HiddenSize), int64(c.IntermediateSize), int64(c.NumHeads), int64(c.NumKVHeads), int64(c.HeadDim), int64(c.VocabSize)
	n := int64(tokens)
	var params, matrices int64
	for _, s := range c.tensorSpecs() {
		params += s.size()
		if isMatrix(s.name) {
			matrices += s.size()
		}
	}
	perLayer := 5*D + 3*I + 2*H*hd + 2*KV*hd + H + 2 // x, xn1, xn2, x2, (rstd), gate/up/h, q, att, k, v, lse
	if c.PostNorms {
		perLayer += 2*D + 2 // the attention and MLP outputs before their norms
	}
	if c.QKNorm {
		perLayer += H*hd + KV*hd + H + KV
	}
	var adapter, maxIn, maxOut int64 // the adapters' weights, their widest input and output
	if o.LoRA != nil {
		r := int64(o.LoRA.R)
		for _, m := range o.LoRA.Targets {
			out, in := c.loraShape(m)
			adapter += r * int64(in+out)
			perLayer += r // the kept inner product s·A·drop(x)
			maxIn, maxOut = max(maxIn, int64(in)), max(maxOut, int64(out))
		}
		adapter *= int64(c.NumLayers)
	}
	layers := int64(c.NumLayers)
	acts := n * (layers*perLayer + 3*D)
	switch {
	case !o.Training:
		acts = n * (perLayer + 3*D)
	case o.Checkpoint:
		acts = n * (perLayer + (layers-1)*D + 3*D) // one layer's set, and the other layers' inputs
	}
	chunk := int64(c.logitChunk())
	logits := 2 * chunk * (V + D) // the chunked logits and their inputs
	bytes := 4 * params
	if o.FrozenBF16 {
		bytes -= 2 * matrices
	}
	floats := acts + logits
	if o.LoRA != nil {
		floats += adapter + n*maxOut // the weights, the B product's scratch
	}
	if o.Training {
		if o.LoRA != nil {
			floats += 3 * adapter                   // gradients, exp_avg, exp_avg_sq
			floats += n * (maxIn + int64(o.LoRA.R)) // dropout's input and the inner gradient
		} else {
			floats += 3 * params // gradients, exp_avg, exp_avg_sq
		}
		floats += n * (2*D + 2*H*hd + 2*KV*hd + 3*I) // backward scratch
		floats += int64(64) * V                      // the recomputed logits chunk
		floats += min(n*V, params) + 2*n*D           // or the logits kept for Backward (Workspace.KeepLogits), their inputs and input gradients
	}
	return bytes + 4*floats
}
