// Package model is relupo's Llama-family decoder (Llama, Mistral, Qwen2,
// Qwen3, SmolLM3, OLMo 2 and 3, Granite, Phi-3, Gemma, Gemma-2, Gemma-3 text): parameters with Hugging Face names, a forward pass over packed
// sequences that saves its activations, and a hand-written backward pass from
// per-sequence log-probability gradients to every parameter.
//
// A training step reads top to bottom:
//
//	sums, counts, _ := m.Forward(ws, batch)   // Σ log p(label) per sequence
//	dSums := loss(sums, counts)               // package pref
//	m.Backward(ws, batch, dSums, grads)       // grads += ∂L/∂θ
//
// Every layer is a forward/backward pair of calls into package kernels.
//
// LoRA (lora.go, lora_pass.go): with m.LoRA set, every targeted linear
// layer adds its adapter's product, and BackwardAdapter computes the
// adapter's gradients alone, the base frozen. The frozen base may hold its
// weight matrices as bfloat16 bits (LoadWith, NewFrozenBF16;
// lora_bf16.go), and Workspace.Checkpoint trades one more forward pass for
// keeping only each layer's input.
package model

import (
	"fmt"
	"math"

	"github.com/relupo/relupo/kernels"
)

// Model is a configuration with its weights.
type Model struct {
	Config Config
	Params *Params
	// LoRA, when set, adds its low-rank adapters to the targeted linear
	// layers in every pass (Forward, LastLogits, Decoder): y = W x +
	// Scale·B(A·drop(x)). The base with its adapters switched off (the
	// reference model of DPO-family losses under LoRA) is a shallow copy
	// with LoRA nil, which shares Params:
	//
	//	ref := *m
	//	ref.LoRA = nil
	LoRA *Adapter

	invFreq      []float32
	invFreqLocal []float32 // Gemma-3's sliding layers, or nil
}

// New returns a model with zeroed weights for the configuration.
func New(c Config) *Model {
	return &Model{Config: c, Params: NewParams(c), invFreq: ropeInvFreq(c), invFreqLocal: ropeLocalInvFreq(c)}
}

// layerNorms are the weights a layer's RMSNorms multiply by (nil where the
// layer has no such norm).
type layerNorms struct{ attn, postAttn, mlp, postMLP, q, k []float32 }

// normWeights returns the weights every RMSNorm multiplies by, per layer,
// and the final norm's: the parameters themselves, or for Gemma 1 + w,
// computed in float32 into buf as Gemma's RMSNorm computes
// 1.0 + weight.float(). Since ∂(1 + w)/∂w = 1, the norms' backward passes
// accumulate into the parameters' gradients unchanged.
func (m *Model) normWeights(buf *[]float32, norms *[]layerNorms) ([]layerNorms, []float32) {
	c, P := m.Config, m.Params
	if len(*norms) != c.NumLayers {
		*norms = make([]layerNorms, c.NumLayers)
	}
	nw := *norms
	if !c.Gemma {
		for l := range P.Layers {
			w := &P.Layers[l]
			nw[l] = layerNorms{attn: w.AttnNorm, postAttn: w.PostAttnNorm, mlp: w.MLPNorm, postMLP: w.PostMLPNorm, q: w.QNorm, k: w.KNorm}
		}
		return nw, P.FinalNorm
	}
	size := (4*c.NumLayers + 1) * c.HiddenSize
	if c.QKNorm {
		size += 2 * c.NumLayers * c.HeadDim
	}
	*buf = grow(*buf, size)
	rest := *buf
	plus1 := func(w []float32) []float32 {
		if w == nil {
			return nil
		}
		out := rest[:len(w):len(w)]
		rest = rest[len(w):]
		for i, v := range w {
			out[i] = 1 + v
		}
		return out
	}
	for l := range P.Layers {
		w := &P.Layers[l]
		nw[l] = layerNorms{attn: plus1(w.AttnNorm), postAttn: plus1(w.PostAttnNorm), mlp: plus1(w.MLPNorm),
			postMLP: plus1(w.PostMLPNorm), q: plus1(w.QNorm), k: plus1(w.KNorm)}
	}
	return nw, plus1(P.FinalNorm)
}

// embedScale is the factor of the embeddings: √hidden_size rounded to
// float32 for Gemma (HF's normalizer tensor in the float32 compute dtype;
// relupo's weights and activations are float32 in both precisions, as the
// embedding output is under PyTorch's bf16 autocast), Granite's
// embedding_multiplier, 1 otherwise.
func (c Config) embedScale() float32 {
	if c.Gemma {
		return float32(math.Sqrt(float64(c.HiddenSize)))
	}
	if c.EmbeddingMultiplier != 0 {
		return float32(c.EmbeddingMultiplier) // Granite's
	}
	return 1
}

// residualScale is the factor of each block's output before its residual
// add: Granite's residual_multiplier, 1 otherwise.
func (c Config) residualScale() float32 {
	if c.ResidualMultiplier != 0 {
		return float32(c.ResidualMultiplier)
	}
	return 1
}

// embed writes the scaled embedding rows of tokens into x.
func (m *Model) embed(x []float32, tokens []int32) {
	D, scale := m.Config.HiddenSize, m.Config.embedScale()
	for t, tok := range tokens {
		row := x[t*D : (t+1)*D]
		if h := m.Params.HEmbed; m.Params.Embed == nil && h != nil {
			for i, v := range h[int(tok)*D : (int(tok)+1)*D] {
				row[i] = bf16Float(v)
			}
		} else {
			copy(row, m.Params.Embed[int(tok)*D:(int(tok)+1)*D])
		}
		if scale != 1 {
			for i := range row {
				row[i] *= scale
			}
		}
	}
}

// attnShape is the attention geometry of layer l for a batch.
func (c Config) attnShape(l int, offsets, prefix []int) kernels.AttnShape {
	return kernels.AttnShape{Offsets: offsets, Prefix: prefix, Heads: c.NumHeads, KVHeads: c.NumKVHeads, HeadDim: c.HeadDim,
		Scale: float32(c.QueryScale), SoftCap: float32(c.AttnSoftcap), Window: c.LayerWindow(l)}
}

