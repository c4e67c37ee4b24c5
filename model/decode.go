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
// exactly as attention reads them.
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
// projections with biases, Qwen3 head norms, RoPE with llama3 scaling,
// grouped-query attention, SwiGLU, tied or untied lm_head), so its logits
// equal LastLogits over the whole sequence up to float32 rounding.
//
// A Decoder keeps scratch buffers; one Decoder serves one goroutine at a
// time. The caches belong to the caller.
type Decoder struct {
	Model *Model
	Pool  *kernels.Pool

	pos      []int32
	seqOf    []int // the sequence each packed row belongs to
	cos, sin []float32
	maxPos   int

	x, xn, q, k, v, att, x2 []float32
	gu, h, rstd             []float32
	last                    []float32
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
// On an error (an empty or out-of-vocabulary token list, a shared cache, a
// sequence longer than the sliding window) no cache is changed.
func (d *Decoder) Forward(caches []*KVCache, tokens [][]int32) ([][]float32, error) {
	m := d.Model
	c, P, p := m.Config, m.Params, d.Pool
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
		if c.SlidingWindow > 0 && n > c.SlidingWindow {
			return nil, fmt.Errorf("model: decode: sequence %d would reach %d tokens, longer than the model's sliding_window %d (sliding-window attention is not implemented)", s, n, c.SlidingWindow)
		}
		N += len(toks)
		longest = max(longest, n)
	}

	D, H, KV, hd, V := c.HiddenSize, c.NumHeads, c.NumKVHeads, c.HeadDim, c.VocabSize
	eps := float32(c.RMSNormEps)
	kvw := KV * hd
	d.reserve(N)
	if longest > d.maxPos {
		d.maxPos = max(longest, 2*d.maxPos, 256)
		d.cos, d.sin = ropeTables(m.invFreq, d.maxPos)
	}
	// Row r of the packed batch: sequence seqOf[r] at position pos[r].
	rowStart := make([]int, len(tokens)+1)
	r := 0
	for s, toks := range tokens {
		rowStart[s] = r
		for i, t := range toks {
			d.pos[r] = int32(caches[s].Len + i)
			d.seqOf[r] = s
			copy(d.x[r*D:(r+1)*D], P.Embed[int(t)*D:(int(t)+1)*D])
			r++
		}
	}
	rowStart[len(tokens)] = N
	oldLen := make([]int, len(caches))
	for s, cache := range caches {
		oldLen[s] = cache.Len
		cache.reserve(c.NumLayers, kvw, cache.Len+len(tokens[s]))
	}

	for l := range P.Layers {
		w := &P.Layers[l]
		m.attnInputs(p, w, d.x, d.xn, d.rstd, d.q, d.k, d.v, nil, nil, d.rstd, d.rstd, d.pos, d.cos, d.sin, N)
		for s, cache := range caches {
			lo, hi := rowStart[s], rowStart[s+1]
			o := oldLen[s] * kvw
			copy(cache.K[l][o:o+(hi-lo)*kvw], d.k[lo*kvw:hi*kvw])
			copy(cache.V[l][o:o+(hi-lo)*kvw], d.v[lo*kvw:hi*kvw])
		}
		d.attention(caches, l)
		kernels.MatMulNT(p, d.x2, d.att, w.Wo, w.Bo, N, D, H*hd)
		kernels.Add(p, d.x2, d.x)
		m.mlpBlock(p, w, d.x, d.x2, d.xn, d.rstd, d.gu, d.h, N)
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
	kernels.RMSNormForward(p, xn, make([]float32, S), d.last, P.FinalNorm, S, D, eps)
	logits := make([]float32, S*V)
	kernels.MatMulNT(p, logits, xn, P.LMHead, nil, S, V, D)
	out := make([][]float32, S)
	for s := range out {
		out[s] = logits[s*V : (s+1)*V : (s+1)*V]
	}
	return out, nil
}

// attention computes d.att for every packed row and head: causal softmax
// attention of the row's query over its sequence's cached keys and values
// at positions 0..pos, with the arithmetic of kernels.AttentionForward's row
// loop (float32 scores, vector exp, float64 normalizer, one Axpy per key).
func (d *Decoder) attention(caches []*KVCache, l int) {
	c := d.Model.Config
	H, KV, hd := c.NumHeads, c.NumKVHeads, c.HeadDim
	g := H / KV
	scale := float32(1 / math.Sqrt(float64(hd)))
	N := len(d.pos)
	d.Pool.For(N*H, func(i int) {
		r, h := i/H, i%H
		n := int(d.pos[r]) + 1
		K, Vv := caches[d.seqOf[r]].K[l], caches[d.seqOf[r]].V[l]
		kvh := h / g
		qt := d.q[(r*H+h)*hd : (r*H+h+1)*hd]
		sc := make([]float32, n)
		mx := float32(math.Inf(-1))
		for j := range sc {
			x := kernels.Dot(qt, K[(j*KV+kvh)*hd:(j*KV+kvh+1)*hd]) * scale
			sc[j] = x
			if x > mx {
				mx = x
			}
		}
		for j := range sc {
			sc[j] -= mx
		}
		kernels.ExpSlice(sc, sc)
		var sum float64
		for _, e := range sc {
			sum += float64(e)
		}
		inv := float32(1 / sum)
		o := d.att[(r*H+h)*hd : (r*H+h+1)*hd]
		clear(o)
		for j, e := range sc {
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
	d.k, d.v = grow(d.k, n*KV*hd), grow(d.v, n*KV*hd)
	d.gu, d.h = grow(d.gu, 2*n*I), grow(d.h, n*I)
	d.rstd = grow(d.rstd, max(n, n*H, n*KV))
	if cap(d.pos) < n {
		d.pos, d.seqOf = make([]int32, n), make([]int, n)
	}
	d.pos, d.seqOf = d.pos[:n], d.seqOf[:n]
}
