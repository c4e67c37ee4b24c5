package model

import (
	"fmt"
	"math"

	"github.com/relupo/relupo/kernels"
)

// KVCache holds the attention keys and values one sequence has produced so
// far, so that each new token costs one row of work instead of a forward
// pass over the whole sequence. K[l] and V[l] are layer l's rows
// [Len, kvHeads·headDim]; keys are stored after bias, head norm and RoPE,
// exactly as attention reads them. Sliding-window layers keep every
// position too, and attend to the last window of them.
type KVCache struct {
	K, V [][]float32
	// Len is the number of positions cached: the next token is at
	// position Len.
	Len int
}

// Reset empties the cache, keeping its memory for the next sequence.
func (c *KVCache) Reset() { c.Len = 0 }

// reserve makes room for n positions in every layer.
func (c *KVCache) reserve(layers, width, n int) {
	if len(c.K) != layers {
		c.K, c.V = make([][]float32, layers), make([][]float32, layers)
	}
	for l := range c.K {
		if cap(c.K[l]) < n*width {
			newCap := max(n*width, 2*cap(c.K[l]), 64*width)
			k, v := make([]float32, c.Len*width, newCap), make([]float32, c.Len*width, newCap)
			copy(k, c.K[l][:c.Len*width])
			copy(v, c.V[l][:c.Len*width])
			c.K[l], c.V[l] = k, v
		}
		c.K[l], c.V[l] = c.K[l][:n*width], c.V[l][:n*width]
	}
}

// Decoder runs a model incrementally over KV caches: a prefill over a
// prompt and then one token at a time, for several sequences together. It
// uses the same kernels and the same arithmetic as Forward (RMSNorm,
// projections with biases, head norms, RoPE with its scaling and Gemma-3's
// local bases, grouped-query attention with sliding windows and soft-capped
// scores, SwiGLU or GeGLU, Gemma's extra norms, tied or untied lm_head, the
// final soft cap) and the model's LoRA adapter when it has one (without
// dropout), so its logits equal LastLogits over the whole sequence up to
// float32 rounding.
//
// A Decoder keeps scratch buffers; one Decoder serves one goroutine at a
// time. The caches belong to the caller.
type Decoder struct {
	Model *Model
	Pool  *kernels.Pool

	pos        []int32
	seqOf      []int // the sequence each packed row belongs to
	cos, sin   []float32
	cosL, sinL []float32 // Gemma-3's local RoPE tables, or nil
	maxPos     int

	x, xn, q, k, v, att, x2, ao []float32
	gu, h, rstd                 []float32
	last                        []float32
	norms                       []layerNorms
	normBuf                     []float32
	loraU                       [numModules][]float32 // adapters' inner products [N, R]
	loraT                       []float32             // an adapter's B product
}

// NewDecoder returns a decoder for m whose kernels run on pool.
func NewDecoder(m *Model, pool *kernels.Pool) *Decoder {
	return &Decoder{Model: m, Pool: pool}
}

// NewCache returns an empty cache for the decoder's model.
func (d *Decoder) NewCache() *KVCache { return &KVCache{} }