// Batch is several token sequences packed end to end, with no padding.
// Sequence s is Tokens[Offsets[s]:Offsets[s+1]]. Its first PromptLens[s]
// tokens are context; every later token is a label, scored by the log-prob
// the model gave it at the previous position. (The first token of a sequence
// has no previous position and is never a label.)
//
// A sequence may continue a prefix: with Prefix[s] = p, sequence s attends to
// all of sequence p (an earlier sequence with no prefix of its own) before
// its own tokens, its positions continue from p's length, and its first
// token is scored from p's last position. This runs a pair's prompt once for
// both responses (see AddPrefixed); the results equal those of two separate
// sequences prompt+chosen and prompt+rejected, up to float32 rounding.
type Batch struct {
	Tokens     []int32
	Offsets    []int
	PromptLens []int
	Prefix     []int // nil, or per sequence its prefix sequence (-1: none)
}

// NumSeqs is the number of sequences in the batch.
func (b *Batch) NumSeqs() int { return len(b.Offsets) - 1 }

// Add appends a sequence of prompt then response tokens to the batch.
func (b *Batch) Add(prompt, response []int32) {
	if len(b.Offsets) == 0 {
		b.Offsets = append(b.Offsets, 0)
	}
	b.Tokens = append(b.Tokens, prompt...)
	b.Tokens = append(b.Tokens, response...)
	b.Offsets = append(b.Offsets, len(b.Tokens))
	b.PromptLens = append(b.PromptLens, len(prompt))
	if b.Prefix != nil {
		b.Prefix = append(b.Prefix, -1)
	}
}

// AddPrefixed appends a sequence that continues sequence p (see Batch): all
// its tokens are labels. It returns the new sequence's index.
func (b *Batch) AddPrefixed(p int, tokens []int32) int {
	if b.Prefix == nil {
		b.Prefix = make([]int, b.NumSeqs(), b.NumSeqs()+1)
		for i := range b.Prefix {
			b.Prefix[i] = -1
		}
	}
	b.Tokens = append(b.Tokens, tokens...)
	b.Offsets = append(b.Offsets, len(b.Tokens))
	b.PromptLens = append(b.PromptLens, 0)
	b.Prefix = append(b.Prefix, p)
	return b.NumSeqs() - 1
}

// prefix returns the first token and the length of sequence s's prefix.
func (b *Batch) prefix(s int) (start, n int) {
	if b.Prefix == nil || b.Prefix[s] < 0 {
		return 0, 0
	}
	p := b.Prefix[s]
	return b.Offsets[p], b.Offsets[p+1] - b.Offsets[p]
}

// validate checks the batch against the model before any work is done.
func (b *Batch) validate(c Config) error {
	if len(b.Offsets) < 2 || b.Offsets[0] != 0 || b.Offsets[len(b.Offsets)-1] != len(b.Tokens) {
		return fmt.Errorf("model: malformed batch: offsets %v for %d tokens", b.Offsets, len(b.Tokens))
	}
	if len(b.PromptLens) != b.NumSeqs() {
		return fmt.Errorf("model: malformed batch: %d prompt lengths for %d sequences", len(b.PromptLens), b.NumSeqs())
	}
	if b.Prefix != nil && len(b.Prefix) != b.NumSeqs() {
		return fmt.Errorf("model: malformed batch: %d prefixes for %d sequences", len(b.Prefix), b.NumSeqs())
	}
	for s := 0; s < b.NumSeqs(); s++ {
		if b.Prefix != nil && b.Prefix[s] >= 0 {
			if p := b.Prefix[s]; p >= s || b.Prefix[p] >= 0 {
				return fmt.Errorf("model: malformed batch: sequence %d has prefix %d, which must be an earlier sequence without a prefix", s, p)
			}
		}
		n := b.Offsets[s+1] - b.Offsets[s]
		if n <= 0 {
			return fmt.Errorf("model: sequence %d is empty", s)
		}
		if limit := c.MaxSequence(); limit > 0 {
			total := n
			if b.Prefix != nil && b.Prefix[s] >= 0 {
				total += b.Offsets[b.Prefix[s]+1] - b.Offsets[b.Prefix[s]]
			}
			if total > limit {
				return fmt.Errorf("model: sequence %d has %d tokens, more than original_max_position_embeddings %d: past it LongRoPE changes frequencies mid-run (transformers switches to long_factor), which relupo does not reproduce; truncate (max_length)", s, total, limit)
			}
		}
		if b.PromptLens[s] < 0 || b.PromptLens[s] > n {
			return fmt.Errorf("model: sequence %d: prompt length %d outside [0, %d]", s, b.PromptLens[s], n)
		}
		for i, t := range b.Tokens[b.Offsets[s]:b.Offsets[s+1]] {
			if t < 0 || int(t) >= c.VocabSize {
				return fmt.Errorf("model: sequence %d token %d: id %d outside the vocabulary [0, %d)", s, i, t, c.VocabSize)
			}
		}
	}
	return nil
}

