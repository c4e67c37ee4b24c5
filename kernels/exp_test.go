package kernels

import (
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"testing"
)

// ulpDiff returns how many float32 steps got lies from want (both not NaN).
func ulpDiff(got, want float32) int64 {
	key := func(f float32) int64 {
		b := int64(math.Float32bits(f))
		if b&(1<<31) != 0 {
			return -(b &^ (1 << 31))
		}
		return b
	}
	d := key(got) - key(want)
	if d < 0 {
		d = -d
	}
	return d
}

// TestExpAccuracy compares the exponential of every vector path with math.Exp
// rounded to float32, over a strided sweep of all float32 bit patterns
// (every one with RELUPO_EXP_FULL=1), including ±0, ±Inf, NaN and the
// overflow and underflow thresholds.
func TestExpAccuracy(t *testing.T) {
	stride := uint64(251)
	if os.Getenv("RELUPO_EXP_FULL") != "" {
		stride = 1
	}
	special := []float32{0, float32(math.Copysign(0, -1)), float32(math.Inf(1)), float32(math.Inf(-1)),
		float32(math.NaN()), 88.72283, 88.72284, 88.7, 88.8, 89, -87.33654, -87.34, -103.97, -103.98,
		-104, -110, 1e-10, -1e-10, 0.34657359, -0.34657359, 1, -1, math.MaxFloat32, -math.MaxFloat32}
	for _, path := range gemmPaths() {
		t.Run(pathName(path), func(t *testing.T) {
			withPath(path, func() {
				const chunk = 1 << 16
				src := make([]float32, 0, chunk)
				dst := make([]float32, chunk)
				var worst int64
				var worstX float32
				check := func() {
					ExpSlice(dst[:len(src)], src)
					for i, x := range src {
						got := dst[i]
						want := float32(math.Exp(float64(x)))
						if x != x {
							if got == got {
								t.Fatalf("exp(NaN) = %v", got)
							}
							continue
						}
						if d := ulpDiff(got, want); d > worst {
							worst, worstX = d, x
						}
					}
					src = src[:0]
				}
				src = append(src, special...)
				for b := uint64(0); b < 1<<32; b += stride {
					src = append(src, math.Float32frombits(uint32(b)))
					if len(src) == chunk {
						check()
					}
				}
				check()
				t.Logf("max error %d ulp (at x = %v)", worst, worstX)
				if worst > 2 {
					t.Errorf("max error %d ulp at x = %v, want ≤ 2", worst, worstX)
				}
			})
		})
	}
}

func closeRel(a, b, tol float64) bool {
	return math.Abs(a-b) <= tol*math.Max(math.Abs(b), 1e-30) || a == b
}