// Forward appends tokens[s] to sequence s, whose past is caches[s], and
// returns for each sequence the logits [vocab] of the token after its last
// one. tokens[s] may hold a whole prompt (prefill) or a single sampled
// token; sequences of different lengths and cache lengths are processed in
// one pass, with no padding. Each cache grows by len(tokens[s]).
//
// On an error (an empty or out-of-vocabulary token list, a shared cache) no
// cache is changed.
func (d *Decoder) Forward(caches []*KVCache, tokens [][]int32) ([][]float32, error) {
	m := d.Model
	c, P, p := m.Config, m.Params, d.Pool
	if err := m.checkLoRA(); err != nil {
		return nil, err
	}
	if len(caches) != len(tokens) {
		return nil, fmt.Errorf("model: decode: %d caches for %d sequences", len(caches), len(tokens))
	}
	if len(tokens) == 0 {
		return nil, nil
	}
	seen := make(map[*KVCache]bool, len(caches))
	N, longest := 0, 0
	for s, toks := range tokens {
		cache := caches[s]
		if cache == nil {
			return nil, fmt.Errorf("model: decode: sequence %d has no cache", s)
		}
		if seen[cache] {
			return nil, fmt.Errorf("model: decode: sequence %d shares its cache with another sequence", s)
		}
		seen[cache] = true
		if len(toks) == 0 {
			return nil, fmt.Errorf("model: decode: sequence %d has no new tokens", s)
		}
		for i, t := range toks {
			if t < 0 || int(t) >= c.VocabSize {
				return nil, fmt.Errorf("model: decode: sequence %d token %d: id %d outside the vocabulary [0, %d)", s, i, t, c.VocabSize)
			}
		}
		n := cache.Len + len(toks)
		N += len(toks)
		longest = max(longest, n)
	}

	if limit := c.MaxSequence(); limit > 0 && longest > limit {
		return nil, fmt.Errorf("model: a sequence would reach %d tokens, more than original_max_position_embeddings %d: past it LongRoPE changes frequencies mid-sequence (transformers switches to long_factor), which relupo does not reproduce", longest, limit)
	}
	D, KV, hd, V := c.HiddenSize, c.NumKVHeads, c.HeadDim, c.VocabSize
	eps := float32(c.RMSNormEps)
	kvw := KV * hd
	d.reserve(N)
	if longest > d.maxPos {
		d.maxPos = max(longest, 2*d.maxPos, 256)
		d.cos, d.sin = ropeTables(m.invFreq, d.maxPos, ropeScale(m.Config))
		if m.invFreqLocal != nil {
			d.cosL, d.sinL = ropeTables(m.invFreqLocal, d.maxPos, 1)
		}
	}
	nw, finalW := m.normWeights(&d.normBuf, &d.norms)
	// Row r of the packed batch: sequence seqOf[r] at position pos[r].
	rowStart := make([]int, len(tokens)+1)
	r := 0
	for s, toks := range tokens {
		rowStart[s] = r
		for i := range toks {
			d.pos[r] = int32(caches[s].Len + i)
			d.seqOf[r] = s
			r++
		}
		m.embed(d.x[rowStart[s]*D:r*D], toks)
	}
	rowStart[len(tokens)] = N
	oldLen := make([]int, len(caches))
	for s, cache := range caches {
		oldLen[s] = cache.Len
		cache.reserve(c.NumLayers, kvw, cache.Len+len(tokens[s]))
	}

	for l := range P.Layers {
		w, n := &P.Layers[l], &nw[l]
		var ad *adapt
		if m.LoRA != nil {
			ad = &adapt{la: &m.LoRA.Layers[l], scale: m.LoRA.Config.Scale(), u: &d.loraU, t: d.loraT, r: m.LoRA.Config.R}
		}
		cos, sin := m.rope(l, d.cos, d.sin, d.cosL, d.sinL)
		m.attnInputs(p, w, n, ad, d.x, d.xn, d.rstd, d.q, d.k, d.v, nil, nil, d.rstd, d.rstd, d.pos, cos, sin, N)
		for s, cache := range caches {
			lo, hi := rowStart[s], rowStart[s+1]
			o := oldLen[s] * kvw
			copy(cache.K[l][o:o+(hi-lo)*kvw], d.k[lo*kvw:hi*kvw])
			copy(cache.V[l][o:o+(hi-lo)*kvw], d.v[lo*kvw:hi*kvw])
		}
		d.attention(caches, l)
		m.attnOutput(p, w, n, ad, d.x2, d.att, d.x, d.ao, d.rstd, N)
		m.mlpBlock(p, w, n, ad, d.x, d.x2, d.xn, d.rstd, d.gu, d.h, d.ao, d.rstd, N)
	}
	for s, cache := range caches {
		cache.Len = oldLen[s] + len(tokens[s])
	}

	// Final norm and lm_head at each sequence's last row only.
	S := len(tokens)
	d.last = grow(d.last, S*D)
	for s := 0; s < S; s++ {
		row := rowStart[s+1] - 1
		copy(d.last[s*D:(s+1)*D], d.x[row*D:(row+1)*D])
	}
	xn := make([]float32, S*D)
	kernels.RMSNormForward(p, xn, make([]float32, S), d.last, finalW, S, D, eps)
	logits := make([]float32, S*V)
	linNT(p, logits, xn, P.LMHead, P.HLMHead, nil, S, V, D)
	m.capLogits(p, logits, S)
	out := make([][]float32, S)
	for s := range out {
		out[s] = logits[s*V : (s+1)*V : (s+1)*V]
	}
	return out, nil
}