// Workspace holds the activations a forward pass saves for the backward
// pass, and the scratch space of both. It grows to the largest batch seen and
// is reused; one Workspace serves one goroutine at a time.
type Workspace struct {
	Pool *kernels.Pool

	// KeepLogits lets Forward keep the logits of every label row for the
	// Backward that follows, instead of Backward computing them again a
	// chunk at a time, when they take no more memory than the model's
	// weights (a quarter of what training holds in weights, gradients and
	// AdamW moments). That saves a quarter of the lm_head's work in a
	// training step; the numbers are the same. Inference leaves it off.
	KeepLogits bool
	// NoGrad runs Forward for its log-probs only: the layers share one set
	// of activation buffers instead of each saving its own (a 1/layers
	// share of the activation memory, and buffers that stay in cache), and
	// Backward refuses to follow. The numbers are the same.
	NoGrad bool
	// LogitMeans makes Forward also fill LogitMeanSums: for each sequence,
	// the sum over its label rows of the row's mean logit over the
	// vocabulary (TRL's logits/chosen is their mean over a batch's label
	// rows). It costs one more pass over each row's logits while they are
	// in cache.
	LogitMeans bool
	// LogitMeanSums is the last Forward's per-sequence sums when
	// LogitMeans is set (nil otherwise).
	LogitMeanSums []float64
	// Checkpoint is gradient checkpointing: Forward keeps only each
	// layer's input, and Backward runs each layer's forward pass again,
	// into one layer's worth of buffers, just before its backward pass.
	// The activation memory is then one layer's activations plus N·hidden
	// values per layer, for about one more forward pass of work; the
	// numbers are bit for bit those of a run without it.
	Checkpoint bool
	// DropoutSeed chooses the LoRA dropout masks of the next Forward (a
	// training Forward of a model with an adapter whose Dropout > 0; never
	// with NoGrad, nor in LastLogits or a Decoder). The Backward that
	// follows, and its recompute of checkpointed layers, use the same
	// masks. Set a new seed for every micro-batch. The masks come from
	// relupo's own counter-based stream (SplitMix64 of the seed, layer,
	// module and entry), not from PyTorch's generator.
	DropoutSeed uint64

	noGradRun bool    // the last Forward ran with NoGrad
	ckptRun   bool    // the last Forward ran with Checkpoint
	dropP     float64 // the last Forward's LoRA dropout probability (0: none)
	dropSeed  uint64  // and its DropoutSeed

	n      int // tokens in the current batch
	pos    []int32
	layers []layerActs
	xF     []float32 // final residual stream [N, D]
	rstdF  []float32
	xnF    []float32 // after the final norm [N, D]

	labelRow []int   // row whose logits predict each label
	labelTok []int32 // the label token
	labelSeq []int   // the sequence each label belongs to
	labelLse []float32
	// the label rows of one logit chunk and their logits
	chunkX, chunkLogits []float32
	kept                bool // chunkLogits holds the logits of every label row, for Backward
	cos, sin            []float32
	maxPos              int

	// backward scratch
	dx, dxn, dq, dk, dv, datt, dgu, dh []float32
	dwScratch                          []float32 // norm weight gradients of a frozen base, discarded

	// LoRA scratch: an adapter's dropped input, its B product and the
	// gradient of its inner product
	loraXd, loraT, loraDu []float32

	norms   []layerNorms // the RMSNorm weights of the last Forward
	normF   []float32
	normBuf []float32
	cosL    []float32 // Gemma-3's local RoPE tables, or nil
	sinL    []float32
}

type layerActs struct {
	x            []float32 // residual stream entering the layer [N, D]
	rstd1, rstd2 []float32 // [N]
	xn1, xn2     []float32 // normalized inputs of attention and MLP [N, D]
	qPre, kPre   []float32 // q and k before the Qwen3 head norm (nil otherwise)
	qRstd, kRstd []float32
	q, k, v      []float32 // after bias, head norm and RoPE
	att          []float32 // attention output before o_proj [N, heads·headDim]
	lse          []float32 // [N, heads]
	x2           []float32 // residual stream after attention [N, D]
	gu           []float32 // gate and up projections side by side [N, 2I]
	h            []float32 // SwiGLU (GeGLU) output [N, I]
	// Gemma: the attention and MLP outputs before their norms [N, D], and
	// those norms' rstd [N]
	ao, mo         []float32
	rstdPA, rstdPF []float32
	// LoRA: each targeted module's s·(drop(x)·Aᵀ) [N, R]
	u [numModules][]float32
}

func grow(s []float32, n int) []float32 {
	if cap(s) < n {
		return make([]float32, n)
	}
	return s[:n]
}

// logitChunk is how many label rows have their [rows × vocab] logits alive
// at once: as many as fit in 64 MiB, between 64 and 256. Larger chunks read
// the lm_head weight (and write its gradient) fewer times per batch.
func (c Config) logitChunk() int {
	return min(max((64<<20)/(4*c.VocabSize), 64), 256)
}

// keepsLogits reports whether the logits of labels label rows fit in the
// memory KeepLogits allows them: the size of the weights.
func (c Config) keepsLogits(labels int) bool {
	return int64(labels)*int64(c.VocabSize) <= c.NumParams()
}

// reserve sizes the workspace for a pass over n tokens of a model of
// configuration c with adapter lora (or nil). Without NoGrad or
// Checkpoint every layer gets its own activations; with NoGrad all layers
// share layer 0's; with Checkpoint every layer keeps its own input x and
// shares layer 0's other buffers (see acts).
func (ws *Workspace) reserve(c Config, n int, lora *Adapter) {
	D, I, H, KV, hd := c.HiddenSize, c.IntermediateSize, c.NumHeads, c.NumKVHeads, c.HeadDim
	ws.n, ws.kept, ws.noGradRun = n, false, ws.NoGrad
	ws.ckptRun = ws.Checkpoint && !ws.NoGrad
	if len(ws.layers) != c.NumLayers {
		ws.layers = make([]layerActs, c.NumLayers)
	}
	for l := range ws.layers {
		if ws.noGradRun && l > 0 {
			break // every layer uses layer 0's buffers (acts)
		}
		a := &ws.layers[l]
		if ws.ckptRun && l > 0 {
			// only the layer's input; drop what a run without
			// Checkpoint left here
			*a = layerActs{x: grow(a.x, n*D)}
			continue
		}
		a.x = grow(a.x, n*D)
		a.rstd1, a.rstd2 = grow(a.rstd1, n), grow(a.rstd2, n)
		a.xn1, a.xn2 = grow(a.xn1, n*D), grow(a.xn2, n*D)
		a.q, a.k, a.v = grow(a.q, n*H*hd), grow(a.k, n*KV*hd), grow(a.v, n*KV*hd)
		if c.QKNorm {
			if !ws.NoGrad {
				a.qPre, a.kPre = grow(a.qPre, n*H*hd), grow(a.kPre, n*KV*hd)
			}
			a.qRstd, a.kRstd = grow(a.qRstd, n*H), grow(a.kRstd, n*KV)
		}
		a.att, a.lse = grow(a.att, n*H*hd), grow(a.lse, n*H)
		a.x2 = grow(a.x2, n*D)
		a.gu, a.h = grow(a.gu, 2*n*I), grow(a.h, n*I)
		if c.PostNorms {
			a.ao, a.mo = grow(a.ao, n*D), grow(a.mo, n*D)
			a.rstdPA, a.rstdPF = grow(a.rstdPA, n), grow(a.rstdPF, n)
		}
		if lora != nil {
			for i := range a.u {
				if lora.Layers[l].get(i) != nil {
					a.u[i] = grow(a.u[i], n*lora.Config.R)
				}
			}
		}
	}
	if lora != nil {
		maxIn, maxOut := 0, 0
		for _, name := range lora.Config.Targets {
			out, in := c.loraShape(name)
			maxIn, maxOut = max(maxIn, in), max(maxOut, out)
		}
		ws.loraT = grow(ws.loraT, n*maxOut)
		if lora.Config.Dropout > 0 && !ws.noGradRun {
			ws.loraXd = grow(ws.loraXd, n*maxIn)
		}
	}
	ws.xF, ws.rstdF, ws.xnF = grow(ws.xF, n*D), grow(ws.rstdF, n), grow(ws.xnF, n*D)
	if cap(ws.pos) < n {
		ws.pos = make([]int32, n)
	}
	ws.pos = ws.pos[:n]
}

