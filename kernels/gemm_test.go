package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// testPaths returns every matrix-product path this CPU can run, the portable
// Go loops first.
func testPaths() []*gemmPath {
	return append([]*gemmPath{nil}, gemmPaths()...)
}

func pathName(p *gemmPath) string {
	if p == nil {
		return "generic"
	}
	return p.name
}

// withPath runs f with the matrix products forced onto path.
func withPath(path *gemmPath, f func()) {
	saved := gemmImpl
	setPath(path)
	defer setPath(saved)
	f()
}

func randSlice(r *rand.Rand, n int) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = float32(r.NormFloat64())
	}
	return s
}

// gemmRef computes the product in float64 together with, for every element,
// the error bound of any float32 summation order:
// |err| ≤ (k+2)·u·(|c0| + |bias| + Σ|a||b|), u = 2⁻²⁴ (Higham, §3.1). An index
// mistake (a wrong or missing term) gives an error of the size of a term,
// far above this bound for the k used here, while a correct kernel in any
// order stays within it.
func gemmRef(variant string, c0, a, b, bias []float32, m, n, k int) (want, tol []float64) {
	want = make([]float64, m*n)
	tol = make([]float64, m*n)
	u := math.Ldexp(1, -24)
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			var s, abs float64
			for l := 0; l < k; l++ {
				var x, y float64
				switch variant {
				case "NT":
					x, y = float64(a[i*k+l]), float64(b[j*k+l])
				case "NN":
					x, y = float64(a[i*k+l]), float64(b[l*n+j])
				case "TN":
					x, y = float64(a[l*m+i]), float64(b[l*n+j])
				}
				s += x * y
				abs += math.Abs(x * y)
			}
			if variant == "NT" {
				if bias != nil {
					s += float64(bias[j])
					abs += math.Abs(float64(bias[j]))
				}
			} else {
				s += float64(c0[i*n+j])
				abs += math.Abs(float64(c0[i*n+j]))
			}
			want[i*n+j] = s
			tol[i*n+j] = float64(k+2)*u*abs + 1e-30
		}
	}
	return want, tol
}

// checkGemm runs one variant on one shape and compares it with gemmRef. C
// carries sentinels past m·n that must stay untouched.
func checkGemm(t *testing.T, p *Pool, variant string, m, n, k int, withBias bool, seed uint64) {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, uint64(m*1000003+n*1009+k)))
	var a, b []float32
	switch variant {
	case "NT":
		a, b = randSlice(r, m*k), randSlice(r, n*k)
	case "NN":
		a, b = randSlice(r, m*k), randSlice(r, k*n)
	case "TN":
		a, b = randSlice(r, k*m), randSlice(r, k*n)
	}
	var bias []float32
	if withBias {
		bias = randSlice(r, n)
	}
	const pad = 7
	c := randSlice(r, m*n+pad)
	c0 := append([]float32(nil), c...)
	want, tol := gemmRef(variant, c0, a, b, bias, m, n, k)
	switch variant {
	case "NT":
		MatMulNT(p, c[:m*n], a, b, bias, m, n, k)
	case "NN":
		MatMulNNAcc(p, c[:m*n], a, b, m, n, k)
	case "TN":
		MatMulTNAcc(p, c[:m*n], a, b, m, n, k)
	}
	bad := 0
	for i := range want {
		if d := math.Abs(float64(c[i]) - want[i]); !(d <= tol[i]) {
			if bad < 3 {
				t.Errorf("%s %d×%d×%d: C[%d,%d] = %v, want %v (tolerance %.3g)",
					variant, m, n, k, i/n, i%n, c[i], want[i], tol[i])
			}
			bad++
		}
	}
	for i := m * n; i < len(c); i++ {
		if c[i] != c0[i] {
			t.Fatalf("%s %d×%d×%d: wrote past C", variant, m, n, k)
		}
	}
	if bad > 0 {
		t.Errorf("%s %d×%d×%d: %d of %d elements wrong", variant, m, n, k, bad, m*n)
	}
}

var edgeSizes = []int{1, 2, 3, 7, 12, 15, 16, 17, 31, 33, 63, 64, 65, 97, 129}

