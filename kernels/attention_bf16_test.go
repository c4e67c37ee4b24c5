package kernels

import (
	"math/rand/v2"
	"testing"
)

// In the BF16 precision with a native bfloat16 kernel (AMX-BF16 or
// AVX512_BF16), attention's products run on the bfloat16 kernel, as bf16 autocast runs them: the result is that of float32
// attention on inputs rounded to bfloat16 (q, k, v and dout), up to the
// rounding of the probabilities and score gradients to bfloat16 inside the
// products (about 2⁻⁹ relative each, averaging out over a row) and the
// order of float32 sums. Shapes cover prefixes (shared prompts), grouped
// heads, key ranges deeper than one block of depth (768 steps) and lengths
// that are not multiples of the 64-query block or of 32.
func TestAttentionBF16(t *testing.T) {
	if !NativeBF16() {
		t.Skip("no native bfloat16 kernel here (AMX-BF16 or AVX512_BF16): the BF16 precision's attention runs in float32")
	}
	pool := NewPool(2)
	defer pool.Close()
	r := rand.New(rand.NewPCG(31, 32))
	for _, c := range []struct {
		name      string
		offsets   []int
		prefix    []int
		h, kv, hd int
	}{
		{"one sequence", []int{0, 100}, nil, 2, 2, 64},
		{"packed, grouped heads", []int{0, 37, 300, 301}, nil, 4, 2, 32},
		{"shared prompt", []int{0, 70, 500, 913}, []int{-1, 0, 0}, 2, 1, 64},
		{"two pairs", []int{0, 128, 512, 896, 1024, 1408, 1792}, []int{-1, 0, 0, -1, 3, 3}, 2, 2, 64},
		{"long prompt and response", []int{0, 300, 1101}, []int{-1, 0}, 2, 1, 64},
	} {
		t.Run(c.name, func(t *testing.T) {
			sh := AttnShape{Offsets: c.offsets, Prefix: c.prefix, Heads: c.h, KVHeads: c.kv, HeadDim: c.hd}
			n := c.offsets[len(c.offsets)-1]
			qW, kvW := c.h*c.hd, c.kv*c.hd
			q, k, v, dout := randSlice(r, n*qW), randSlice(r, n*kvW), randSlice(r, n*kvW), randSlice(r, n*qW)
			for _, x := range [][]float32{q, k} { // scores of a few units, as in a trained model
				for i := range x {
					x[i] *= 3
				}
			}
			run := func(prec Precision, q, k, v, dout []float32, blocked bool) attnResult {
				pool.SetPrecision(prec)
				defer pool.SetPrecision(F32)
				return runAttention(pool, sh, q, k, v, dout, blocked)
			}
			round := func(x []float32) []float32 {
				out := make([]float32, len(x))
				for i, v := range x {
					out[i] = RoundBF16(v)
				}
				return out
			}
			got := run(BF16, q, k, v, dout, true)
			want := run(F32, round(q), round(k), round(v), round(dout), false)
			plain := run(F32, q, k, v, dout, true)
			// Measured: out and dv within 0.2% of their largest value, dq
			// and dk (whose score gradients are rounded) within 0.8%;
			// float32 attention is 1-3% away.
			for _, ch := range []struct {
				what             string
				got, want, plain []float32
				tol              float64
			}{
				{"out", got.out, want.out, plain.out, 5e-3},
				{"dq", got.dq, want.dq, plain.dq, 2e-2},
				{"dk", got.dk, want.dk, plain.dk, 2e-2},
				{"dv", got.dv, want.dv, plain.dv, 5e-3},
			} {
				e, ef := maxAbsRel(ch.got, ch.want), maxAbsRel(ch.got, ch.plain)
				t.Logf("%s: %.2g of the largest value from float32 on rounded inputs, %.2g from float32", ch.what, e, ef)
				if e > ch.tol {
					t.Errorf("%s: max error %.2g of the largest value", ch.what, e)
				}
				if ef < 1e-4 {
					t.Errorf("%s: within %.2g of float32: the products did not run in bfloat16", ch.what, ef)
				}
			}
		})
	}
}
