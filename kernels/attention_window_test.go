package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// attnRef64 is attention in float64 written from its definition, for
// comparison: per query, the scores z_j = scale·q·k_j over the keys it sees
// (its prefix's, then its own causally, only the last Window positions with a
// window), capped c·tanh(z/c) with a cap, softmax, and out = Σ p_j v_j; and
// the backward pass from dout by the chain rule.
func attnRef64(sh AttnShape, q, k, v, dout []float32) (out, dq, dk, dv []float64) {
	H, KV, hd := sh.Heads, sh.KVHeads, sh.HeadDim
	n := sh.Offsets[len(sh.Offsets)-1]
	out, dq = make([]float64, n*H*hd), make([]float64, n*H*hd)
	dk, dv = make([]float64, n*KV*hd), make([]float64, n*KV*hd)
	scale := float64(sh.scale())
	c := float64(sh.SoftCap)
	dot := func(a, b []float32) float64 {
		var s float64
		for i := range a {
			s += float64(a[i]) * float64(b[i])
		}
		return s
	}
	for s := 0; s+1 < len(sh.Offsets); s++ {
		start, end := sh.Offsets[s], sh.Offsets[s+1]
		pfx0, np := sh.prefix(s)
		for h := 0; h < H; h++ {
			kvh := h / sh.group()
			for t := start; t < end; t++ {
				pos := np + t - start
				var rows []int
				for j := 0; j <= pos; j++ {
					if sh.Window > 0 && pos-j >= sh.Window {
						continue
					}
					rows = append(rows, keyRow(j, pfx0, np, start))
				}
				qt := q[(t*H+h)*hd : (t*H+h+1)*hd]
				z, th := make([]float64, len(rows)), make([]float64, len(rows))
				mx := math.Inf(-1)
				for i, r := range rows {
					z[i] = scale * dot(qt, k[(r*KV+kvh)*hd:(r*KV+kvh+1)*hd])
					if c > 0 {
						th[i] = math.Tanh(z[i] / c)
						z[i] = c * th[i]
					}
					mx = math.Max(mx, z[i])
				}
				var sum float64
				for i := range z {
					z[i] = math.Exp(z[i] - mx)
					sum += z[i]
				}
				o := out[(t*H+h)*hd : (t*H+h+1)*hd]
				do := dout[(t*H+h)*hd : (t*H+h+1)*hd]
				dp := make([]float64, len(rows))
				var pdp float64
				for i, r := range rows {
					p := z[i] / sum
					z[i] = p
					vr := v[(r*KV+kvh)*hd : (r*KV+kvh+1)*hd]
					for d := range o {
						o[d] += p * float64(vr[d])
						dv[(r*KV+kvh)*hd+d] += p * float64(do[d])
					}
					dp[i] = dot(do, vr)
					pdp += p * dp[i]
				}
				for i, r := range rows {
					g := z[i] * (dp[i] - pdp) * scale
					if c > 0 {
						g *= 1 - th[i]*th[i]
					}
					kr := k[(r*KV+kvh)*hd : (r*KV+kvh+1)*hd]
					for d := 0; d < hd; d++ {
						dq[(t*H+h)*hd+d] += g * float64(kr[d])
						dk[(r*KV+kvh)*hd+d] += g * float64(qt[d])
					}
				}
			}
		}
	}
	return out, dq, dk, dv
}

// maxAbsRel64 is maxAbsRel against a float64 reference, relative to at
// least 1 (a window of one key has zero score gradients).
func maxAbsRel64(got []float32, want []float64) float64 {
	var d, m float64
	for i := range want {
		d = math.Max(d, math.Abs(float64(got[i])-want[i]))
		m = math.Max(m, math.Abs(want[i]))
	}
	return d / math.Max(m, 1)
}

