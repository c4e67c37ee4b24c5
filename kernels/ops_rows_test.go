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

// With a rotary dimension below the head's, RoPE rotates the head's first
// rotaryDim values as a head of that size and leaves the rest; backward
// undoes forward.
func TestRopePartial(t *testing.T) {
	const rows, heads, hd, rd = 3, 2, 12, 8
	r := rand.New(rand.NewPCG(5, 6))
	x := make([]float32, rows*heads*hd)
	for i := range x {
		x[i] = float32(r.NormFloat64())
	}
	cos, sin := make([]float32, 4*rd/2), make([]float32, 4*rd/2)
	for i := range cos {
		a := r.Float64() * 6
		cos[i], sin[i] = float32(math.Cos(a)), float32(math.Sin(a))
	}
	pos := []int32{0, 3, 1}
	got := slices.Clone(x)
	RopeForward(nil, got, pos, cos, sin, rows, heads, hd, rd)
	for row := range rows {
		for h := range heads {
			v, g := x[(row*heads+h)*hd:], got[(row*heads+h)*hd:]
			for i := range rd / 2 {
				c, s := cos[int(pos[row])*rd/2+i], sin[int(pos[row])*rd/2+i]
				a, b := v[i], v[i+rd/2]
				if d := math.Abs(float64(g[i] - (a*c - b*s))); d > 1e-6 {
					t.Fatalf("row %d head %d value %d rotated to %v, want %v", row, h, i, g[i], a*c-b*s)
				}
				if d := math.Abs(float64(g[i+rd/2] - (b*c + a*s))); d > 1e-6 {
					t.Fatalf("row %d head %d value %d rotated to %v", row, h, i+rd/2, g[i+rd/2])
				}
			}
			if !slices.Equal(g[rd:hd], v[rd:hd]) {
				t.Fatalf("row %d head %d: the values past the rotary dimension changed", row, h)
			}
		}
	}
	RopeBackward(nil, got, pos, cos, sin, rows, heads, hd, rd)
	for i := range x {
		if math.Abs(float64(got[i]-x[i])) > 1e-5 {
			t.Fatalf("backward(forward(x))[%d] = %v, want %v", i, got[i], x[i])
		}
	}
}
