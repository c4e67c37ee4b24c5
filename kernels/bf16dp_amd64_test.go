//go:build amd64 && !purego

package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"unsafe"
)

// dpSkip skips the test when the CPU has no AVX512_BF16 (or no AVX-512).
func dpSkip(t *testing.T) {
	t.Helper()
	if _, ok := cpuHas(); !ok || !cpuHasBF16() {
		t.Skip("no AVX512_BF16 on this CPU")
	}
}

// TestDPBF16Kernels checks every row count of the VDPBF16PS micro-kernel
// against the float64 reference of the AMX tests (amxOperands: A and the
// B panel in the same layouts, padding filled with NaN that a stray read
// would carry into C, and C's columns past 32 filled with a NaN pattern
// that must survive), for depths of one trip up to a whole block, strides of
// A and C that are not multiples of a cache line, accumulating onto zero
// and non-zero C and storing over it. The tolerance is the float32
// summation bound of amxOperands.reference: the products of two bfloat16
// are exact, so only the additions round, in whatever order VDPBF16PS adds.
func TestDPBF16Kernels(t *testing.T) {
	dpSkip(t)
	for rows := 1; rows <= bfRowsDP; rows++ {
		for _, tt := range []struct {
			kc       int
			lda, ldc int // extra elements beyond kc and 32
			nonZeroC bool
			store    bool
		}{
			{32, 0, 0, false, false},
			{64, 2, 1, true, false},
			{384, 6, 3, true, false},
			{768, 0, 0, true, false},
			{64, 2, 1, true, true},
		} {
			name := fmt.Sprintf("rows%d/kc%d/lda+%d/ldc+%d/c0=%v/store=%v", rows, tt.kc, tt.lda, tt.ldc, tt.nonZeroC, tt.store)
			t.Run(name, func(t *testing.T) {
				r := rand.New(rand.NewPCG(uint64(rows), uint64(tt.kc)))
				gen := func() float32 { return float32(r.NormFloat64()) }
				c0 := func() float32 { return 0 }
				if tt.nonZeroC {
					c0 = func() float32 { return float32(10 * r.NormFloat64()) }
				}
				o := newAMXOperands(rows, tt.kc, tt.kc+tt.lda, 64, 32+tt.ldc, gen, c0)
				ref := o.c
				if tt.store {
					ref = make([]float32, len(o.c))
				}
				want, tol := o.reference(ref)
				kernelsBF512[rows]((*float32)(unsafe.Pointer(&o.a[0])), 2*o.lda, (*float32)(unsafe.Pointer(&o.b[0])), &o.c[0], 4*o.ldc, tt.kc/2, ^uint32(0), tt.store)
				o.check(t, want, tol)
			})
		}
	}
}

// TestDPBF16Block checks blockDPBF, which cuts a block into calls of up to
// twelve rows: row counts across the cut, panels narrower than 32 columns
// (whose columns past cols must keep their NaN), odd and multi-trip
// depths, against C + A·B in float64 on the bfloat16 values, within the
// float32 summation bound.
func TestDPBF16Block(t *testing.T) {
	dpSkip(t)
	r := rand.New(rand.NewPCG(3, 4))
	for _, rows := range []int{1, 11, 12, 13, 25, 96, 192} {
		for _, cols := range []int{1, 15, 16, 17, 31, 32} {
			for _, kc := range []int{1, 31, 33, 384} {
				for _, store := range []bool{false, true} {
					kq := bfRows(kc)
					a := make([]float32, roundUp(rows, 32)*kq)
					b := make([]float32, kq*32)
					src := randSlice(r, max(rows, 32)*kc)
					packABF512(a, src, kc, 1, kc, rows)
					bsrc := randSlice(r, kc*32)
					packNBF512(b, bsrc, 32, kc, 32)
					const ldc = 35
					c := make([]float32, rows*ldc)
					for i := range c {
						c[i] = math.Float32frombits(amxNaN32)
					}
					for i := 0; i < rows; i++ {
						for j := 0; j < cols; j++ {
							c[i*ldc+j] = float32(r.NormFloat64())
						}
					}
					want := append([]float32(nil), c...)
					blockDPBF(a, kc, rows, &b[0], c, ldc, cols, store)
					bad := 0
					for i := 0; i < rows; i++ {
						for j := 0; j < ldc; j++ {
							got := c[i*ldc+j]
							if j >= cols {
								if math.Float32bits(got) != amxNaN32 {
									t.Fatalf("rows %d cols %d kc %d: C[%d,%d] past the panel's columns overwritten: %v", rows, cols, kc, i, j, got)
								}
								continue
							}
							s, abs := 0.0, 0.0
							if !store {
								s, abs = float64(want[i*ldc+j]), math.Abs(float64(want[i*ldc+j]))
							}
							for l := 0; l < kc; l++ {
								p := float64(RoundBF16(src[i*kc+l])) * float64(RoundBF16(bsrc[l*32+j]))
								s += p
								abs += math.Abs(p)
							}
							n := float64(kc + 1)
							if tol := n * 0x1p-24 / (1 - n*0x1p-24) * abs; !(math.Abs(float64(got)-s) <= tol) {
								if bad++; bad <= 3 {
									t.Errorf("rows %d cols %d kc %d store %v: C[%d,%d] = %v, want %v ± %.3g", rows, cols, kc, store, i, j, got, s, tol)
								}
							}
						}
					}
				}
			}
		}
	}
}