// Sliding windows, soft-capped scores and an explicit scale (Gemma-2 and
// Gemma-3 attention), on the row loops and the block products of every
// path, against attention in float64: sequences several windows long,
// windows smaller and larger than a block of queries and than a packed
// panel, with and without shared-prompt prefixes, and scores large enough
// that the cap bends them. A window that reaches past a sequence changes
// nothing. Tolerance: float32 rounding of sums of a few hundred terms, as
// in TestAttentionPaths (1e-5 of the largest value), doubled for the
// tanh of the cap.
func TestAttentionWindowSoftcap(t *testing.T) {
	pool := NewPool(3)
	defer pool.Close()
	r := rand.New(rand.NewPCG(41, 42))
	for _, c := range []struct {
		name      string
		offsets   []int
		prefix    []int
		h, kv, hd int
		scale     float32
		cap       float32
		window    int
		inputs    float32
	}{
		{"window 5", []int{0, 40, 47, 130}, nil, 2, 1, 16, 0, 0, 5, 1},
		{"window 50 in blocks of 48", []int{0, 200, 260}, nil, 4, 2, 32, 0.1, 0, 50, 1},
		{"window 1", []int{0, 30}, nil, 2, 2, 8, 0, 0, 1, 1},
		{"window beyond the sequences", []int{0, 60, 90}, nil, 2, 1, 16, 0, 0, 500, 1},
		{"softcap", []int{0, 70, 71, 150}, nil, 3, 1, 16, 0.25, 2, 0, 3},
		{"softcap and window", []int{0, 190, 300}, nil, 2, 2, 32, 0.0625, 5, 37, 3},
		{"prefix, window inside the prompt", []int{0, 100, 160, 230}, []int{-1, 0, 0}, 2, 1, 16, 0, 0, 70, 1},
		{"prefix, window inside the response", []int{0, 20, 130, 220}, []int{-1, 0, 0}, 4, 2, 16, 0.2, 3, 33, 2},
		{"two pairs, softcap, window", []int{0, 50, 120, 200, 233, 290, 300}, []int{-1, 0, 0, -1, 3, 3}, 2, 1, 32, 0, 4, 64, 2},
	} {
		sh := AttnShape{Offsets: c.offsets, Prefix: c.prefix, Heads: c.h, KVHeads: c.kv, HeadDim: c.hd,
			Scale: c.scale, SoftCap: c.cap, Window: c.window}
		n := c.offsets[len(c.offsets)-1]
		qW, kvW := c.h*c.hd, c.kv*c.hd
		q, k, v, dout := randSlice(r, n*qW), randSlice(r, n*kvW), randSlice(r, n*kvW), randSlice(r, n*qW)
		for _, x := range [][]float32{q, k} {
			for i := range x {
				x[i] *= c.inputs
			}
		}
		wOut, wdq, wdk, wdv := attnRef64(sh, q, k, v, dout)
		for _, path := range append([]*gemmPath{nil}, gemmPaths()...) {
			for _, blocked := range []bool{false, true} {
				t.Run(fmt.Sprintf("%s/%s/blocked=%v", c.name, pathName(path), blocked), func(t *testing.T) {
					var got attnResult
					withPath(path, func() { got = runAttention(pool, sh, q, k, v, dout, blocked) })
					for _, ch := range []struct {
						what string
						got  []float32
						want []float64
					}{{"out", got.out, wOut}, {"dq", got.dq, wdq}, {"dk", got.dk, wdk}, {"dv", got.dv, wdv}} {
						if e := maxAbsRel64(ch.got, ch.want); e > 2e-5 {
							t.Errorf("%s: error %.3g of the largest value", ch.what, e)
						}
					}
				})
			}
		}
	}
}

// A window must change the result when it is shorter than a sequence (so
// the test above cannot pass with the window ignored), and the cap when
// the scores pass it.
func TestAttentionWindowSoftcapMatter(t *testing.T) {
	pool := NewPool(1)
	defer pool.Close()
	r := rand.New(rand.NewPCG(43, 44))
	n, hd := 100, 16
	q, k, v, dout := randSlice(r, n*hd), randSlice(r, n*hd), randSlice(r, n*hd), randSlice(r, n*hd)
	for i := range q {
		q[i] *= 3
	}
	base := AttnShape{Offsets: []int{0, n}, Heads: 1, KVHeads: 1, HeadDim: hd}
	plain := runAttention(pool, base, q, k, v, dout, true)
	for _, sh := range []AttnShape{
		{Offsets: base.Offsets, Heads: 1, KVHeads: 1, HeadDim: hd, Window: 20},
		{Offsets: base.Offsets, Heads: 1, KVHeads: 1, HeadDim: hd, SoftCap: 1},
	} {
		got := runAttention(pool, sh, q, k, v, dout, true)
		if e := maxAbsRel(got.out, plain.out); e < 1e-2 {
			t.Errorf("window %d, cap %g: output within %.2g of plain attention", sh.Window, sh.SoftCap, e)
		}
	}
}

// SoftcapRow and SoftcapSoftmaxGrad against float64, across the range
// where tanh bends and beyond the cap.
func TestSoftcapRows(t *testing.T) {
	r := rand.New(rand.NewPCG(45, 46))
	const c = 30
	x := make([]float32, 1500)
	for i := range x {
		x[i] = float32(r.NormFloat64() * 40)
	}
	x[3], x[4], x[5] = 0, 1e-4, -500
	z := append([]float32(nil), x...)
	SoftcapRow(z, c)
	for i, v := range x {
		want := c * math.Tanh(float64(v)/c)
		if e := math.Abs(float64(z[i]) - want); e > 3e-7*c {
			t.Fatalf("SoftcapRow(%g) = %g, want %g", v, z[i], want)
		}
	}
	// gradient of g·log_softmax(cap(x))[label] with respect to x
	lse := LogSumExp(z)
	label, g := 7, float32(-0.75)
	grad := append([]float32(nil), z...)
	SoftcapSoftmaxGrad(grad, lse, label, g, c)
	var s float64
	for _, v := range z {
		s += math.Exp(float64(v))
	}
	for i, v := range x {
		th := math.Tanh(float64(v) / c)
		want := -float64(g) * math.Exp(c*th) / s * (1 - th*th)
		if i == label {
			want += float64(g) * (1 - th*th)
		}
		if e := math.Abs(float64(grad[i]) - want); e > 1e-6 {
			t.Fatalf("gradient %d: %g, want %g", i, grad[i], want)
		}
	}
}

