package kernels

import "math"

// RMSNormForward normalizes each of the rows of x ([rows, dim]) by its root
// mean square and scales it by w ([dim]), as Hugging Face's LlamaRMSNorm does
// in float32: out = w · (x · rstd), rstd = 1/sqrt(mean(x²) + eps). The
// per-row rstd is saved for the backward pass. out may alias x.
func RMSNormForward(p *Pool, out, rstd, x, w []float32, rows, dim int, eps float32) {
	p.ForRange(rows, 16, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			xr := x[r*dim : r*dim+dim]
			var ss float64
			for _, v := range xr {
				ss += float64(v) * float64(v)
			}
			rs := float32(1 / math.Sqrt(float64(float32(ss/float64(dim))+eps)))
			rstd[r] = rs
			or := out[r*dim : r*dim+dim]
			w := w[:dim]
			for i, v := range xr {
				or[i] = w[i] * (v * rs)
			}
		}
	})
}

// RMSNormBackward accumulates the gradients of RMSNormForward: dx += ∂L/∂x
// and dw += ∂L/∂w, given dout, the input x and the saved rstd. dw is summed
// serially over rows per worker and then reduced, so it is safe in parallel.
func RMSNormBackward(p *Pool, dx, dw, dout, x, w, rstd []float32, rows, dim int) {
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
			var dot64 float64
			for i, d := range dr {
				xh := xr[i] * rs
				dwp[i] += d * xh
				dot64 += float64(d * w[i] * xh)
			}
			dot := float32(dot64 / float64(dim))
			dxr := dx[r*dim : r*dim+dim]
			for i, d := range dr {
				xh := xr[i] * rs
				dxr[i] += rs * (d*w[i] - xh*dot)
			}
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
// Hugging Face's "rotate_half" layout: the first and second halves of each
// head are the two coordinates being rotated. cos and sin are tables
// [maxPos, headDim/2].
func RopeForward(p *Pool, x []float32, pos []int32, cos, sin []float32, rows, heads, headDim int) {
	half := headDim / 2
	p.ForRange(rows, 32, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			c := cos[int(pos[r])*half : int(pos[r])*half+half]
			s := sin[int(pos[r])*half : int(pos[r])*half+half]
			for h := 0; h < heads; h++ {
				v := x[(r*heads+h)*headDim : (r*heads+h+1)*headDim]
				x1, x2 := v[:half], v[half:headDim]
				for i := range c {
					a, b := x1[i], x2[i]
					x1[i] = a*c[i] - b*s[i]
					x2[i] = b*c[i] + a*s[i]
				}
			}
		}
	})
}

// RopeBackward applies the inverse rotation of RopeForward in place, which is
// its gradient: rotations are orthogonal.
func RopeBackward(p *Pool, dx []float32, pos []int32, cos, sin []float32, rows, heads, headDim int) {
	half := headDim / 2
	p.ForRange(rows, 32, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			c := cos[int(pos[r])*half : int(pos[r])*half+half]
			s := sin[int(pos[r])*half : int(pos[r])*half+half]
			for h := 0; h < heads; h++ {
				v := dx[(r*heads+h)*headDim : (r*heads+h+1)*headDim]
				x1, x2 := v[:half], v[half:headDim]
				for i := range c {
					a, b := x1[i], x2[i]
					x1[i] = a*c[i] + b*s[i]
					x2[i] = b*c[i] - a*s[i]
				}
			}
		}
	})
}

// SwiGLUForward computes h = silu(gate) · up elementwise, with
// silu(g) = g / (1 + e^(−g)).
func SwiGLUForward(p *Pool, h, gate, up []float32) {
	p.ForRange(len(h), 4096, func(lo, hi int) {
		g, u, o := gate[lo:hi], up[lo:hi], h[lo:hi]
		if swigluFast(o, g, u) {
			return
		}
		for i, gv := range g {
			o[i] = gv / (1 + float32(math.Exp(float64(-gv)))) * u[i]
		}
	})
}

// SwiGLUBackward writes dgate and dup (overwriting them) from dh, given the
// forward inputs gate and up.
func SwiGLUBackward(p *Pool, dgate, dup, dh, gate, up []float32) {
	p.ForRange(len(dh), 4096, func(lo, hi int) {
		g, u, d := gate[lo:hi], up[lo:hi], dh[lo:hi]
		dg, du := dgate[lo:hi], dup[lo:hi]
		if swigluBwdFast(dg, du, d, g, u) {
			return
		}
		for i, gv := range g {
			sig := 1 / (1 + float32(math.Exp(float64(-gv))))
			silu := gv * sig
			du[i] = d[i] * silu
			dg[i] = d[i] * u[i] * sig * (1 + gv*(1-sig))
		}
	})
}

// Add computes y += x elementwise.
func Add(p *Pool, y, x []float32) {
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
