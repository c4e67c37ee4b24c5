package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// randBF16 returns n normally distributed values rounded to bfloat16, as
// bits and widened.
func randBF16(r *rand.Rand, n int) ([]uint16, []float32) {
	h := make([]uint16, n)
	NarrowBF16(h, randSlice(r, n))
	w := make([]float32, n)
	WidenBF16(w, h)
	return h, w
}

// TestWidenNarrowBF16 checks the conversions on every path against their
// definitions: widening is exact for all 65536 bit patterns, and narrowing
// rounds as RoundBF16 (ties to even, subnormals to signed zero, NaNs kept),
// including the ragged ends of the vector loops.
func TestWidenNarrowBF16(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	specials := []uint32{0x3f808000, 0x3f818000, 0x3f808001, 0x3f807fff, 0xbf80c000, 0x00400000, 0x80000001,
		0x80000000, 0x7f800000, 0xff800000, 0x7fc00000, 0x7f800001, 0xffbfffff, 0x7f7fffff, 0x00800000}
	for _, path := range testPaths() {
		t.Run(pathName(path), func(t *testing.T) {
			withPath(path, func() {
				all := make([]uint16, 1<<16)
				for i := range all {
					all[i] = uint16(i)
				}
				w := make([]float32, len(all)+1)
				w[len(all)] = 42
				WidenBF16(w, all)
				for i, h := range all {
					if got, want := math.Float32bits(w[i]), uint32(h)<<16; got != want {
						t.Fatalf("WidenBF16(%#04x) = %#08x, want %#08x", h, got, want)
					}
				}
				if w[len(all)] != 42 {
					t.Fatal("WidenBF16 wrote past its source's length")
				}
				for _, n := range []int{0, 1, 15, 16, 17, 31, 32, 33, 63, 100, 1000} {
					src := randSlice(r, n)
					for i := range src {
						if r.IntN(8) == 0 {
							src[i] = math.Float32frombits(specials[r.IntN(len(specials))])
						}
					}
					got := make([]uint16, n+3)
					for i := range got {
						got[i] = 0xdead
					}
					NarrowBF16(got, src)
					for i, v := range src {
						if want := bf16Bits(v); got[i] != want {
							t.Fatalf("n %d: NarrowBF16(%#08x) = %#04x, want %#04x", n, math.Float32bits(v), got[i], want)
						}
					}
					for i := n; i < len(got); i++ {
						if got[i] != 0xdead {
							t.Fatalf("n %d: NarrowBF16 wrote past its source's length", n)
						}
					}
				}
			})
		})
	}
}

// hCase is one product of TestMatMulH.
type hCase struct {
	variant string // "NT" (MatMulNTH), "NN=" (MatMulNNH), "NN" (MatMulNNAccH)
	m, n, k int
	bias    bool
}

// checkMatMulH runs one product with B as bfloat16 bits and the float32
// product on the widened B, in the pool's precision, and requires the same
// bits in every element of C (and C untouched past m·n). With ref it also
// holds the result to gemmRef's bound, so that the float32 product being
// wrong too cannot hide an error.
func checkMatMulH(t *testing.T, p *Pool, hc hCase, seed uint64, ref bool) {
	t.Helper()
	m, n, k := hc.m, hc.n, hc.k
	r := rand.New(rand.NewPCG(seed, uint64(m*1000003+n*1009+k)))
	a := randSlice(r, m*k)
	var bn int
	if hc.variant == "NT" {
		bn = n * k
	} else {
		bn = k * n
	}
	bh, bw := randBF16(r, bn)
	var bias []float32
	if hc.bias {
		bias = randSlice(r, n)
	}
	const pad = 5
	c0 := randSlice(r, m*n+pad)
	got, want := append([]float32(nil), c0...), append([]float32(nil), c0...)
	switch hc.variant {
	case "NT":
		MatMulNTH(p, got[:m*n], a, bh, bias, m, n, k)
		MatMulNT(p, want[:m*n], a, bw, bias, m, n, k)
	case "NN=":
		MatMulNNH(p, got[:m*n], a, bh, m, n, k)
		MatMulNN(p, want[:m*n], a, bw, m, n, k)
	case "NN":
		MatMulNNAccH(p, got[:m*n], a, bh, m, n, k)
		MatMulNNAcc(p, want[:m*n], a, bw, m, n, k)
	}
	bad := 0
	for i := range got {
		if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
			if bad++; bad <= 3 {
				t.Errorf("%s %d×%d×%d: C[%d] = %v, the product on the widened B gives %v", hc.variant, m, n, k, i, got[i], want[i])
			}
		}
	}
	if bad > 0 {
		t.Fatalf("%s %d×%d×%d: %d of %d elements differ", hc.variant, m, n, k, bad, len(got))
	}
	if !ref {
		return
	}
	prec := p.Precision()
	if hc.variant == "NT" && m <= skinnyRows {
		prec = F32
	}
	wantRef, tol := gemmRef(prec, hc.variant, c0, a, bw, bias, m, n, k)
	for i := range wantRef {
		if d := math.Abs(float64(got[i]) - wantRef[i]); !(d <= tol[i]) {
			t.Fatalf("%s %d×%d×%d: C[%d] = %v, want %v (tolerance %.3g)", hc.variant, m, n, k, i, got[i], wantRef[i], tol[i])
		}
	}
}

