package kernels

import "math"

// Exponentials. On the avx512 and avx2 paths they run in vector code with a
// float32 exp accurate to 2 ulps (exp_amd64.s); on the portable path they
// use math.Exp in float64, rounded to float32.

// expAffine sets dst[i] = c·exp(a·src[i] − b), with a·src[i] and the
// subtraction rounded to float32 as written, and returns Σ exp(a·src[i] − b)
// of the float32 exponentials (in float32 lanes on the vector paths, in
// float64 on the portable one). dst may alias src.
func expAffine(dst, src []float32, a, b, c float32) float64 {
	if s, ok := expAffineFast(dst, src, a, b, c); ok {
		return s
	}
	dst = dst[:len(src)]
	var s float64
	for i, v := range src {
		e := float32(math.Exp(float64(a*v - b)))
		s += float64(e)
		dst[i] = c * e
	}
	return s
}

// sumExp returns Σ exp(x[i] − b), summed in float64 (over blocks of float32
// lanes on the vector paths).
func sumExp(x []float32, b float32) float64 {
	if s, ok := sumExpFast(x, b); ok {
		return s
	}
	var s float64
	for _, v := range x {
		s += math.Exp(float64(v - b))
	}
	return s
}

// maxOf returns the largest element of x (−Inf if x is empty).
func maxOf(x []float32) float32 {
	if m, ok := maxFast(x); ok {
		return m
	}
	mx := float32(math.Inf(-1))
	for _, v := range x {
		if v > mx {
			mx = v
		}
	}
	return mx
}

// ExpSlice sets dst[i] = exp(src[i]) with the exponential of the kernel path
// in use. dst may alias src.
func ExpSlice(dst, src []float32) { expAffine(dst, src, 1, 0, 1) }