// TestKernelPathsBF16 runs the bfloat16 tests that use the path in use
// (attention's products) again in a
// child process with RELUPO_KERNELS=avx512bf16 (read once, when the
// package initializes), so that the VDPBF16PS kernel is tested on every run
// on a CPU with AVX512_BF16 even where AMX is the default; on a CPU without
// AMX it is the default, and the child checks that forcing selects it.
func TestKernelPathsBF16(t *testing.T) {
	dpSkip(t)
	if os.Getenv("RELUPO_KERNELS") != "" {
		t.Skip("already running on a forced kernel path")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^(TestAttentionBF16|TestForcedPathBF16)$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), "RELUPO_KERNELS=avx512bf16")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("with RELUPO_KERNELS=avx512bf16: %v\n%s", err, out)
	}
	for _, want := range []string{"--- PASS: TestAttentionBF16", "--- PASS: TestForcedPathBF16"} {
		if !strings.Contains(string(out), want) {
			t.Fatalf("with RELUPO_KERNELS=avx512bf16 %q is missing:\n%s", want, out)
		}
	}
}

// TestForcedPathBF16 checks, when RELUPO_KERNELS=avx512bf16 is set on a CPU
// with AVX512_BF16, that the path in use runs the BF16 precision on the
// VDPBF16PS kernel and the float32 vector loops on AVX-512.
func TestForcedPathBF16(t *testing.T) {
	dpSkip(t)
	if os.Getenv("RELUPO_KERNELS") != "avx512bf16" {
		t.Skip("RELUPO_KERNELS is not avx512bf16")
	}
	if gemmImpl == nil || gemmImpl.bfKernel != "vdpbf16ps" || !NativeBF16() || !vec512 {
		t.Fatalf("RELUPO_KERNELS=avx512bf16 selected %s (vec512 %v, NativeBF16 %v)", Describe(), vec512, NativeBF16())
	}
	if got, want := Describe(), "(bf16: vdpbf16ps)"; !strings.HasSuffix(got, want) {
		t.Errorf("Describe() = %q, want a name ending in %q", got, want)
	}
}

// BenchmarkKernelDPBF16 times the 12×32 VDPBF16PS micro-kernel alone on one
// core with its operands in cache (kc steps: kc/2 pair steps), the ceiling
// of the bfloat16 products on CPUs without AMX; compare BenchmarkKernel512.
func BenchmarkKernelDPBF16(b *testing.B) {
	for _, kc := range []int{64, 128, 256, 384, 768} {
		b.Run(fmt.Sprint("kc", kc), func(b *testing.B) {
			if _, ok := cpuHas(); !ok || !cpuHasBF16() {
				b.Skip("no AVX512_BF16")
			}
			kq := bfRows(kc)
			a := make([]float32, 12*kq)
			bp := make([]float32, kq*32)
			c := make([]float32, 12*32)
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			t0 := threadCPU()
			for b.Loop() {
				gemmBF512x12(&a[0], 4*kq, &bp[0], &c[0], 128, kq, ^uint32(0), false)
			}
			flop := 2 * 12 * 32 * float64(kc) * float64(b.N)
			b.ReportMetric(flop/b.Elapsed().Seconds()/1e9, "GFLOP/s")
			if cpu := threadCPU() - t0; cpu > 0 {
				b.ReportMetric(flop/cpu/1e9, "GFLOP/s-cpu")
			}
		})
	}
}
