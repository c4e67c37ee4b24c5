package kernels

import (
	"math"
	"math/big"
	"math/rand/v2"
	"testing"
)

// The AVX-512 AdamW loop and the portable one give identical bits (every
// step is one IEEE rounding on both), with and without weight decay, over
// lengths that exercise the 16-lane loop and its scalar tail.
func TestAdamWPathsAgree(t *testing.T) {
	if !vec512 {
		t.Skip("no AVX-512 on this CPU (or RELUPO_KERNELS chose another path)")
	}
	r := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{1, 15, 16, 17, 31, 64, 1000} {
		for _, decay := range []bool{false, true} {
			c := AdamWConsts{B1: 0.9, OneMinusB1: 0.1, B2: 0.999, OneMinusB2: 0.001, Eps: 1e-8,
				NegStep: -1e-3 / 0.1, BC2Sqrt: float32(math.Sqrt(0.001)), Scale: 1 - 1e-3*0.1, Decay: decay}
			mk := func(scale float64) []float32 {
				s := make([]float32, n)
				for i := range s {
					s[i] = float32(r.NormFloat64() * scale)
				}
				return s
			}
			data, grad, m, v := mk(0.1), mk(1e-3), mk(1e-4), mk(1e-8)
			for i := range v {
				v[i] = float32(math.Abs(float64(v[i])))
			}
			d2, m2, v2 := append([]float32(nil), data...), append([]float32(nil), m...), append([]float32(nil), v...)
			AdamW(data, grad, m, v, c)
			adamwGo(d2, grad, m2, v2, c)
			for i := range data {
				if math.Float32bits(data[i]) != math.Float32bits(d2[i]) || m[i] != m2[i] || v[i] != v2[i] {
					t.Fatalf("n=%d decay=%v element %d: AVX-512 %g/%g/%g, Go %g/%g/%g", n, decay, i, data[i], m[i], v[i], d2[i], m2[i], v2[i])
				}
			}
		}
	}
}

func TestFMA32(t *testing.T) {
	// (1+2⁻¹²)² = 1 + 2⁻¹¹ + 2⁻²⁴ is exactly halfway between two float32
	// values; adding ±1e-30 moves the exact sum off the midpoint but not the
	// float64 sum, so a plain float32(float64 FMA) would round wrongly.
	a := float32(1 + 1.0/(1<<12))
	ulp := math.Nextafter32(1, 2) - 1
	for _, tc := range []struct{ a, b, c float32 }{
		{a, a, 0}, {a, a, 1e-30}, {a, a, -1e-30}, {-a, a, 1e-30}, {3, 5, 7}, {ulp, ulp, 1}, {0.1, 0.9, 0.01},
		{-2.5, 4, 10}, {1e-20, 1e-20, 1e-38},
	} {
		want := exactFMA32(tc.a, tc.b, tc.c)
		if got := fma32(tc.a, tc.b, tc.c); got != want {
			t.Errorf("fma32(%v, %v, %v) = %v, want %v", tc.a, tc.b, tc.c, got, want)
		}
	}
	if got := fma32(float32(math.Inf(1)), 1, 1); !math.IsInf(float64(got), 1) {
		t.Errorf("fma32(+Inf, 1, 1) = %v", got)
	}
}

// exactFMA32 computes a·b + c exactly with math/big and rounds once to the
// nearest float32.
func exactFMA32(a, b, c float32) float32 {
	x := new(big.Float).SetPrec(1000).SetFloat64(float64(a))
	x.Mul(x, new(big.Float).SetPrec(1000).SetFloat64(float64(b)))
	x.Add(x, new(big.Float).SetPrec(1000).SetFloat64(float64(c)))
	f, _ := x.Float32()
	return f
}

func TestFMA32Random(t *testing.T) {
	// A deterministic sweep over magnitudes, compared with exact arithmetic.
	x := uint32(12345)
	next := func() float32 {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		f := math.Float32frombits(x&0x807fffff | uint32(100+x%60)<<23) // exponents 2^-27 .. 2^32
		return f
	}
	for i := 0; i < 20000; i++ {
		a, b, c := next(), next(), next()
		if got, want := fma32(a, b, c), exactFMA32(a, b, c); got != want {
			t.Fatalf("fma32(%v, %v, %v) = %v, want %v", a, b, c, got, want)
		}
	}
}