// acts returns the activation buffers of layer l: its own; with NoGrad
// the one set all layers share; with Checkpoint its own input x and the
// one set of other buffers, which Backward fills again for each layer.
// Sharing x under NoGrad is safe because a layer's input x is last read
// when the attention's residual is added, before the MLP writes the
// layer's output, which is the next layer's input, into it.
func (ws *Workspace) acts(l int) layerActs {
	switch {
	case ws.noGradRun:
		return ws.layers[0]
	case ws.ckptRun:
		a := ws.layers[0]
		a.x = ws.layers[l].x
		return a
	}
	return ws.layers[l]
}

// input returns the buffer of layer l's input (l = NumLayers: the final
// residual stream).
func (ws *Workspace) input(l int) []float32 {
	switch {
	case l == len(ws.layers):
		return ws.xF
	case ws.noGradRun:
		return ws.layers[0].x
	}
	return ws.layers[l].x
}

// layerAdapt returns what a pass over layer l needs to apply the model's
// adapters, with their inner products kept in u (nil without an adapter).
func (m *Model) layerAdapt(ws *Workspace, l int, u *[numModules][]float32) *adapt {
	if m.LoRA == nil {
		return nil
	}
	lc := m.LoRA.Config
	return &adapt{la: &m.LoRA.Layers[l], scale: lc.Scale(), drop: newDropout(ws.dropP, ws.dropSeed, l),
		u: u, xd: ws.loraXd, t: ws.loraT, r: lc.R}
}

func (m *Model) ensureRope(ws *Workspace, positions int) {
	if positions <= ws.maxPos {
		return
	}
	positions = max(positions, 2*ws.maxPos)
	ws.cos, ws.sin = ropeTables(m.invFreq, positions, ropeScale(m.Config))
	if m.invFreqLocal != nil {
		ws.cosL, ws.sinL = ropeTables(m.invFreqLocal, positions, 1)
	}
	ws.maxPos = positions
}

// rope returns the RoPE tables of layer l: none (nil) on SmolLM3's NoPE
// layers, Gemma-3's local ones on its sliding layers, the global ones
// otherwise.
func (m *Model) rope(l int, cos, sin, cosL, sinL []float32) ([]float32, []float32) {
	if m.Config.NoRope != nil && m.Config.NoRope[l] {
		return nil, nil
	}
	if m.Config.localRope(l) {
		return cosL, sinL
	}
	return cos, sin
}

// Forward runs the model over a packed batch, saving activations in ws, and
// returns for each sequence the sum of the log-probs of its labels (in
// float64) and the number of labels. It never materializes the logits of the
// whole batch: they are computed a chunk of label rows at a time, and only at
// rows that predict a label.
func (m *Model) Forward(ws *Workspace, b *Batch) (sums []float64, counts []int, err error) {
	c := m.Config
	if err := b.validate(c); err != nil {
		return nil, nil, err
	}
	if err := m.checkLoRA(); err != nil {
		return nil, nil, err
	}
	N := len(b.Tokens)
	ws.reserve(c, N, m.LoRA)
	m.trunk(ws, b, !ws.NoGrad)
	p := ws.Pool
	V := c.VocabSize

	// Labels: token t of sequence s (t ≥ max(prompt, 1)) scored at row t−1;
	// after a prefix, the first token is scored at the prefix's last row.
	ws.labelRow, ws.labelTok, ws.labelSeq = ws.labelRow[:0], ws.labelTok[:0], ws.labelSeq[:0]
	counts = make([]int, b.NumSeqs())
	for s := 0; s < b.NumSeqs(); s++ {
		lo, hi := b.Offsets[s], b.Offsets[s+1]
		pfx0, np := b.prefix(s)
		first := lo + max(b.PromptLens[s], 1)
		if np > 0 {
			first = lo + b.PromptLens[s]
		}
		for t := first; t < hi; t++ {
			row := t - 1
			if t == lo {
				row = pfx0 + np - 1
			}
			ws.labelRow = append(ws.labelRow, row)
			ws.labelTok = append(ws.labelTok, b.Tokens[t])
			ws.labelSeq = append(ws.labelSeq, s)
			counts[s]++
		}
	}
	L := len(ws.labelRow)
	ws.labelLse = grow(ws.labelLse, L)
	sums = make([]float64, b.NumSeqs())
	chunk := c.logitChunk()
	ws.kept = ws.KeepLogits && !ws.NoGrad && c.keepsLogits(L)
	if ws.kept {
		chunk = max(L, 1)
	}
	var means []float64 // each row's mean logit, when LogitMeans
	ws.LogitMeanSums = nil
	if ws.LogitMeans {
		ws.LogitMeanSums = make([]float64, b.NumSeqs())
		means = make([]float64, min(chunk, L))
	}
	for c0 := 0; c0 < L; c0 += chunk {
		r := min(chunk, L-c0)
		logits := m.chunkLogits(ws, c0, r)
		lp := make([]float32, r)
		p.For(r, func(i int) {
			row := logits[i*V : (i+1)*V]
			lse := kernels.LogSumExp(row)
			ws.labelLse[c0+i] = lse
			lp[i] = logits[i*V+int(ws.labelTok[c0+i])] - lse
			if means != nil {
				means[i] = rowMean(row)
			}
		})
		for i := 0; i < r; i++ {
			sums[ws.labelSeq[c0+i]] += float64(lp[i])
			if means != nil {
				ws.LogitMeanSums[ws.labelSeq[c0+i]] += means[i]
			}
		}
	}
	return sums, counts, nil
}

// rowMean is the mean of x, summed in float64.
func rowMean(x []float32) float64 {
	var s float64
	for _, v := range x {
		s += float64(v)
	}
	return s / float64(len(x))
}