// GeGLU against PyTorch's gelu(approximate="tanh") formula in float64, and
// its backward against the derivative of that formula.
func TestGeGLURows(t *testing.T) {
	pool := NewPool(2)
	defer pool.Close()
	r := rand.New(rand.NewPCG(47, 48))
	rows, n := 3, 700
	gu, dh := randSlice(r, 2*rows*n), randSlice(r, rows*n)
	for i := range gu {
		gu[i] *= 4
	}
	gu[0], gu[1], gu[2] = 0, -20, 20
	h, dgu := make([]float32, rows*n), make([]float32, 2*rows*n)
	GeGLURows(pool, h, gu, rows, n)
	GeGLURowsBackward(pool, dgu, dh, gu, rows, n)
	gelu := func(x float64) float64 { return 0.5 * x * (1 + math.Tanh(geluBeta*(x+geluKappa*x*x*x))) }
	for rr := 0; rr < rows; rr++ {
		for i := 0; i < n; i++ {
			g, u := float64(gu[2*rr*n+i]), float64(gu[(2*rr+1)*n+i])
			d := float64(dh[rr*n+i])
			const e = 1e-6
			dgelu := (gelu(g+e) - gelu(g-e)) / (2 * e)
			for _, ch := range []struct {
				what      string
				got, want float64
				tol       float64
			}{
				{"h", float64(h[rr*n+i]), gelu(g) * u, 1e-6},
				{"dgate", float64(dgu[2*rr*n+i]), d * u * dgelu, 1e-5},
				{"dup", float64(dgu[(2*rr+1)*n+i]), d * gelu(g), 1e-6},
			} {
				if math.Abs(ch.got-ch.want) > ch.tol*math.Max(1, math.Abs(ch.want)) {
					t.Fatalf("row %d col %d (gate %g): %s %g, want %g", rr, i, g, ch.what, ch.got, ch.want)
				}
			}
		}
	}
}

// Sliding windows and soft caps in the BF16 precision's attention (the
// bfloat16 block kernel, where the CPU has one): as TestAttentionBF16, the
// result is float32 attention on inputs rounded to bfloat16, up to the
// rounding of probabilities and score gradients inside the products. The
// windows start blocks inside the prefix and inside the sequence's own
// keys, where the packed keys and values are read from a panel boundary or
// packed again.
func TestAttentionWindowBF16(t *testing.T) {
	if !NativeBF16() {
		t.Skip("no native bfloat16 products here: the BF16 precision's attention runs in float32")
	}
	pool := NewPool(2)
	defer pool.Close()
	r := rand.New(rand.NewPCG(49, 50))
	for _, c := range []struct {
		name      string
		offsets   []int
		prefix    []int
		h, kv, hd int
		cap       float32
		window    int
	}{
		{"window 100", []int{0, 300, 450}, nil, 2, 1, 64, 0, 100},
		{"shared prompt, window 70", []int{0, 90, 300, 413}, []int{-1, 0, 0}, 2, 2, 32, 0, 70},
		{"shared prompt, window 200, softcap", []int{0, 150, 500, 601}, []int{-1, 0, 0}, 4, 2, 32, 4, 200},
	} {
		t.Run(c.name, func(t *testing.T) {
			sh := AttnShape{Offsets: c.offsets, Prefix: c.prefix, Heads: c.h, KVHeads: c.kv, HeadDim: c.hd, SoftCap: c.cap, Window: c.window}
			n := c.offsets[len(c.offsets)-1]
			qW, kvW := c.h*c.hd, c.kv*c.hd
			q, k, v, dout := randSlice(r, n*qW), randSlice(r, n*kvW), randSlice(r, n*kvW), randSlice(r, n*qW)
			for _, x := range [][]float32{q, k} {
				for i := range x {
					x[i] *= 3
				}
			}
			round := func(x []float32) []float32 {
				out := make([]float32, len(x))
				for i, v := range x {
					out[i] = RoundBF16(v)
				}
				return out
			}
			pool.SetPrecision(BF16)
			got := runAttention(pool, sh, q, k, v, dout, true)
			pool.SetPrecision(F32)
			want := runAttention(pool, sh, round(q), round(k), round(v), round(dout), false)
			for _, ch := range []struct {
				what      string
				got, want []float32
				tol       float64
			}{
				{"out", got.out, want.out, 5e-3}, {"dq", got.dq, want.dq, 2e-2},
				{"dk", got.dk, want.dk, 2e-2}, {"dv", got.dv, want.dv, 5e-3},
			} {
				if e := maxAbsRel(ch.got, ch.want); e > ch.tol {
					t.Errorf("%s: max error %.2g of the largest value", ch.what, e)
				}
			}
		})
	}
}
