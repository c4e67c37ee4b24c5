package kernels

// GeGLU, the MLP activation of Gemma-2 and Gemma-3: h = gelu(gate)·up with
// PyTorch's tanh approximation of GELU (transformers' "gelu_pytorch_tanh"):
//
//	gelu(x) = ½·x·(1 + tanh(y)),  y = √(2/π)·(x + 0.044715·x³)
//
// computed as x·σ(2y), the same function (½(1 + tanh y) = σ(2y)), with the
// kernel path's vector exp. Its derivative is σ(2y) + 2x·σ(2y)(1 − σ(2y))·y′,
// y′ = √(2/π)·(1 + 3·0.044715·x²).

const (
	geluBeta  = 0.7978845608028654 // √(2/π)
	geluKappa = 0.044715
)

// geluBlock is how many values the GeGLU rows handle at a time in their
// stack buffers.
const geluBlock = 512

// geluSigmoid sets s[i] = σ(2y(g[i])), the factor gelu(x) = x·s.
func geluSigmoid(s, g []float32) {
	s = s[:len(g)]
	for i, x := range g {
		s[i] = -2 * (geluBeta * (x + geluKappa*(x*x*x)))
	}
	expAffine(s, s, 1, 0, 1) // e^(−2y)
	for i, e := range s {
		s[i] = 1 / (1 + e)
	}
}

// geglu sets o = gelu(g)·u over len(o).
func geglu(o, g, u []float32) {
	var s [geluBlock]float32
	for lo := 0; lo < len(o); lo += geluBlock {
		hi := min(lo+geluBlock, len(o))
		sb := s[:hi-lo]
		geluSigmoid(sb, g[lo:hi])
		for i, sv := range sb {
			o[lo+i] = g[lo+i] * sv * u[lo+i]
		}
	}
}

// gegluBwd sets dg and du from d, g and u over len(d).
func gegluBwd(dg, du, d, g, u []float32) {
	var s [geluBlock]float32
	for lo := 0; lo < len(d); lo += geluBlock {
		hi := min(lo+geluBlock, len(d))
		sb := s[:hi-lo]
		geluSigmoid(sb, g[lo:hi])
		for i, sv := range sb {
			x := g[lo+i]
			dy := geluBeta * (1 + 3*geluKappa*(x*x))
			dgelu := sv + 2*x*sv*(1-sv)*dy
			du[lo+i] = d[lo+i] * (x * sv)
			dg[lo+i] = d[lo+i] * u[lo+i] * dgelu
		}
	}
}

// GeGLURows is SwiGLURows with GELU (tanh approximation) in place of SiLU:
// gu is [rows, 2n] (row r: n gate values, then n up values), h is [rows, n],
// h = gelu(gate)·up.
func GeGLURows(p *Pool, h, gu []float32, rows, n int) {
	if pr := p.Profile(); pr != nil {
		defer pr.Stop(pr.Start(), PartElementwise, 0)
	}
	p.ForRange(rows, max(1, 4096/max(n, 1)), func(lo, hi int) {
		for r := lo; r < hi; r++ {
			geglu(h[r*n:(r+1)*n], gu[2*r*n:(2*r+1)*n], gu[(2*r+1)*n:(2*r+2)*n])
		}
	})
}

// GeGLURowsBackward writes dgu [rows, 2n] (the gate gradients, then the up
// gradients, per row) from dh [rows, n] and the forward input gu.
func GeGLURowsBackward(p *Pool, dgu, dh, gu []float32, rows, n int) {
	if pr := p.Profile(); pr != nil {
		defer pr.Stop(pr.Start(), PartElementwise, 0)
	}
	p.ForRange(rows, max(1, 4096/max(n, 1)), func(lo, hi int) {
		for r := lo; r < hi; r++ {
			g, u := gu[2*r*n:(2*r+1)*n], gu[(2*r+1)*n:(2*r+2)*n]
			gegluBwd(dgu[2*r*n:(2*r+1)*n], dgu[(2*r+1)*n:(2*r+2)*n], dh[r*n:(r+1)*n], g, u)
		}
	})
}