// chunkLogits gathers the final hidden states of label rows c0..c0+r into
// ws.chunkX and returns their logits [r, vocab] (in ws.chunkLogits).
func (m *Model) chunkLogits(ws *Workspace, c0, r int) []float32 {
	D, V := m.Config.HiddenSize, m.Config.VocabSize
	ws.chunkX = grow(ws.chunkX, r*D)
	ws.chunkLogits = grow(ws.chunkLogits, r*V)
	for i := 0; i < r; i++ {
		row := ws.labelRow[c0+i]
		copy(ws.chunkX[i*D:(i+1)*D], ws.xnF[row*D:(row+1)*D])
	}
	linNT(ws.Pool, ws.chunkLogits[:r*V], ws.chunkX[:r*D], m.Params.LMHead, m.Params.HLMHead, nil, r, V, D)
	m.capLogits(ws.Pool, ws.chunkLogits[:r*V], r)
	return ws.chunkLogits[:r*V]
}

// capLogits finishes rows of lm_head outputs as the model's logits:
// divided by Granite's logits_scaling, or capped by Gemma-2's
// final_logit_softcapping, when the model has them.
func (m *Model) capLogits(p *kernels.Pool, logits []float32, rows int) {
	V := m.Config.VocabSize
	if s := float32(m.Config.LogitsScaling); s != 0 && s != 1 {
		p.For(rows, func(i int) {
			for j := i * V; j < (i+1)*V; j++ {
				logits[j] /= s
			}
		})
	}
	c := float32(m.Config.FinalSoftcap)
	if c <= 0 {
		return
	}
	p.For(rows, func(i int) { kernels.SoftcapRow(logits[i*V:(i+1)*V], c) })
}

// checkLoRA verifies that the model's adapter, if any, fits it.
func (m *Model) checkLoRA() error {
	if m.LoRA == nil {
		return nil
	}
	return m.Config.checkAdapter(m.LoRA)
}

// trunk runs embedding, every decoder layer and the final norm, leaving the
// normalized final hidden states in ws.xnF. A training pass applies the
// adapters' dropout.
func (m *Model) trunk(ws *Workspace, b *Batch, training bool) {
	c, p := m.Config, ws.Pool
	N := len(b.Tokens)
	longest := 0
	for s := 0; s < b.NumSeqs(); s++ {
		_, np := b.prefix(s)
		for t := b.Offsets[s]; t < b.Offsets[s+1]; t++ {
			ws.pos[t] = int32(np + t - b.Offsets[s]) // positions restart in every sequence, after its prefix
		}
		longest = max(longest, np+b.Offsets[s+1]-b.Offsets[s])
	}
	m.ensureRope(ws, longest)
	_, finalW := m.normWeights(&ws.normBuf, &ws.norms)
	ws.normF = finalW

	ws.dropP, ws.dropSeed = 0, ws.DropoutSeed
	if training && m.LoRA != nil {
		ws.dropP = m.LoRA.Config.Dropout
	}

	m.embed(ws.layers[0].x, b.Tokens)
	for l := range ws.layers {
		m.layerForward(ws, b, l, ws.acts(l), ws.input(l+1))
	}
	kernels.RMSNormForward(p, ws.xnF, ws.rstdF, ws.xF, finalW, N, c.HiddenSize, float32(c.RMSNormEps))
}

// layerForward runs decoder layer l over the batch from a.x, keeping in a
// what Backward reads, and writes the layer's output to out. With out nil
// (Backward's recompute of a checkpointed layer, whose output it does not
// read again) it stops once a holds what Backward reads.
func (m *Model) layerForward(ws *Workspace, b *Batch, l int, a layerActs, out []float32) {
	c, p, N := m.Config, ws.Pool, len(b.Tokens)
	w, n := &m.Params.Layers[l], &ws.norms[l]
	ad := m.layerAdapt(ws, l, &a.u)
	qPre, kPre := a.qPre, a.kPre // kept for Backward
	if ws.noGradRun {
		qPre, kPre = nil, nil
	}
	cos, sin := m.rope(l, ws.cos, ws.sin, ws.cosL, ws.sinL)
	m.attnInputs(p, w, n, ad, a.x, a.xn1, a.rstd1, a.q, a.k, a.v, qPre, kPre, a.qRstd, a.kRstd, ws.pos, cos, sin, N)
	kernels.AttentionForwardBlocked(p, a.att, a.lse, a.q, a.k, a.v, c.attnShape(l, b.Offsets, b.Prefix))
	m.attnOutput(p, w, n, ad, a.x2, a.att, a.x, a.ao, a.rstdPA, N)
	if out == nil && c.PostNorms {
		out = ws.dxn // the post-feedforward norm's rstd needs the product; its output is dropped
	}
	m.mlpBlock(p, w, n, ad, out, a.x2, a.xn2, a.rstd2, a.gu, a.h, a.mo, a.rstdPF, N)
}

// attnInputs starts a layer's attention block for N rows of x: xn = the
// input RMSNorm of x (rstd saved; OLMo-2: x itself), q, k and v = its
// projections, the norms of q and k (per head: Qwen3, Gemma-3; per token:
// OLMo-2), then RoPE at positions pos (none when cos is nil: a NoPE layer).
// With qPre and kPre (training), q and k before the head norms are kept
// there for the backward pass; qRstd and kRstd receive the head norms' rstd.
//
// ad (nil: none) adds the layer's q, k and v adapters to the projections.
func (m *Model) attnInputs(p *kernels.Pool, w *LayerParams, n *layerNorms, ad *adapt, x, xn, rstd, q, k, v, qPre, kPre, qRstd, kRstd []float32, pos []int32, cos, sin []float32, N int) {
	c := m.Config
	D, H, KV, hd, eps := c.HiddenSize, c.NumHeads, c.NumKVHeads, c.HeadDim, float32(c.RMSNormEps)
	preNorm(p, xn, rstd, x, n.attn, N, D, eps)
	linNT(p, q, xn, w.Wq, w.HWq, w.Bq, N, H*hd, D)
	linNT(p, k, xn, w.Wk, w.HWk, w.Bk, N, KV*hd, D)
	linNT(p, v, xn, w.Wv, w.HWv, w.Bv, N, KV*hd, D)
	if ad != nil {
		ad.apply(p, modQ, q, H*hd, 0, xn, N)
		ad.apply(p, modK, k, KV*hd, 0, xn, N)
		ad.apply(p, modV, v, KV*hd, 0, xn, N)
	}
	if c.QKNorm {
		qIn, kIn := q, k // RMSNormForward allows its output to alias its input
		if qPre != nil {
			copy(qPre, q)
			copy(kPre, k)
			qIn, kIn = qPre, kPre
		}
		qr, qw, kr, kw := c.qkNormShape(N)
		kernels.RMSNormForward(p, q, qRstd, qIn, n.q, qr, qw, eps)
		kernels.RMSNormForward(p, k, kRstd, kIn, n.k, kr, kw, eps)
	}
	if cos != nil {
		kernels.RopeForward(p, q, pos, cos, sin, N, H, hd, c.ropeDim())
		kernels.RopeForward(p, k, pos, cos, sin, N, KV, hd, c.ropeDim())
	}
}