// attention computes d.att for every packed row and head: causal softmax
// attention of the row's query over its sequence's cached keys and values
// at positions 0..pos (the last window of them on a sliding layer), with
// the arithmetic of kernels.AttentionForward's row loop (float32 scores
// times the scale, soft-capped when configured, vector exp, float64
// normalizer, one Axpy per key).
func (d *Decoder) attention(caches []*KVCache, l int) {
	c := d.Model.Config
	H, KV, hd := c.NumHeads, c.NumKVHeads, c.HeadDim
	g := H / KV
	scale := float32(1 / math.Sqrt(float64(hd)))
	if c.QueryScale != 0 {
		scale = float32(c.QueryScale)
	}
	sc, window := float32(c.AttnSoftcap), c.LayerWindow(l)
	N := len(d.pos)
	d.Pool.For(N*H, func(i int) {
		r, h := i/H, i%H
		n := int(d.pos[r]) + 1
		lo := 0
		if window > 0 {
			lo = max(0, n-window)
		}
		K, Vv := caches[d.seqOf[r]].K[l], caches[d.seqOf[r]].V[l]
		kvh := h / g
		qt := d.q[(r*H+h)*hd : (r*H+h+1)*hd]
		sc2 := make([]float32, n-lo)
		mx := float32(math.Inf(-1))
		for i := range sc2 {
			j := lo + i
			x := kernels.Dot(qt, K[(j*KV+kvh)*hd:(j*KV+kvh+1)*hd]) * scale
			if sc > 0 {
				x = sc * float32(math.Tanh(float64(x/sc)))
			}
			sc2[i] = x
			if x > mx {
				mx = x
			}
		}
		for i := range sc2 {
			sc2[i] -= mx
		}
		kernels.ExpSlice(sc2, sc2)
		var sum float64
		for _, e := range sc2 {
			sum += float64(e)
		}
		inv := float32(1 / sum)
		o := d.att[(r*H+h)*hd : (r*H+h+1)*hd]
		clear(o)
		for i, e := range sc2 {
			j := lo + i
			kernels.Axpy(o, e*inv, Vv[(j*KV+kvh)*hd:(j*KV+kvh+1)*hd])
		}
	})
}

// reserve sizes the scratch buffers for n packed rows.
func (d *Decoder) reserve(n int) {
	c := d.Model.Config
	D, I, H, KV, hd := c.HiddenSize, c.IntermediateSize, c.NumHeads, c.NumKVHeads, c.HeadDim
	d.x, d.xn, d.x2 = grow(d.x, n*D), grow(d.xn, n*D), grow(d.x2, n*D)
	d.q, d.att = grow(d.q, n*H*hd), grow(d.att, n*H*hd)
	if c.PostNorms {
		d.ao = grow(d.ao, n*D)
	}
	d.k, d.v = grow(d.k, n*KV*hd), grow(d.v, n*KV*hd)
	d.gu, d.h = grow(d.gu, 2*n*I), grow(d.h, n*I)
	d.rstd = grow(d.rstd, max(n, n*H, n*KV))
	if a := d.Model.LoRA; a != nil {
		for i := range d.loraU {
			d.loraU[i] = grow(d.loraU[i], n*a.Config.R)
		}
		d.loraT = grow(d.loraT, n*max(D, I, H*hd))
	}
	if cap(d.pos) < n {
		d.pos, d.seqOf = make([]int32, n), make([]int, n)
	}
	d.pos, d.seqOf = d.pos[:n], d.seqOf[:n]
}
