package kernels

import "math"

// AdamWConsts are the per-step scalars of an AdamW update, already rounded
// to float32 as PyTorch applies them (see package optim).
type AdamWConsts struct {
	B1, OneMinusB1, B2, OneMinusB2 float32
	Eps                            float32
	NegStep                        float32 // −lr / (1 − β1ᵗ)
	BC2Sqrt                        float32 // √(1 − β2ᵗ)
	Scale                          float32 // 1 − lr·wd, applied when Decay
	Decay                          bool
}

// AdamW applies one torch.optim.AdamW update in place to a parameter slice,
// its moments m and v, given its gradient, with PyTorch's float32 operation
// order and rounding:
//
//	p ← p·scale                          (only with weight decay)
//	m ← fma(g, 1−β1, m·β1)
//	v ← fma((1−β2)·g, g, v·β2)
//	p ← p + (negStep·m) / (√v/√bc2 + ε)
//
// Every operation is a single IEEE rounding, so the AVX-512 loop (hardware
// FMA, VSQRTPS, VDIVPS) and the portable loop give identical bits.
func AdamW(data, grad, m, v []float32, c AdamWConsts) {
	n := len(data)
	grad, m, v = grad[:n], m[:n], v[:n]
	done := 0
	if vec512 && n >= 16 {
		done = n &^ 15
		adamw512(&data[0], &grad[0], &m[0], &v[0], done, &c)
	}
	adamwGo(data[done:], grad[done:], m[done:], v[done:], c)
}

func adamwGo(data, grad, m, v []float32, c AdamWConsts) {
	grad, m, v = grad[:len(data)], m[:len(data)], v[:len(data)]
	for i, g := range grad {
		p := data[i]
		if c.Decay {
			p *= c.Scale
		}
		mi := fma32(g, c.OneMinusB1, m[i]*c.B1)
		vi := fma32(c.OneMinusB2*g, g, v[i]*c.B2)
		m[i], v[i] = mi, vi
		denom := float32(math.Sqrt(float64(vi)))/c.BC2Sqrt + c.Eps
		data[i] = p + (c.NegStep*mi)/denom
	}
}

// fma32 returns a·b + c rounded once to float32. The product of two float32
// values is exact in float64, so the float64 sum is rounded once; a second
// rounding to float32 can only go wrong when that sum lands exactly halfway
// between two float32 values, which the exact error of the sum resolves.
func fma32(a, b, c float32) float32 {
	p := float64(a) * float64(b)
	cf := float64(c)
	s := p + cf
	// Fast path: in the normal float32 range, s is a float32 midpoint only
	// when its 29 low mantissa bits are exactly 1 followed by 28 zeros.
	if bits := math.Float64bits(s); bits&(1<<29-1) != 1<<28 && math.Abs(s) >= 0x1p-126 {
		return float32(s)
	}
	r := float32(s)
	rf := float64(r)
	if rf == s || math.IsInf(s, 0) || math.IsNaN(s) {
		return r
	}
	// Error of the float64 sum (TwoSum): the exact value is s + e.
	bv := s - p
	e := (p - (s - bv)) + (cf - bv)
	if e == 0 {
		return r
	}
	var other float32
	if rf > s {
		other = math.Nextafter32(r, float32(math.Inf(-1)))
	} else {
		other = math.Nextafter32(r, float32(math.Inf(1)))
	}
	if (rf+float64(other))/2 != s {
		return r // not a midpoint: the single float32 rounding is correct
	}
	if (e > 0) == (float64(other) > s) {
		return other
	}
	return r
}