// attnOutput ends a layer's attention block for N rows: x2 = x + att·W_oᵀ
// (+ bias); with PostNorms (Gemma, OLMo-2) the product goes to ao and
// x2 = x + the post-attention RMSNorm of ao (rstd saved). ad (nil: none)
// adds the o_proj adapter to the product.
func (m *Model) attnOutput(p *kernels.Pool, w *LayerParams, n *layerNorms, ad *adapt, x2, att, x, ao, rstd []float32, N int) {
	c := m.Config
	D, H, hd := c.HiddenSize, c.NumHeads, c.HeadDim
	if c.PostNorms {
		linNT(p, ao, att, w.Wo, w.HWo, w.Bo, N, D, H*hd)
		if ad != nil {
			ad.apply(p, modO, ao, D, 0, att, N)
		}
		kernels.RMSNormForward(p, x2, rstd, ao, n.postAttn, N, D, float32(c.RMSNormEps))
	} else {
		linNT(p, x2, att, w.Wo, w.HWo, w.Bo, N, D, H*hd)
		if ad != nil {
			ad.apply(p, modO, x2, D, 0, att, N)
		}
		scaleSlice(p, x2[:N*D], c.residualScale())
	}
	kernels.Add(p, x2, x)
}

// mlpBlock is a layer's MLP block with its residual for N rows: xn = the
// MLP's input RMSNorm of x2 (rstd saved; OLMo-2: x2 itself), gu = its gate
// and up projections (one product with the two weights stacked), h =
// SwiGLU (Gemma: GeGLU) of them, out = x2 + W_down·h; with PostNorms
// W_down·h goes to mo and out = x2 + the post-feedforward RMSNorm of mo
// (rstdPF saved). ad (nil: none) adds the gate, up and down adapters to
// their products. With out nil (not with PostNorms) it stops after h and
// the down adapter's inner product, which is all a checkpointed layer's
// recompute needs.
func (m *Model) mlpBlock(p *kernels.Pool, w *LayerParams, n *layerNorms, ad *adapt, out, x2, xn, rstd, gu, h, mo, rstdPF []float32, N int) {
	c := m.Config
	D, I, eps := c.HiddenSize, c.IntermediateSize, float32(c.RMSNormEps)
	preNorm(p, xn, rstd, x2, n.mlp, N, D, eps)
	linNT(p, gu, xn, w.WGateUp, w.HWGateUp, nil, N, 2*I, D)
	if ad != nil {
		ad.apply(p, modGate, gu, 2*I, 0, xn, N)
		ad.apply(p, modUp, gu, 2*I, I, xn, N)
	}
	if c.Gemma {
		kernels.GeGLURows(p, h, gu, N, I)
	} else {
		kernels.SwiGLURows(p, h, gu, N, I)
	}
	if c.PostNorms {
		linNT(p, mo, h, w.WDown, w.HWDown, nil, N, D, I)
		if ad != nil {
			ad.apply(p, modDown, mo, D, 0, h, N)
		}
		kernels.RMSNormForward(p, out, rstdPF, mo, n.postMLP, N, D, eps)
	} else {
		if out == nil {
			ad.inner(p, modDown, h, N)
			return
		}
		linNT(p, out, h, w.WDown, w.HWDown, nil, N, D, I)
		if ad != nil {
			ad.apply(p, modDown, out, D, 0, h, N)
		}
		scaleSlice(p, out[:N*D], c.residualScale())
	}
	kernels.Add(p, out, x2)
}

// Backward accumulates into grads the gradient of L with respect to every
// parameter, given dSums[s] = ∂L/∂S_s for each sequence's log-prob sum. It
// must follow a Forward on the same workspace and batch. With an adapter
// (m.LoRA) the gradients flow through it to the base's weights, but the
// adapter's own gradients are not computed (see BackwardAdapter).
func (m *Model) Backward(ws *Workspace, b *Batch, dSums []float64, grads *Params) error {
	if grads == nil {
		return fmt.Errorf("model: Backward needs gradients to accumulate into")
	}
	if m.Params.Frozen {
		return fmt.Errorf("model: the base weights are held in bfloat16 as a frozen base; full fine-tuning needs them in float32 (train adapters with BackwardAdapter, or load the base without a 2-byte base dtype)")
	}
	return m.backward(ws, b, dSums, grads, nil)
}

// BackwardAdapter accumulates into grads the gradient of L with respect to
// the weights of the model's adapter (m.LoRA), the base being frozen: like
// Backward, it propagates ∂L/∂x through every layer, the frozen weights and
// the adapters, but computes no gradient of a base weight (no weight
// gradient products, no norm or embedding gradients). grads must have the
// adapter's configuration (NewAdapter with m.LoRA.Config).
func (m *Model) BackwardAdapter(ws *Workspace, b *Batch, dSums []float64, grads *Adapter) error {
	if m.LoRA == nil {
		return fmt.Errorf("model: BackwardAdapter called on a model without a LoRA adapter")
	}
	if grads == nil || !m.LoRA.sameShape(grads) {
		return fmt.Errorf("model: BackwardAdapter: the gradients do not have the adapter's shape")
	}
	return m.backward(ws, b, dSums, nil, grads)
}

