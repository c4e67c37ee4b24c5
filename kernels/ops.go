package kernels

import "math"

// RMSNormForward normalizes each of the rows of x ([rows, dim]) by its root
// mean square and scales it by w ([dim]), as Hugging Face's LlamaRMSNorm does
// in float32: out = w · (x · rstd), rstd = 1/sqrt(mean(x²) + eps). The
// per-row rstd is saved for the backward pass. out may alias x.
func RMSNormForward(p *Pool, out, rstd, x, w []float32, rows, dim int, eps float32) {
	if pr := p.Profile(); pr != nil {
		defer pr.Stop(pr.Start(), PartElementwise, 0)
	}
	p.ForRange(rows, 16, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			xr := x[r*dim : r*dim+dim]
			ss := sumSq(xr)
			rs := float32(1 / math.Sqrt(float64(float32(ss/float64(dim))+eps)))
			rstd[r] = rs
			rmsScaleRow(out[r*dim:r*dim+dim], xr, w[:dim], rs)
		}
	})
}

// RMSNormBackward accumulates the gradients of RMSNormForward: dx += ∂L/∂x
// and dw += ∂L/∂w, given dout, the input x and the saved rstd. dw is summed
// serially over rows per worker and then reduced, so it is safe in parallel.
func RMSNormBackward(p *Pool, dx, dw, dout, x, w, rstd []float32, rows, dim int) {
	if pr := p.Profile(); pr != nil {
		defer pr.Stop(pr.Start(), PartElementwise, 0)
	}
	workers := p.Workers()
	partial := make([][]float32, workers)
	chunks := make([][2]int, 0, workers)
	size := (rows + workers - 1) / workers
	for lo := 0; lo < rows; lo += size {
		chunks = append(chunks, [2]int{lo, min(lo+size, rows)})
	}
	p.For(len(chunks), func(c int) {
		lo, hi := chunks[c][0], chunks[c][1]
		dwp := make([]float32, dim)
		partial[c] = dwp
		w := w[:dim]
		for r := lo; r < hi; r++ {
			xr := x[r*dim : r*dim+dim]
			dr := dout[r*dim : r*dim+dim]
			rs := rstd[r]
			// dot = Σ (dout·w)·xhat
			dot := float32(rmsBwdDotRow(dwp, dr, xr, w, rs) / float64(dim))
			rmsBwdDxRow(dx[r*dim:r*dim+dim], dr, xr, w, rs, dot)
		}
	})
	for _, dwp := range partial[:len(chunks)] {
		for i, v := range dwp {
			dw[i] += v
		}
	}
}

// RopeForward applies rotary position embeddings in place to x, which holds
// rows vectors of heads × headDim values (row r at position pos[r]), with
// Hugging Face's "rotate_half" layout: the first and second halves of the
// first rotaryDim values of each head (all of them, usually; fewer with a
// partial_rotary_factor) are the two coordinates being rotated, and the
// rest pass unchanged. cos and sin are tables [maxPos, rotaryDim/2].
func RopeForward(p *Pool, x []float32, pos []int32, cos, sin []float32, rows, heads, headDim, rotaryDim int) {
	if pr := p.Profile(); pr != nil {
		defer pr.Stop(pr.Start(), PartElementwise, 0)
	}
	rope(p, x, pos, cos, sin, rows, heads, headDim, rotaryDim, false)
}

// RopeBackward applies the inverse rotation of RopeForward in place, which is
// its gradient: rotations are orthogonal.
func RopeBackward(p *Pool, dx []float32, pos []int32, cos, sin []float32, rows, heads, headDim, rotaryDim int) {
	if pr := p.Profile(); pr != nil {
		defer pr.Stop(pr.Start(), PartElementwise, 0)
	}
	rope(p, dx, pos, cos, sin, rows, heads, headDim, rotaryDim, true)
}

