package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// maxAbsRel returns max|got − want| / max|want|.
func maxAbsRel(got, want []float32) float64 {
	var d, m float64
	for i := range want {
		d = math.Max(d, math.Abs(float64(got[i]-want[i])))
		m = math.Max(m, math.Abs(float64(want[i])))
	}
	return d / math.Max(m, 1e-30)
}

// TestAttentionPaths checks the attention of every vector path (the row
// loops, and the Blocked functions) against
// the portable row-by-row loops, with grouped query heads and packed
// sequences of lengths around the block size.
func TestAttentionPaths(t *testing.T) {
	pool := NewPool(3)
	defer pool.Close()
	shapes := []struct {
		lens        []int
		h, kv, hd   int
		scaleInputs float32
	}{
		{[]int{1, 47, 48, 49, 130}, 4, 2, 16, 1},
		{[]int{200, 3, 97}, 6, 2, 64, 3},
		{[]int{96}, 2, 1, 8, 0.5},
		{[]int{5, 300}, 3, 3, 32, 2},
	}
	r := rand.New(rand.NewPCG(9, 10))
	for si, shp := range shapes {
		offs := []int{0}
		for _, l := range shp.lens {
			offs = append(offs, offs[len(offs)-1]+l)
		}
		n := offs[len(offs)-1]
		sh := AttnShape{Offsets: offs, Heads: shp.h, KVHeads: shp.kv, HeadDim: shp.hd}
		q, k, v := randSlice(r, n*shp.h*shp.hd), randSlice(r, n*shp.kv*shp.hd), randSlice(r, n*shp.kv*shp.hd)
		for i := range q {
			q[i] *= shp.scaleInputs
		}
		dout := randSlice(r, n*shp.h*shp.hd)
		type result struct{ out, lse, dq, dk, dv []float32 }
		run := func(path *gemmPath, blocked bool) result {
			var res result
			withPath(path, func() {
				res.out, res.lse = make([]float32, len(q)), make([]float32, n*shp.h)
				if blocked {
					AttentionForwardBlocked(pool, res.out, res.lse, q, k, v, sh)
				} else {
					AttentionForward(pool, res.out, res.lse, q, k, v, sh)
				}
				// Gradients accumulate: start from a nonzero value.
				res.dq, res.dk, res.dv = make([]float32, len(q)), make([]float32, len(k)), make([]float32, len(v))
				for i := range res.dk {
					res.dk[i], res.dv[i] = 0.25, -0.5
				}
				if blocked {
					AttentionBackwardBlocked(pool, res.dq, res.dk, res.dv, dout, q, k, v, res.out, res.lse, sh)
				} else {
					AttentionBackward(pool, res.dq, res.dk, res.dv, dout, q, k, v, res.out, res.lse, sh)
				}
			})
			return res
		}
		want := run(nil, false)
		for _, path := range gemmPaths() {
			for _, blocked := range []bool{false, true} {
				t.Run(fmt.Sprintf("shape%d/%s/blocked=%v", si, path.name, blocked), func(t *testing.T) {
					got := run(path, blocked)
					for _, c := range []struct {
						name      string
						got, want []float32
						tol       float64
					}{
						{"out", got.out, want.out, 1e-5}, {"lse", got.lse, want.lse, 1e-6},
						{"dq", got.dq, want.dq, 1e-5}, {"dk", got.dk, want.dk, 1e-5}, {"dv", got.dv, want.dv, 1e-5},
					} {
						if e := maxAbsRel(c.got, c.want); e > c.tol {
							t.Errorf("%s: error %.3g of max, want ≤ %g", c.name, e, c.tol)
						}
					}
				})
			}
		}
	}
}

// TestAttentionRowOps checks the vector row operations of the blocked
// attention against their Go loops bit for bit: each element is computed
// with the same float32 operations in the same order, and lengths around
// the vector width reach the masked tails.
func TestAttentionRowOps(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for _, n := range []int{1, 7, 15, 16, 17, 31, 32, 33, 100, 257} {
		x, p, dr := randSlice(r, n+1), randSlice(r, n+1), randSlice(r, n+1)
		a, d, s := float32(0.37), float32(-0.61), float32(0.125)
		want, got := slices.Clone(x), slices.Clone(x)
		for i := range want[:n] {
			want[i] *= a
		}
		scal(got[:n], a)
		if !slices.Equal(math32Bits(got), math32Bits(want)) {
			t.Errorf("scal n=%d: got %v, want %v", n, got, want)
		}
		want, got = slices.Clone(dr), slices.Clone(dr)
		for i := range want[:n] {
			want[i] = p[i] * (want[i] - d) * s
		}
		softmaxBwdRow(got[:n], p, d, s)
		if !slices.Equal(math32Bits(got), math32Bits(want)) {
			t.Errorf("softmaxBwdRow n=%d: got %v, want %v", n, got, want)
		}
	}
}

func math32Bits(x []float32) []uint32 {
	b := make([]uint32, len(x))
	for i, v := range x {
		b[i] = math.Float32bits(v)
	}
	return b
}