// backward is Backward (grads set: every base weight's gradient) and
// BackwardAdapter (grads nil, ag set: the adapter's gradients only).
func (m *Model) backward(ws *Workspace, b *Batch, dSums []float64, grads *Params, ag *Adapter) error {
	c, P, p := m.Config, m.Params, ws.Pool
	N := len(b.Tokens)
	if ws.n != N || len(dSums) != b.NumSeqs() {
		return fmt.Errorf("model: Backward called with a batch that does not match the last Forward")
	}
	if ws.noGradRun {
		return fmt.Errorf("model: Backward called after a Forward with NoGrad, which keeps no activations")
	}
	if err := m.checkLoRA(); err != nil {
		return err
	}
	D, I, H, KV, hd, V := c.HiddenSize, c.IntermediateSize, c.NumHeads, c.NumKVHeads, c.HeadDim, c.VocabSize
	ws.dx, ws.dxn = grow(ws.dx, N*D), grow(ws.dxn, N*D)
	ws.dq, ws.dk, ws.dv = grow(ws.dq, N*H*hd), grow(ws.dk, N*KV*hd), grow(ws.dv, N*KV*hd)
	ws.datt = grow(ws.datt, N*H*hd)
	ws.dgu, ws.dh = grow(ws.dgu, 2*N*I), grow(ws.dh, N*I)
	dx, dxn := ws.dx, ws.dxn
	if m.LoRA != nil {
		ws.loraDu = grow(ws.loraDu, N*m.LoRA.Config.R)
	}
	// normGrad is where a norm weight's gradient goes: grads, or a
	// discarded scratch buffer when the base is frozen.
	normGrad := func(g []float32, n int) []float32 {
		if grads != nil {
			return g
		}
		ws.dwScratch = grow(ws.dwScratch, max(D, H*hd))
		return ws.dwScratch[:n]
	}

	// lm_head and log-softmax: the logits Forward kept, or each chunk's
	// logits computed again. (SoftmaxGrad turns kept logits into their
	// gradient, so a second Backward computes them again.)
	clear(dxn)
	L := len(ws.labelRow)
	chunk := c.logitChunk()
	kept := ws.kept
	if kept {
		chunk, ws.kept = max(L, 1), false
	}
	dxs := make([]float32, chunk*D)
	for c0 := 0; c0 < L; c0 += chunk {
		r := min(chunk, L-c0)
		var logits []float32
		if kept {
			logits = ws.chunkLogits[:r*V]
		} else {
			logits = m.chunkLogits(ws, c0, r)
		}
		xs := ws.chunkX[:r*D]
		capped, scaled := float32(c.FinalSoftcap), float32(c.LogitsScaling)
		p.For(r, func(i int) {
			g := float32(dSums[ws.labelSeq[c0+i]])
			row := logits[i*V : (i+1)*V]
			if capped > 0 {
				kernels.SoftcapSoftmaxGrad(row, ws.labelLse[c0+i], int(ws.labelTok[c0+i]), g, capped)
			} else {
				kernels.SoftmaxGrad(row, ws.labelLse[c0+i], int(ws.labelTok[c0+i]), g)
			}
			if scaled != 0 && scaled != 1 { // through Granite's division
				for j := range row {
					row[j] /= scaled
				}
			}
		})
		if grads != nil {
			kernels.MatMulTNAcc(p, grads.LMHead, logits, xs, V, D, r)
		}
		linNN(p, dxs[:r*D], logits, P.LMHead, P.HLMHead, r, D, V)
		for i := 0; i < r; i++ {
			row := ws.labelRow[c0+i]
			kernels.Axpy(dxn[row*D:(row+1)*D], 1, dxs[i*D:(i+1)*D])
		}
	}
	clear(dx)
	var gFinal []float32
	if grads != nil {
		gFinal = grads.FinalNorm
	}
	kernels.RMSNormBackward(p, dx, normGrad(gFinal, D), dxn, ws.xF, ws.normF, ws.rstdF, N, D)

	for l := len(ws.layers) - 1; l >= 0; l-- {
		a, w, n := ws.acts(l), &P.Layers[l], &ws.norms[l]
		if ws.ckptRun {
			// the layer's activations, computed again from its input
			m.layerForward(ws, b, l, a, nil)
		}
		gw := &LayerParams{} // a frozen base's: every weight gradient skipped
		if grads != nil {
			gw = &grads.Layers[l]
		}
		ad := m.layerAdapt(ws, l, &a.u)
		lg := &loraGrad{du: ws.loraDu}
		if ag != nil {
			lg.g = &ag.Layers[l]
		}
		// MLP block: dx holds ∂L/∂(layer output); the residual passes it
		// through. dmo = ∂L/∂(W_down·h): dx itself, or for Gemma through the
		// post-feedforward norm (in dxn, free until the MLP's input norm).
		dmo := dx
		if c.PostNorms {
			dmo = dxn
			clear(dmo)
			kernels.RMSNormBackward(p, dmo, normGrad(gw.PostMLPNorm, D), dx, a.mo, n.postMLP, a.rstdPF, N, D)
		} else if rs := c.residualScale(); rs != 1 { // through Granite's residual_multiplier
			dmo = dxn
			copy(dmo[:N*D], dx[:N*D])
			scaleSlice(p, dmo[:N*D], rs)
		}
		linNN(p, ws.dh, dmo, w.WDown, w.HWDown, N, I, D)
		if gw.WDown != nil {
			kernels.MatMulTNAcc(p, gw.WDown, dmo, a.h, D, I, N)
		}
		ad.backward(p, lg, modDown, ws.dh, dmo, D, 0, a.h, N)
		if c.Gemma {
			kernels.GeGLURowsBackward(p, ws.dgu, ws.dh, a.gu, N, I)
		} else {
			kernels.SwiGLURowsBackward(p, ws.dgu, ws.dh, a.gu, N, I)
		}
		if gw.WGateUp != nil {
			kernels.MatMulTNAcc(p, gw.WGateUp, ws.dgu, a.xn2, 2*I, D, N)
		}
		linNN(p, dxn, ws.dgu, w.WGateUp, w.HWGateUp, N, D, 2*I)
		ad.backward(p, lg, modGate, dxn, ws.dgu, 2*I, 0, a.xn2, N)
		ad.backward(p, lg, modUp, dxn, ws.dgu, 2*I, I, a.xn2, N)
		preNormBackward(p, dx, normGrad(gw.MLPNorm, D), dxn, a.x2, n.mlp, a.rstd2, N, D)
		// attention block: dx now holds ∂L/∂x2; dao = ∂L/∂(att·W_oᵀ), for
		// Gemma through the post-attention norm.
		dao := dx
		if c.PostNorms {
			dao = dxn
			clear(dao)
			kernels.RMSNormBackward(p, dao, normGrad(gw.PostAttnNorm, D), dx, a.ao, n.postAttn, a.rstdPA, N, D)
		} else if rs := c.residualScale(); rs != 1 {
			dao = dxn
			copy(dao[:N*D], dx[:N*D])
			scaleSlice(p, dao[:N*D], rs)
		}
		linNN(p, ws.datt, dao, w.Wo, w.HWo, N, H*hd, D)
		if gw.Wo != nil {
			kernels.MatMulTNAcc(p, gw.Wo, dao, a.att, D, H*hd, N)
		}
		if gw.Bo != nil {
			colSumAcc(gw.Bo, dao, N, D)
		}
		ad.backward(p, lg, modO, ws.datt, dao, D, 0, a.att, N)
		clear(ws.dq)
		clear(ws.dk)
		clear(ws.dv)
		kernels.AttentionBackwardBlocked(p, ws.dq, ws.dk, ws.dv, ws.datt, a.q, a.k, a.v, a.att, a.lse, c.attnShape(l, b.Offsets, b.Prefix))
		if cos, sin := m.rope(l, ws.cos, ws.sin, ws.cosL, ws.sinL); cos != nil {
			kernels.RopeBackward(p, ws.dq, ws.pos, cos, sin, N, H, hd, c.ropeDim())
			kernels.RopeBackward(p, ws.dk, ws.pos, cos, sin, N, KV, hd, c.ropeDim())
		}
		dq, dk := ws.dq, ws.dk
		if c.QKNorm {
			// reuse the MLP scratch for the pre-norm gradients
			var dqPre, dkPre []float32
			if 2*I >= (H+KV)*hd {
				dqPre, dkPre = ws.dgu[:N*H*hd], ws.dgu[N*H*hd:N*(H+KV)*hd]
			} else {
				dqPre, dkPre = make([]float32, N*H*hd), make([]float32, N*KV*hd)
			}
			clear(dqPre)
			clear(dkPre)
			qr, qw, kr, kw := c.qkNormShape(N)
			kernels.RMSNormBackward(p, dqPre, normGrad(gw.QNorm, qw), dq, a.qPre, n.q, a.qRstd, qr, qw)
			kernels.RMSNormBackward(p, dkPre, normGrad(gw.KNorm, kw), dk, a.kPre, n.k, a.kRstd, kr, kw)
			dq, dk = dqPre, dkPre
		}
		if grads != nil {
			kernels.MatMulTNAcc(p, gw.Wq, dq, a.xn1, H*hd, D, N)
			kernels.MatMulTNAcc(p, gw.Wk, dk, a.xn1, KV*hd, D, N)
			kernels.MatMulTNAcc(p, gw.Wv, ws.dv, a.xn1, KV*hd, D, N)
		}
		if gw.Bq != nil {
			colSumAcc(gw.Bq, dq, N, H*hd)
			colSumAcc(gw.Bk, dk, N, KV*hd)
			colSumAcc(gw.Bv, ws.dv, N, KV*hd)
		}
		linNN(p, dxn, dq, w.Wq, w.HWq, N, D, H*hd)
		linNNAcc(p, dxn, dk, w.Wk, w.HWk, N, D, KV*hd)
		linNNAcc(p, dxn, ws.dv, w.Wv, w.HWv, N, D, KV*hd)
		ad.backward(p, lg, modQ, dxn, dq, H*hd, 0, a.xn1, N)
		ad.backward(p, lg, modK, dxn, dk, KV*hd, 0, a.xn1, N)
		ad.backward(p, lg, modV, dxn, ws.dv, KV*hd, 0, a.xn1, N)
		preNormBackward(p, dx, normGrad(gw.AttnNorm, D), dxn, a.x, n.attn, a.rstd1, N, D)
	}
	if grads == nil {
		return nil
	}
	// embedding: scatter-add the gradient of each token's row (times the
	// embedding scale).
	es := c.embedScale()
	for t, tok := range b.Tokens {
		kernels.Axpy(grads.Embed[int(tok)*D:(int(tok)+1)*D], es, dx[t*D:(t+1)*D])
	}
	return nil
}