// rope rotates the first rotaryDim values of every head of every row of x
// by its position's angles, or back with inverse.
func rope(p *Pool, x []float32, pos []int32, cos, sin []float32, rows, heads, headDim, rotaryDim int, inverse bool) {
	half := rotaryDim / 2
	p.ForRange(rows, 32, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			c := cos[int(pos[r])*half : int(pos[r])*half+half]
			s := sin[int(pos[r])*half : int(pos[r])*half+half]
			for h := 0; h < heads; h++ {
				v := x[(r*heads+h)*headDim : (r*heads+h+1)*headDim]
				ropeRow(v[:half], v[half:rotaryDim], c, s, inverse)
			}
		}
	})
}

// SwiGLUForward computes h = silu(gate) · up elementwise, with
// silu(g) = g / (1 + e^(−g)).
func SwiGLUForward(p *Pool, h, gate, up []float32) {
	if pr := p.Profile(); pr != nil {
		defer pr.Stop(pr.Start(), PartElementwise, 0)
	}
	p.ForRange(len(h), 4096, func(lo, hi int) { swiglu(h[lo:hi], gate[lo:hi], up[lo:hi]) })
}

// SwiGLUBackward writes dgate and dup (overwriting them) from dh, given the
// forward inputs gate and up.
func SwiGLUBackward(p *Pool, dgate, dup, dh, gate, up []float32) {
	if pr := p.Profile(); pr != nil {
		defer pr.Stop(pr.Start(), PartElementwise, 0)
	}
	p.ForRange(len(dh), 4096, func(lo, hi int) {
		swigluBwd(dgate[lo:hi], dup[lo:hi], dh[lo:hi], gate[lo:hi], up[lo:hi])
	})
}

// SwiGLURows is SwiGLUForward for rows whose gate and up values sit side by
// side, as the fused product x·[W_gate; W_up]ᵀ leaves them: gu is
// [rows, 2n] (row r: n gate values, then n up values) and h is [rows, n].
func SwiGLURows(p *Pool, h, gu []float32, rows, n int) {
	if pr := p.Profile(); pr != nil {
		defer pr.Stop(pr.Start(), PartElementwise, 0)
	}
	p.ForRange(rows, max(1, 4096/max(n, 1)), func(lo, hi int) {
		for r := lo; r < hi; r++ {
			g := gu[2*r*n : (2*r+1)*n]
			swiglu(h[r*n:(r+1)*n], g, gu[(2*r+1)*n:(2*r+2)*n])
		}
	})
}

// SwiGLURowsBackward is SwiGLUBackward for the layout of SwiGLURows: it
// writes dgu [rows, 2n] (row r: the gate gradients, then the up gradients)
// from dh [rows, n] and the forward input gu.
func SwiGLURowsBackward(p *Pool, dgu, dh, gu []float32, rows, n int) {
	if pr := p.Profile(); pr != nil {
		defer pr.Stop(pr.Start(), PartElementwise, 0)
	}
	p.ForRange(rows, max(1, 4096/max(n, 1)), func(lo, hi int) {
		for r := lo; r < hi; r++ {
			g, u := gu[2*r*n:(2*r+1)*n], gu[(2*r+1)*n:(2*r+2)*n]
			swigluBwd(dgu[2*r*n:(2*r+1)*n], dgu[(2*r+1)*n:(2*r+2)*n], dh[r*n:(r+1)*n], g, u)
		}
	})
}

// swiglu sets o = silu(g)·u over len(o).
func swiglu(o, g, u []float32) {
	if swigluFast(o, g, u) {
		return
	}
	g, u = g[:len(o)], u[:len(o)]
	for i, gv := range g {
		o[i] = gv / (1 + float32(math.Exp(float64(-gv)))) * u[i]
	}
}

// swigluBwd sets dg and du from d, g and u over len(d).
func swigluBwd(dg, du, d, g, u []float32) {
	if swigluBwdFast(dg, du, d, g, u) {
		return
	}
	dg, du, g, u = dg[:len(d)], du[:len(d)], g[:len(d)], u[:len(d)]
	for i, gv := range g {
		sig := 1 / (1 + float32(math.Exp(float64(-gv))))
		silu := gv * sig
		du[i] = d[i] * silu
		dg[i] = d[i] * u[i] * sig * (1 + gv*(1-sig))
	}
}