func TestMatMulPaths(t *testing.T) {
	pool := NewPool(3)
	defer pool.Close()
	for _, path := range testPaths() {
		t.Run(pathName(path), func(t *testing.T) {
			withPath(path, func() {
				for _, variant := range []string{"NT", "NN", "TN"} {
					for _, m := range edgeSizes {
						for _, n := range edgeSizes {
							for _, k := range []int{1, 13, 259} {
								var p *Pool
								if (m+n+k)%2 == 0 {
									p = pool
								}
								checkGemm(t, p, variant, m, n, k, (m+n)%3 != 0, 1)
							}
						}
					}
				}
			})
		})
	}
}

// TestMatMulLarge covers the model's kinds of shapes, including the wide
// products whose B is too large to pack at once (per-task packing, and the
// transposed evaluation of MatMulNT) and a depth of several blocks.
func TestMatMulLarge(t *testing.T) {
	pool := NewPool(2)
	defer pool.Close()
	saved := prepackLimit
	defer func() { prepackLimit = saved }()
	shapes := []struct {
		variant string
		m, n, k int
	}{
		{"NT", 100, 176, 96}, {"NN", 100, 96, 176}, {"TN", 176, 96, 100},
		{"NT", 64, 1000, 47}, {"NN", 64, 47, 1000}, {"TN", 1000, 47, 64},
		{"NT", 130, 290, 600}, {"NN", 130, 290, 600}, {"TN", 130, 290, 600},
		{"NT", 600, 33, 13}, {"NN", 13, 600, 33}, {"TN", 33, 13, 600},
		// Deep products with a small C, summed over parts of k.
		{"NN", 13, 40, 2000}, {"TN", 17, 33, 1700}, {"NN", 64, 64, 1537},
	}
	for _, path := range testPaths()[1:] {
		for _, limit := range []int{saved, 1000} {
			prepackLimit = limit
			for _, s := range shapes {
				t.Run(fmt.Sprintf("%s/%s/%dx%dx%d/limit%d", pathName(path), s.variant, s.m, s.n, s.k, limit), func(t *testing.T) {
					withPath(path, func() {
						checkGemm(t, pool, s.variant, s.m, s.n, s.k, true, 2)
						checkGemm(t, nil, s.variant, s.m, s.n, s.k, false, 3)
					})
				})
			}
		}
	}
}

func TestSelectPath(t *testing.T) {
	if p := selectPath("generic"); p != nil {
		t.Errorf("generic selected %s", p.name)
	}
	best := selectPath("")
	if paths := gemmPaths(); len(paths) > 0 && best.name != paths[0].name {
		t.Errorf("default path %s, want %s", pathName(best), paths[0].name)
	}
	if p := selectPath("avx2"); p != nil && p.name != "avx2" {
		t.Errorf("avx2 selected %s", p.name)
	}
	t.Logf("paths on this CPU: default %s", pathName(best))
}

func TestDotAxpy(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	u := math.Ldexp(1, -24)
	for _, path := range testPaths() {
		withPath(path, func() {
			for n := 0; n <= 140; n++ {
				a, b, y := randSlice(r, n), randSlice(r, n+3), randSlice(r, n+3)
				alpha := float32(r.NormFloat64())
				var want, abs float64
				for i := range a {
					want += float64(a[i]) * float64(b[i])
					abs += math.Abs(float64(a[i]) * float64(b[i]))
				}
				if got := Dot(a, b); math.Abs(float64(got)-want) > float64(n+1)*u*abs {
					t.Errorf("%s: Dot of %d = %v, want %v", pathName(path), n, got, want)
				}
				y0 := append([]float32(nil), y...)
				Axpy(y[:n], alpha, b)
				for i := range y {
					want, tol := float64(y0[i]), 0.0
					if i < n {
						p := float64(alpha) * float64(b[i])
						want += p
						tol = 2 * u * (math.Abs(p) + math.Abs(float64(y0[i])))
					}
					if math.Abs(float64(y[i])-want) > tol {
						t.Errorf("%s: Axpy of %d: y[%d] = %v, want %v", pathName(path), n, i, y[i], want)
						break
					}
				}
			}
		})
	}
}
