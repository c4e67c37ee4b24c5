package kernels

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// Shared-prompt attention (a prompt's rows run once, and two responses
// attend to them as their prefix) computes what the unshared layout
// computes (prompt+chosen and prompt+rejected as two sequences): the same
// outputs for every row, and, with the prompt's output gradient given once,
// prompt gradients equal to the sum over its two copies. On every path, row
// loops and block products, with grouped heads and blocks of several sizes.
func TestAttentionPrefixEqualsUnshared(t *testing.T) {
	pool := NewPool(2)
	defer pool.Close()
	r := rand.New(rand.NewPCG(21, 22))
	for _, c := range []struct{ P, C, R, h, kv, hd int }{
		{5, 7, 3, 4, 2, 8}, {60, 50, 100, 2, 1, 16}, {1, 1, 1, 2, 2, 4}, {97, 49, 48, 3, 3, 32},
	} {
		H, KV, hd := c.h, c.kv, c.hd
		qW, kvW := H*hd, KV*hd
		// Rows of each part: prompt, chosen, rejected.
		qP, qC, qR := randSlice(r, c.P*qW), randSlice(r, c.C*qW), randSlice(r, c.R*qW)
		kP, kC, kR := randSlice(r, c.P*kvW), randSlice(r, c.C*kvW), randSlice(r, c.R*kvW)
		vP, vC, vR := randSlice(r, c.P*kvW), randSlice(r, c.C*kvW), randSlice(r, c.R*kvW)
		dP, dC, dR := randSlice(r, c.P*qW), randSlice(r, c.C*qW), randSlice(r, c.R*qW)
		cat := func(parts ...[]float32) []float32 {
			var out []float32
			for _, p := range parts {
				out = append(out, p...)
			}
			return out
		}
		zeros := make([]float32, c.P*qW)
		shared := AttnShape{Offsets: []int{0, c.P, c.P + c.C, c.P + c.C + c.R}, Prefix: []int{-1, 0, 0}, Heads: H, KVHeads: KV, HeadDim: hd}
		unshared := AttnShape{Offsets: []int{0, c.P + c.C, 2*c.P + c.C + c.R}, Heads: H, KVHeads: KV, HeadDim: hd}
		for _, path := range append([]*gemmPath{nil}, gemmPaths()...) {
			for _, blocked := range []bool{false, true} {
				name := fmt.Sprintf("P%d C%d R%d/%s/blocked=%v", c.P, c.C, c.R, pathName(path), blocked)
				t.Run(name, func(t *testing.T) {
					var s, u attnResult
					withPath(path, func() {
						s = runAttention(pool, shared, cat(qP, qC, qR), cat(kP, kC, kR), cat(vP, vC, vR), cat(dP, dC, dR), blocked)
						u = runAttention(pool, unshared, cat(qP, qC, qP, qR), cat(kP, kC, kP, kR), cat(vP, vC, vP, vR), cat(dP, dC, zeros, dR), blocked)
					})
					P, C := c.P, c.C
					// unshared rows: [0,P) prompt copy 1, [P,P+C) chosen, [P+C,2P+C) prompt copy 2, rest rejected
					sum := func(x []float32, w, a, b int) []float32 { // rows a.. and b.. of x, added, P rows
						out := make([]float32, P*w)
						for i := range out {
							out[i] = x[a*w+i] + x[b*w+i]
						}
						return out
					}
					checks := []struct {
						what      string
						got, want []float32
					}{
						{"out prompt", s.out[:P*qW], u.out[:P*qW]},
						{"out chosen", s.out[P*qW : (P+C)*qW], u.out[P*qW : (P+C)*qW]},
						{"out rejected", s.out[(P+C)*qW:], u.out[(2*P+C)*qW:]},
						{"out prompt copy 2", s.out[:P*qW], u.out[(P+C)*qW : (2*P+C)*qW]},
						{"dq prompt", s.dq[:P*qW], u.dq[:P*qW]},
						{"dq chosen", s.dq[P*qW : (P+C)*qW], u.dq[P*qW : (P+C)*qW]},
						{"dq rejected", s.dq[(P+C)*qW:], u.dq[(2*P+C)*qW:]},
						{"dk prompt", s.dk[:P*kvW], sum(u.dk, kvW, 0, P+C)},
						{"dk chosen", s.dk[P*kvW : (P+C)*kvW], u.dk[P*kvW : (P+C)*kvW]},
						{"dk rejected", s.dk[(P+C)*kvW:], u.dk[(2*P+C)*kvW:]},
						{"dv prompt", s.dv[:P*kvW], sum(u.dv, kvW, 0, P+C)},
						{"dv rejected", s.dv[(P+C)*kvW:], u.dv[(2*P+C)*kvW:]},
					}
					for _, ch := range checks {
						// float32 summation order differs between the layouts
						if e := maxAbsRel(ch.got, ch.want); e > 1e-5 {
							t.Errorf("%s: max error %.2g of the largest value", ch.what, e)
						}
					}
				})
			}
		}
	}
}

// attnResult is attention's output and the gradients of its inputs.
type attnResult struct{ out, dq, dk, dv []float32 }

// runAttention runs attention forward and then backward (with output
// gradient dout) over sh, with the block products or the row loops.
func runAttention(p *Pool, sh AttnShape, q, k, v, dout []float32, blocked bool) attnResult {
	n := sh.Offsets[len(sh.Offsets)-1]
	qW, kvW := sh.Heads*sh.HeadDim, sh.KVHeads*sh.HeadDim
	res := attnResult{make([]float32, n*qW), make([]float32, n*qW), make([]float32, n*kvW), make([]float32, n*kvW)}
	lse := make([]float32, n*sh.Heads)
	if blocked {
		AttentionForwardBlocked(p, res.out, lse, q, k, v, sh)
		AttentionBackwardBlocked(p, res.dq, res.dk, res.dv, dout, q, k, v, res.out, lse, sh)
	} else {
		AttentionForward(p, res.out, lse, q, k, v, sh)
		AttentionBackward(p, res.dq, res.dk, res.dv, dout, q, k, v, res.out, lse, sh)
	}
	return res
}