// Add computes y += x elementwise.
func Add(p *Pool, y, x []float32) {
	if pr := p.Profile(); pr != nil {
		defer pr.Stop(pr.Start(), PartElementwise, 0)
	}
	p.ForRange(len(y), 8192, func(lo, hi int) {
		yy, xx := y[lo:hi], x[lo:hi]
		for i := range yy {
			yy[i] += xx[i]
		}
	})
}

// LogSumExp returns log Σ exp(x[i]), computed stably with the row maximum
// and a float64 sum (of float32 blocks on the vector paths).
func LogSumExp(x []float32) float32 {
	mx := maxOf(x)
	if math.IsInf(float64(mx), -1) {
		return mx
	}
	return mx + float32(math.Log(sumExp(x, mx)))
}

// SoftmaxGrad turns a row of logits x into the gradient of g·log_softmax(x)[label]
// with respect to x, in place: x[j] = g·(1[j = label] − exp(x[j] − lse)).
func SoftmaxGrad(x []float32, lse float32, label int, g float32) {
	expAffine(x, x, 1, lse, -g)
	x[label] += g
}

// The row loops of RMSNorm and RoPE. On the avx512 path they run in vector
// code (norm_amd64.s) that repeats these float32 operations in this order,
// bit for bit; only the float64 sums add in several lanes.

// sumSq returns Σ float64(x[i])².
func sumSq(x []float32) float64 {
	if s, ok := sumSqFast(x); ok {
		return s
	}
	var ss float64
	for _, v := range x {
		ss += float64(v) * float64(v)
	}
	return ss
}

// rmsScaleRow sets out[i] = w[i]·(x[i]·rs).
func rmsScaleRow(out, x, w []float32, rs float32) {
	if rmsScaleFast(out, x, w, rs) {
		return
	}
	out, w = out[:len(x)], w[:len(x)]
	for i, v := range x {
		out[i] = w[i] * (v * rs)
	}
}

// rmsBwdDotRow adds dr[i]·xh to dwp[i], xh = xr[i]·rs, and returns
// Σ float64(dr[i]·w[i]·xh).
func rmsBwdDotRow(dwp, dr, xr, w []float32, rs float32) float64 {
	if s, ok := rmsBwdDotFast(dwp, dr, xr, w, rs); ok {
		return s
	}
	dwp, xr, w = dwp[:len(dr)], xr[:len(dr)], w[:len(dr)]
	var dot64 float64
	for i, d := range dr {
		xh := xr[i] * rs
		dwp[i] += d * xh
		dot64 += float64(d * w[i] * xh)
	}
	return dot64
}

// rmsBwdDxRow adds rs·(dr[i]·w[i] − xh·dot) to dxr[i], xh = xr[i]·rs.
func rmsBwdDxRow(dxr, dr, xr, w []float32, rs, dot float32) {
	if rmsBwdDxFast(dxr, dr, xr, w, rs, dot) {
		return
	}
	dxr, xr, w = dxr[:len(dr)], xr[:len(dr)], w[:len(dr)]
	for i, d := range dr {
		xh := xr[i] * rs
		dxr[i] += rs * (d*w[i] - xh*dot)
	}
}

// ropeRow rotates the pairs (x1[i], x2[i]) by the angles of c and s:
// x1 = a·c − b·s, x2 = b·c + a·s; inverse rotates back (s negated).
func ropeRow(x1, x2, c, s []float32, inverse bool) {
	if ropeFast(x1, x2, c, s, inverse) {
		return
	}
	x1, x2, s = x1[:len(c)], x2[:len(c)], s[:len(c)]
	for i := range c {
		a, b := x1[i], x2[i]
		if inverse {
			x1[i] = a*c[i] + b*s[i]
			x2[i] = b*c[i] - a*s[i]
		} else {
			x1[i] = a*c[i] - b*s[i]
			x2[i] = b*c[i] + a*s[i]
		}
	}
}