// colSumAcc adds the column sums of x [rows, cols] to db [cols].
func colSumAcc(db, x []float32, rows, cols int) {
	for r := 0; r < rows; r++ {
		kernels.Axpy(db, 1, x[r*cols:(r+1)*cols])
	}
}

// LastLogits runs the model over a batch and returns, for each sequence, the
// logits [vocab] at its last position: the distribution of the next token.
func (m *Model) LastLogits(ws *Workspace, b *Batch) ([][]float32, error) {
	c := m.Config
	if err := b.validate(c); err != nil {
		return nil, err
	}
	if err := m.checkLoRA(); err != nil {
		return nil, err
	}
	ws.reserve(c, len(b.Tokens), m.LoRA)
	m.trunk(ws, b, false)
	out := make([][]float32, b.NumSeqs())
	D, V := c.HiddenSize, c.VocabSize
	for s := range out {
		row := b.Offsets[s+1] - 1
		out[s] = make([]float32, V)
		linNT(ws.Pool, out[s], ws.xnF[row*D:(row+1)*D], m.Params.LMHead, m.Params.HLMHead, nil, 1, V, D)
		m.capLogits(ws.Pool, out[s], 1)
	}
	return out, nil
}

// Argmax returns the index of the largest value (the first on ties).
func Argmax(x []float32) int {
	best, bi := float32(math.Inf(-1)), 0
	for i, v := range x {
		if v > best {
			best, bi = v, i
		}
	}
	return bi
}

// qkNormShape is how the q and k norms see N rows of q and k: as rows of
// head_dim (one norm per head), or with QKNormFull as one row per token of
// the whole projection.
func (c Config) qkNormShape(N int) (qRows, qWidth, kRows, kWidth int) {
	H, KV, hd := c.NumHeads, c.NumKVHeads, c.HeadDim
	if c.QKNormFull {
		return N, H * hd, N, KV * hd
	}
	return N * H, hd, N * KV, hd
}

// preNorm is a layer's input norm: xn = the RMSNorm of x with weight w
// (rstd saved), or without one (w nil: OLMo-2) x itself.
func preNorm(p *kernels.Pool, xn, rstd, x, w []float32, N, D int, eps float32) {
	if w == nil {
		copy(xn[:N*D], x[:N*D])
		return
	}
	kernels.RMSNormForward(p, xn, rstd, x, w, N, D, eps)
}

// preNormBackward adds to dx the gradient through preNorm given dxn, the
// gradient of its output (and accumulates dw, when not nil).
func preNormBackward(p *kernels.Pool, dx, dw, dxn, x, w, rstd []float32, N, D int) {
	if w == nil {
		kernels.Add(p, dx[:N*D], dxn[:N*D])
		return
	}
	kernels.RMSNormBackward(p, dx, dw, dxn, x, w, rstd, N, D)
}
