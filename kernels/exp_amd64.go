//go:build amd64 && !purego

package kernels

import "math"

// Assembly in exp_amd64.s: vector exp and the loops built on it, for whole
// vectors; the functions below add the tails and pick the width.

//go:noescape
func expAff512(dst, src *float32, n int, a, b, c float32) float32

//go:noescape
func expSum512(src *float32, n int, b float32) float32

//go:noescape
func max512(src *float32, n int) float32

//go:noescape
func swiglu512(h, gt, u *float32, n int)

//go:noescape
func swigluBwd512(dg, du, d, gt, u *float32, n int)

//go:noescape
func expAff256(dst, src *float32, n int, a, b, c float32) float32

//go:noescape
func expSum256(src *float32, n int, b float32) float32

//go:noescape
func max256(src *float32, n int) float32

//go:noescape
func swiglu256(h, gt, u *float32, n int)

//go:noescape
func swigluBwd256(dg, du, d, gt, u *float32, n int)

// vecWidth is the number of floats in a vector of the path in use, or 0 on
// the portable path.
func vecWidth() int {
	switch {
	case vec512:
		return 16
	case vec256:
		return 8
	}
	return 0
}

func expAffK(dst, src *float32, n int, a, b, c float32) float32 {
	if vec512 {
		return expAff512(dst, src, n, a, b, c)
	}
	return expAff256(dst, src, n, a, b, c)
}

// expAffineFast is expAffine in vector code, if the path has it.
func expAffineFast(dst, src []float32, a, b, c float32) (float64, bool) {
	w := vecWidth()
	if w == 0 {
		return 0, false
	}
	n := len(src)
	if n == 0 {
		return 0, true
	}
	_ = dst[n-1]
	body := n &^ (w - 1)
	var s float32
	if body > 0 {
		s = expAffK(&dst[0], &src[0], body, a, b, c)
	}
	if body < n {
		var in, out [16]float32
		rem := copy(in[:w], src[body:])
		expAffK(&out[0], &in[0], w, a, b, 1)
		for i, e := range out[:rem] {
			s += e
			dst[body+i] = c * e
		}
	}
	return float64(s), true
}

// sumExpFast is sumExp in vector code, if the path has it: blocks of 512
// are summed in float32 lanes and the blocks in float64.
func sumExpFast(x []float32, b float32) (float64, bool) {
	w := vecWidth()
	if w == 0 {
		return 0, false
	}
	const block = 512
	n := len(x)
	body := n &^ (w - 1)
	var s float64
	for lo := 0; lo < body; lo += block {
		m := min(block, body-lo)
		if vec512 {
			s += float64(expSum512(&x[lo], m, b))
		} else {
			s += float64(expSum256(&x[lo], m, b))
		}
	}
	if body < n {
		var in [16]float32
		for i := range in {
			in[i] = float32(math.Inf(-1))
		}
		copy(in[:w], x[body:])
		if vec512 {
			s += float64(expSum512(&in[0], w, b))
		} else {
			s += float64(expSum256(&in[0], w, b))
		}
	}
	return s, true
}

// maxFast returns the largest of x (len(x) ≥ the vector width) in vector
// code, if the path has it.
func maxFast(x []float32) (float32, bool) {
	w := vecWidth()
	if w == 0 || len(x) < w {
		return 0, false
	}
	n := len(x)
	body := n &^ (w - 1)
	var mx float32
	if vec512 {
		mx = max512(&x[0], body)
	} else {
		mx = max256(&x[0], body)
	}
	for _, v := range x[body:] {
		if v > mx {
			mx = v
		}
	}
	return mx, true
}

// swigluFast is swiglu's loop in vector code, if the path has it.
func swigluFast(h, g, u []float32) bool {
	w := vecWidth()
	if w == 0 {
		return false
	}
	n := len(h)
	if n == 0 {
		return true
	}
	_, _ = g[n-1], u[n-1]
	body := n &^ (w - 1)
	if body > 0 {
		if vec512 {
			swiglu512(&h[0], &g[0], &u[0], body)
		} else {
			swiglu256(&h[0], &g[0], &u[0], body)
		}
	}
	if body < n {
		var tg, tu, th [16]float32
		rem := copy(tg[:w], g[body:n])
		copy(tu[:w], u[body:n])
		if vec512 {
			swiglu512(&th[0], &tg[0], &tu[0], w)
		} else {
			swiglu256(&th[0], &tg[0], &tu[0], w)
		}
		copy(h[body:n], th[:rem])
	}
	return true
}

// swigluBwdFast is swigluBwd's loop in vector code, if the path has it.
func swigluBwdFast(dg, du, d, g, u []float32) bool {
	w := vecWidth()
	if w == 0 {
		return false
	}
	n := len(d)
	if n == 0 {
		return true
	}
	_, _, _, _ = dg[n-1], du[n-1], g[n-1], u[n-1]
	body := n &^ (w - 1)
	if body > 0 {
		if vec512 {
			swigluBwd512(&dg[0], &du[0], &d[0], &g[0], &u[0], body)
		} else {
			swigluBwd256(&dg[0], &du[0], &d[0], &g[0], &u[0], body)
		}
	}
	if body < n {
		var tdg, tdu, td, tg, tu [16]float32
		rem := copy(td[:w], d[body:n])
		copy(tg[:w], g[body:n])
		copy(tu[:w], u[body:n])
		if vec512 {
			swigluBwd512(&tdg[0], &tdu[0], &td[0], &tg[0], &tu[0], w)
		} else {
			swigluBwd256(&tdg[0], &tdu[0], &td[0], &tg[0], &tu[0], w)
		}
		copy(dg[body:n], tdg[:rem])
		copy(du[body:n], tdu[:rem])
	}
	return true
}
