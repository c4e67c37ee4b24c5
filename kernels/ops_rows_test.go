package kernels

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestNormRopeRows runs the row loops of RMSNorm and RoPE on the path in use
// and on the portable Go loops and requires the same float32 bits (each
// element is computed with the same operations in the same order); the
// float64 sums may add in another order, so they only agree to float64
// rounding. Lengths around the vector width reach the masked tails, and a
// sentinel past the row must stay untouched.
func TestNormRopeRows(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	type result struct {
		f32 [][]float32
		f64 []float64
	}
	run := func(n int, seed uint64) result {
		r := rand.New(rand.NewPCG(seed, uint64(n)))
		x, w, dr := randSlice(r, n+1), randSlice(r, n+1), randSlice(r, n+1)
		dwp, dxr := randSlice(r, n+1), randSlice(r, n+1)
		x1, x2, c, s := randSlice(r, n+1), randSlice(r, n+1), randSlice(r, n+1), randSlice(r, n+1)
		y1, y2 := slices.Clone(x1), slices.Clone(x2)
		rs, dot := float32(0.83), float32(-0.27)
		out := randSlice(r, n+1)
		var res result
		res.f64 = append(res.f64, sumSq(x[:n]))
		rmsScaleRow(out[:n], x[:n], w[:n], rs)
		res.f64 = append(res.f64, rmsBwdDotRow(dwp[:n], dr[:n], x[:n], w[:n], rs))
		rmsBwdDxRow(dxr[:n], dr[:n], x[:n], w[:n], rs, dot)
		ropeRow(x1[:n], x2[:n], c[:n], s[:n], false)
		ropeRow(y1[:n], y2[:n], c[:n], s[:n], true)
		res.f32 = [][]float32{out, dwp, dxr, x1, x2, y1, y2}
		return res
	}
	for _, n := range []int{1, 5, 15, 16, 17, 32, 33, 64, 100, 576} {
		seed := r.Uint64()
		var want result
		withPath(nil, func() { want = run(n, seed) })
		got := run(n, seed)
		for i := range want.f32 {
			if !slices.Equal(math32Bits(got.f32[i]), math32Bits(want.f32[i])) {
				t.Errorf("n=%d: output %d differs from the Go loop:\n got %v\nwant %v", n, i, got.f32[i], want.f32[i])
			}
		}
		for i := range want.f64 {
			if d := math.Abs(got.f64[i] - want.f64[i]); d > 1e-12*math.Abs(want.f64[i]) {
				t.Errorf("n=%d: sum %d = %v, Go loop %v", n, i, got.f64[i], want.f64[i])
			}
		}
	}
}