// TestMatMulH checks MatMulNTH, MatMulNNH and MatMulNNAccH on every kernel
// path (the portable loops, avx2, avx512, and the bfloat16 kernels and
// their emulation where the CPU has AVX512_BF16), in both precisions,
// against the float32 products on the widened weights, bit for bit: the
// shapes reach the skinny products, ragged panels, odd depths, several
// blocks of k, B packed once or per task, MatMulNT's transposed evaluation
// and the split of deep products over k.
func TestMatMulH(t *testing.T) {
	pool := NewPool(2)
	defer pool.Close()
	serial := NewPool(1)
	defer serial.Close()
	paths := testPaths()
	for _, path := range gemmPaths() {
		if path.nativeBF16() {
			emulated := *path
			emulated.name += "-emulated"
			emulated.blockBF = nil
			paths = append(paths, &emulated)
		}
	}
	saved, savedChunk := prepackLimit, widenChunk
	defer func() { prepackLimit, widenChunk = saved, savedChunk }()
	for _, path := range paths {
		for _, prec := range []Precision{F32, BF16} {
			name := pathName(path) + "/" + prec.String()
			if prec == BF16 && path.nativeBF16() {
				name += "-" + path.bfKernel
			}
			t.Run(name, func(t *testing.T) {
				pool.SetPrecision(prec)
				serial.SetPrecision(prec)
				defer pool.SetPrecision(F32)
				withPath(path, func() {
					for _, variant := range []string{"NT", "NN=", "NN"} {
						for _, m := range []int{1, 4, 5, 13, 33, 97} {
							for _, n := range []int{1, 16, 31, 33, 65} {
								for _, k := range []int{1, 2, 13, 259, 800} {
									p := serial
									if (m+n+k)%2 == 0 {
										p = pool
									}
									checkMatMulH(t, p, hCase{variant, m, n, k, (m+n)%3 != 0}, 6, k < 800)
								}
							}
						}
					}
					// Limit 1000: B packed per task, the transposed
					// evaluation of MatMulNTH (5×1000×47); 20000: that
					// evaluation (40×1000×450) over
					// several blocks of k. The portable products widen B
					// in slabs of 8 rows of 1000 columns.
					for _, limit := range []int{saved, 1000, 20000} {
						prepackLimit = limit
						widenChunk = 8000
						for _, s := range []hCase{
							{"NT", 130, 290, 1000, true}, {"NT", 64, 1000, 47, true}, {"NT", 20, 1000, 47, true}, {"NT", 5, 1000, 47, true},
							{"NT", 20, 1000, 47, false}, {"NT", 200, 61, 900, true},
							{"NN=", 130, 290, 1000, false}, {"NN", 13, 40, 2001, false}, {"NN", 64, 200, 1600, false},
							{"NN", 100, 47, 64, false}, {"NN=", 13, 40, 2001, false},
							{"NT", 40, 1000, 450, true}, {"NN", 40, 1000, 450, false}, {"NN=", 40, 1000, 450, false},
						} {
							checkMatMulH(t, pool, s, 7, false)
							checkMatMulH(t, nil, s, 8, false)
						}
					}
					prepackLimit, widenChunk = saved, savedChunk
				})
			})
		}
	}
}

// TestPackH checks the packers of bfloat16 bits on every path bit for bit
// against the float32 packers on the widened values (portable and the
// path's own, whose agreement TestPackTranspose and TestPackBF16Asm check),
// for every kind of edge: odd depths, partial panels, rows off the 16- and
// 32-row grids, padded leading dimensions.
func TestPackH(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	same := func(t *testing.T, what string, got, want []float32) {
		t.Helper()
		for i := range want {
			if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
				t.Fatalf("%s: word %d: %#08x, want %#08x", what, i, math.Float32bits(got[i]), math.Float32bits(want[i]))
			}
		}
	}
	paths := append([]*gemmPath{{name: "portable", nr: 32}}, gemmPaths()...)
	for _, path := range paths {
		for _, kc := range []int{1, 2, 3, 31, 32, 33, 64, 191, 384} {
			for _, cols := range []int{1, 15, 16, 17, 32} {
				if cols > path.nr {
					continue
				}
				t.Run(fmt.Sprintf("%s/B/kc%d/cols%d", path.name, kc, cols), func(t *testing.T) {
					ld := max(kc, cols) + 3
					src, wide := randBF16(r, (max(kc, cols)+1)*ld)
					n := kc * path.nr
					got, want := randSlice(r, n), randSlice(r, n)
					packNGo(want, wide, ld, kc, cols)
					path.packNHOrGo()(got, src, ld, kc, cols)
					same(t, "packNH", got, want)
					packTGo(want, wide, ld, kc, cols)
					path.packTHOrGo()(got, src, ld, kc, cols)
					same(t, "packTH", got, want)
					if path.nr != 32 {
						return
					}
					n = bfRows(kc) * 32
					got, want = randSlice(r, n), randSlice(r, n)
					packNBFGo(want, wide, ld, kc, cols)
					path.packNBFHOrGo()(got, src, ld, kc, cols)
					same(t, "packNBFH", got, want)
					packTBFGo(want, wide, ld, kc, cols)
					path.packTBFHOrGo()(got, src, ld, kc, cols)
					same(t, "packTBFH", got, want)
				})
			}
			for _, rows := range []int{1, 12, 16, 31, 32, 33, 100, 192} {
				t.Run(fmt.Sprintf("%s/A/kc%d/rows%d", path.name, kc, rows), func(t *testing.T) {
					ld := kc + 5
					src, wide := randBF16(r, rows*ld)
					n := roundUp(rows, 32) * bfRows(kc)
					got, want := randSlice(r, n), randSlice(r, n)
					packABFGo(want, wide, ld, 1, kc, rows)
					path.packABFHOrGo()(got, src, ld, kc, rows)
					same(t, "packABFH", got, want)
				})
			}
		}
	}
}