// TestExpKernels checks the vector SwiGLU, log-sum-exp and softmax gradient
// against the portable loops, at lengths around the vector widths.
func TestExpKernels(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	pool := NewPool(2)
	defer pool.Close()
	lengths := []int{1, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33, 100, 4099, 10000}
	for _, path := range gemmPaths() {
		t.Run(pathName(path), func(t *testing.T) {
			for _, n := range lengths {
				g, u, d := randSlice(r, n), randSlice(r, n), randSlice(r, n)
				for i := range g {
					g[i] *= 6
				}
				h0, dg0, du0 := make([]float32, n), make([]float32, n), make([]float32, n)
				h1, dg1, du1 := make([]float32, n), make([]float32, n), make([]float32, n)
				withPath(nil, func() {
					SwiGLUForward(pool, h0, g, u)
					SwiGLUBackward(pool, dg0, du0, d, g, u)
				})
				withPath(path, func() {
					SwiGLUForward(pool, h1, g, u)
					SwiGLUBackward(pool, dg1, du1, d, g, u)
				})
				for i := range h0 {
					// A 2-ulp exp moves the sigmoid by ~2 ulps and the
					// products after it by a few more.
					if !closeRel(float64(h1[i]), float64(h0[i]), 1e-6) ||
						!closeRel(float64(du1[i]), float64(du0[i]), 1e-6) ||
						// dg = d·u·s·(1 + g·(1−s)) cancels near g ≈ −1.28:
						// bound its error by the size of its terms.
						math.Abs(float64(dg1[i]-dg0[i])) > 2e-6*math.Abs(float64(d[i]*u[i]))*(1+math.Abs(float64(g[i]))) {
						t.Fatalf("n=%d i=%d g=%v: h %v/%v du %v/%v dg %v/%v", n, i, g[i],
							h1[i], h0[i], du1[i], du0[i], dg1[i], dg0[i])
					}
				}
			}
			for _, n := range append(lengths, 49152, 49157) {
				x := randSlice(r, n)
				for i := range x {
					x[i] *= 4
				}
				var ref float64
				mx := math.Inf(-1)
				for _, v := range x {
					mx = math.Max(mx, float64(v))
				}
				for _, v := range x {
					ref += math.Exp(float64(v) - mx)
				}
				ref = mx + math.Log(ref)
				var got float32
				withPath(path, func() { got = LogSumExp(x) })
				if math.Abs(float64(got)-ref) > 1e-6*math.Max(1, math.Abs(ref)) {
					t.Fatalf("LogSumExp n=%d: %v, want %v", n, got, ref)
				}
				label := n / 2
				x0, x1 := append([]float32(nil), x...), append([]float32(nil), x...)
				lse := float32(ref)
				withPath(nil, func() { SoftmaxGrad(x0, lse, label, 0.7) })
				withPath(path, func() { SoftmaxGrad(x1, lse, label, 0.7) })
				for i := range x0 {
					if !closeRel(float64(x1[i]), float64(x0[i]), 3e-7) && math.Abs(float64(x1[i]-x0[i])) > 1e-7 {
						t.Fatalf("SoftmaxGrad n=%d i=%d: %v, want %v", n, i, x1[i], x0[i])
					}
				}
			}
			ninf := float32(math.Inf(-1))
			withPath(path, func() {
				if v := LogSumExp([]float32{ninf, ninf}); !math.IsInf(float64(v), -1) {
					t.Errorf("LogSumExp(-Inf...) = %v", v)
				}
			})
		})
	}
}

// TestSwiGLURows checks that the fused-row layout (gate and up side by side
// in each row) gives exactly SwiGLUForward and SwiGLUBackward of the
// separated values, on every path and for row widths around the vector
// widths.
func TestSwiGLURows(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	pool := NewPool(2)
	defer pool.Close()
	for _, path := range append([]*gemmPath{nil}, gemmPaths()...) {
		t.Run(pathName(path), func(t *testing.T) {
			withPath(path, func() {
				for _, n := range []int{1, 15, 17, 64, 1376} {
					rows := 7
					gu, dh := randSlice(r, rows*2*n), randSlice(r, rows*n)
					g, u := make([]float32, rows*n), make([]float32, rows*n)
					for i := 0; i < rows; i++ {
						copy(g[i*n:], gu[2*i*n:(2*i+1)*n])
						copy(u[i*n:], gu[(2*i+1)*n:(2*i+2)*n])
					}
					h0, dg, du := make([]float32, rows*n), make([]float32, rows*n), make([]float32, rows*n)
					SwiGLUForward(pool, h0, g, u)
					SwiGLUBackward(pool, dg, du, dh, g, u)
					h1, dgu := make([]float32, rows*n), make([]float32, rows*2*n)
					SwiGLURows(pool, h1, gu, rows, n)
					SwiGLURowsBackward(pool, dgu, dh, gu, rows, n)
					want := make([]float32, 0, rows*2*n)
					for i := 0; i < rows; i++ {
						want = append(append(want, dg[i*n:(i+1)*n]...), du[i*n:(i+1)*n]...)
					}
					if !slices.Equal(math32Bits(h1), math32Bits(h0)) || !slices.Equal(math32Bits(dgu), math32Bits(want)) {
						t.Fatalf("n=%d: SwiGLURows differs from SwiGLUForward/Backward", n)
					}
				}
			})
		})
	}
}
