package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
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
//
// With BF16 the operands are first rounded to bfloat16; their products are
// exact in float32, so the same bound holds for the sums.
func gemmRef(prec Precision, variant string, c0, a, b, bias []float32, m, n, k int) (want, tol []float64) {
	op := func(x float32) float64 { return float64(x) }
	if prec == BF16 {
		op = func(x float32) float64 { return float64(RoundBF16(x)) }
	}
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
					x, y = op(a[i*k+l]), op(b[j*k+l])
				case "NN", "NN=":
					x, y = op(a[i*k+l]), op(b[l*n+j])
				case "TN":
					x, y = op(a[l*m+i]), op(b[l*n+j])
				}
				s += x * y
				abs += math.Abs(x * y)
			}
			switch variant {
			case "NN=": // MatMulNN overwrites C
			case "NT":
				if bias != nil {
					s += float64(bias[j])
					abs += math.Abs(float64(bias[j]))
				}
			default:
				s += float64(c0[i*n+j])
				abs += math.Abs(float64(c0[i*n+j]))
			}
			want[i*n+j] = s
			tol[i*n+j] = float64(k+2)*u*abs + 1e-30
		}
	}
	return want, tol
}

// checkGemm runs one variant on one shape, in the pool's precision, and
// compares it with gemmRef. C carries sentinels past m·n that must stay
// untouched.
func checkGemm(t *testing.T, p *Pool, variant string, m, n, k int, withBias bool, seed uint64) {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, uint64(m*1000003+n*1009+k)))
	var a, b []float32
	switch variant {
	case "NT":
		a, b = randSlice(r, m*k), randSlice(r, n*k)
	case "NN", "NN=":
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
	prec := p.Precision()
	if variant == "NT" && m <= skinnyRows {
		prec = F32 // decoding products stay float32
	}
	want, tol := gemmRef(prec, variant, c0, a, b, bias, m, n, k)
	switch variant {
	case "NT":
		MatMulNT(p, c[:m*n], a, b, bias, m, n, k)
	case "NN":
		MatMulNNAcc(p, c[:m*n], a, b, m, n, k)
	case "NN=":
		MatMulNN(p, c[:m*n], a, b, m, n, k)
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
				for _, variant := range []string{"NT", "NN", "NN=", "TN"} {
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
		// At limit 1000, MatMulNT's transposed evaluation (4m < k) and,
		// with as small an A but more rows, B packed per task.
		{"NT", 5, 1000, 47}, {"NT", 20, 1000, 47}, {"NT", 11, 700, 90},
		// Deep products with a small C, summed over parts of k.
		{"NN", 13, 40, 2000}, {"TN", 17, 33, 1700}, {"NN", 64, 64, 1537},
		// MatMulNN overwrites C: the first block of k stores.
		{"NN=", 100, 96, 600}, {"NN=", 13, 40, 2000}, {"NN=", 130, 290, 0},
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

// TestMatMulBF16 checks the BF16 precision on every path: the AMX kernel
// where the CPU has it, the VDPBF16PS kernel where it has AVX512_BF16 (the
// avx512bf16 path, or avx512 without AMX), and the rounded float32 products
// (also on an AVX-512 path with its bfloat16 kernel taken away), against
// products of the rounded operands. checkGemm fails any element off by more than the
// float32 summation bound, and a product of unrounded operands is off by far
// more (relative 2⁻⁹ per operand).
func TestMatMulBF16(t *testing.T) {
	pool := NewPool(2)
	defer pool.Close()
	serial := NewPool(1)
	defer serial.Close()
	pool.SetPrecision(BF16)
	serial.SetPrecision(BF16)
	paths := testPaths()
	for _, path := range gemmPaths() {
		if path.nativeBF16() {
			emulated := *path
			emulated.name += "-emulated"
			emulated.blockBF = nil
			paths = append(paths, &emulated)
		}
	}
	saved := prepackLimit
	defer func() { prepackLimit = saved }()
	for _, path := range paths {
		name := pathName(path)
		if path.nativeBF16() {
			name += "-" + path.bfKernel
		}
		t.Run(name, func(t *testing.T) {
			withPath(path, func() {
				for _, variant := range []string{"NT", "NN", "NN=", "TN"} {
					for _, m := range []int{1, 5, 12, 13, 33, 97} {
						for _, n := range []int{1, 16, 31, 33, 65} {
							for _, k := range []int{1, 2, 13, 259, 800} { // 800: two blocks of bf16 depth
								p := serial
								if (m+n+k)%2 == 0 {
									p = pool
								}
								checkGemm(t, p, variant, m, n, k, (m+n)%3 != 0, 4)
							}
						}
					}
				}
				for _, limit := range []int{saved, 1000} {
					prepackLimit = limit
					for _, s := range [][3]int{{130, 290, 1000}, {64, 1000, 47}, {13, 40, 2001}, {5, 1000, 47}, {11, 700, 90}} {
						for _, variant := range []string{"NT", "NN", "NN=", "TN"} {
							checkGemm(t, pool, variant, s[0], s[1], s[2], true, 5)
						}
					}
				}
				prepackLimit = saved
			})
		})
	}
}

// TestRoundBF16 checks the rounding against hand-worked bit patterns: ties go
// to even, subnormals flush to signed zero (as VCVTNEPS2BF16 does), and
// infinities and NaNs survive.
func TestRoundBF16(t *testing.T) {
	for _, c := range []struct{ in, want uint32 }{
		{0x3f800000, 0x3f800000}, // 1
		{0x3f808000, 0x3f800000}, // 1 + 2⁻⁸: a tie, down to even
		{0x3f818000, 0x3f820000}, // 1 + 3·2⁻⁸: a tie, up to even
		{0x3f808001, 0x3f810000}, // just above the tie
		{0x3f807fff, 0x3f800000}, // just below it
		{0xbf80c000, 0xbf810000}, // negative, rounds away from zero
		{0x7f7fffff, 0x7f800000}, // the largest float32 overflows to +Inf
		{0x7f800000, 0x7f800000}, // +Inf
		{0x00400000, 0x00000000}, // subnormal → +0
		{0x80400000, 0x80000000}, // negative subnormal → -0
	} {
		got := math.Float32bits(RoundBF16(math.Float32frombits(c.in)))
		if got != c.want {
			t.Errorf("RoundBF16(%#08x) = %#08x, want %#08x", c.in, got, c.want)
		}
	}
	if nan := RoundBF16(float32(math.NaN())); nan == nan {
		t.Errorf("RoundBF16(NaN) = %v", nan)
	}
	if nan := RoundBF16(math.Float32frombits(0x7f800001)); nan == nan {
		t.Errorf("RoundBF16(signalling NaN 0x7f800001) = %v, not a NaN", nan)
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
	// avx512bf16: the AVX-512 float32 kernels with the VDPBF16PS kernel
	// wherever some path has it (every CPU with AVX512_BF16), else the best.
	want := best
	for _, p := range gemmPaths() {
		if p.bfKernel == "vdpbf16ps" {
			want = p
			break
		}
	}
	if p := selectPath("avx512bf16"); pathName(p) != pathName(want) || (p != nil && p.bfKernel != want.bfKernel) {
		t.Errorf("avx512bf16 selected %s, want %s", pathName(p), pathName(want))
	} else if p != nil && p.bfKernel == "vdpbf16ps" && (p.mr != 12 || !p.nativeBF16()) {
		t.Errorf("avx512bf16 path: %d-row float32 kernels, native bf16 %v", p.mr, p.nativeBF16())
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

// TestPackTranspose checks every path's transpose and packT (register
// transposes of 16×16 blocks plus ragged edges on avx512) against the
// element-by-element versions, with padded leading dimensions.
func TestPackTranspose(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for _, path := range gemmPaths() {
		for _, rows := range edgeSizes {
			for _, cols := range edgeSizes {
				lds, ldd := cols+3, rows+5
				src := randSlice(r, rows*lds)
				got, want := make([]float32, cols*ldd), make([]float32, cols*ldd)
				path.transpose(got, src, ldd, lds, rows, cols)
				transposeGo(want, src, ldd, lds, rows, cols)
				if !slices.Equal(got, want) {
					t.Fatalf("%s transpose %dx%d differs", path.name, rows, cols)
				}
				if rows > path.nr {
					continue
				}
				// A panel: kc = cols steps of rows columns of Bᵀ.
				got, want = make([]float32, cols*path.nr), make([]float32, cols*path.nr)
				path.packT(got, src, lds, cols, rows)
				packTGo(want, src, lds, cols, rows)
				if !slices.Equal(got, want) {
					t.Fatalf("%s packT kc=%d cols=%d differs", path.name, cols, rows)
				}
			}
		}
	}
}
