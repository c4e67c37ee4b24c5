//go:build amd64 && !purego

package kernels

//go:generate go run gen_gemm_amd64.go

// Assembly in gemm_amd64.s and pack_amd64.s.

func cpuid(eaxArg, ecxArg uint32) (eax, ebx, ecx, edx uint32)
func xgetbv() (eax, edx uint32)

//go:noescape
func packN512(dst, src *float32, ld, kc int, mask uint32)

//go:noescape
func packT512(dst, src *float32, ld, kc int, mask uint32, ldd int)

// cpuHas reports whether the CPU and the operating system support AVX2 with
// FMA, and AVX-512 F (with the opmask and upper-ZMM state enabled).
func cpuHas() (avx2, avx512 bool) {
	maxID, _, _, _ := cpuid(0, 0)
	if maxID < 7 {
		return false, false
	}
	_, _, ecx1, _ := cpuid(1, 0)
	const (
		fma     = 1 << 12
		osxsave = 1 << 27
		avx     = 1 << 28
	)
	if ecx1&(fma|osxsave|avx) != fma|osxsave|avx {
		return false, false
	}
	xcr0, _ := xgetbv()
	if xcr0&0x6 != 0x6 { // XMM and YMM state
		return false, false
	}
	_, ebx7, _, _ := cpuid(7, 0)
	const (
		bitAVX2    = 1 << 5
		bitAVX512F = 1 << 16
	)
	avx2 = ebx7&bitAVX2 != 0
	avx512 = avx2 && ebx7&bitAVX512F != 0 && xcr0&0xe6 == 0xe6 // opmask, ZMM_Hi256, Hi16_ZMM
	return avx2, avx512
}

// cpuHasBF16 reports AVX512_BF16 (VDPBF16PS, VCVTNEPS2BF16); call it only
// when cpuHas reports AVX-512.
func cpuHasBF16() bool {
	maxID, _, _, _ := cpuid(0, 0)
	if maxID < 7 {
		return false
	}
	eax, _, _, _ := cpuid(7, 1)
	return eax&(1<<5) != 0
}

// gemmPaths lists the micro-kernel paths this CPU supports, best first.
func gemmPaths() []*gemmPath {
	avx2, avx512 := cpuHas()
	var paths []*gemmPath
	if avx512 {
		p := &gemmPath{name: "avx512", mr: 12, nr: 32, kernel: kernel512, packN: packNAsm512, packT: packTAsm512, transpose: transposeAsm512}
		if cpuHasBF16() {
			p.kernelBF, p.packNBF, p.packTBF, p.packABF = kernelBF512, packNBFGo, packTBFGo, packABFGo
		}
		paths = append(paths, p)
	}
	if avx2 {
		paths = append(paths, &gemmPath{name: "avx2", mr: 6, nr: 16, kernel: kernel256, packN: packNGo, packT: packTGo, transpose: transposeGo})
	}
	return paths
}

type kernelFunc = func(a *float32, rsA, csA int, b *float32, ldb int, c *float32, ldc int, kc int, mask uint32)

var kernels512 = [...]kernelFunc{nil,
	gemmK512x1, gemmK512x2, gemmK512x3, gemmK512x4, gemmK512x5, gemmK512x6,
	gemmK512x7, gemmK512x8, gemmK512x9, gemmK512x10, gemmK512x11, gemmK512x12}

func colMask32(cols int) uint32 {
	if cols >= 32 {
		return ^uint32(0)
	}
	return 1<<uint(cols) - 1
}

var kernelsBF512 = [...]kernelFunc{nil,
	gemmB512x1, gemmB512x2, gemmB512x3, gemmB512x4, gemmB512x5, gemmB512x6,
	gemmB512x7, gemmB512x8, gemmB512x9, gemmB512x10, gemmB512x11, gemmB512x12}

func kernelBF512(rows int, a *float32, rsA, csA int, b *float32, ldb int, c *float32, ldc int, kc, cols int) {
	kernelsBF512[rows](a, rsA, csA, b, ldb, c, ldc, kc, colMask32(cols))
}

func kernel512(rows int, a *float32, rsA, csA int, b *float32, ldb int, c *float32, ldc int, kc, cols int) {
	kernels512[rows](a, rsA, csA, b, ldb, c, ldc, kc, colMask32(cols))
}

func packNAsm512(dst []float32, src []float32, ld, kc, cols int) {
	_ = dst[32*kc-1]
	packN512(&dst[0], &src[0], 4*ld, kc, colMask32(cols))
}

func packTAsm512(dst []float32, src []float32, ld, kc, cols int) {
	_ = dst[32*kc-1]
	packT512(&dst[0], &src[0], 4*ld, kc, colMask32(cols), 128)
}

type kernelFunc256 = func(a *float32, rsA, csA int, b *float32, ldb int, c *float32, ldc int, kc int, mask *int32)

var kernels256 = [...]kernelFunc256{nil,
	gemmK256x1, gemmK256x2, gemmK256x3, gemmK256x4, gemmK256x5, gemmK256x6}

// maskTable256[16-cols:] starts with cols entries of -1: the VMASKMOVPS
// masks of a 16-column panel with cols valid columns.
var maskTable256 = [32]int32{-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1}

func kernel256(rows int, a *float32, rsA, csA int, b *float32, ldb int, c *float32, ldc int, kc, cols int) {
	kernels256[rows](a, rsA, csA, b, ldb, c, ldc, kc, &maskTable256[16-min(cols, 16)])
}

func transposeAsm512(dst, src []float32, ldd, lds, rows, cols int) {
	if rows == 0 || cols == 0 {
		return
	}
	_ = dst[(cols-1)*ldd+rows-1]
	_ = src[(rows-1)*lds+cols-1]
	for i := 0; i < rows; i += 32 {
		packT512(&dst[i], &src[i*lds], 4*lds, cols, colMask32(rows-i), 4*ldd)
	}
}

//go:noescape
func dot512(a, b *float32, n int) float32

//go:noescape
func axpy512(y, x *float32, a float32, n int)

// dotFast computes Dot with AVX-512 when that path is in use.
func dotFast(a, b []float32) (float32, bool) {
	if !vec512 || len(a) < 8 {
		return 0, false
	}
	_ = b[len(a)-1]
	return dot512(&a[0], &b[0], len(a)), true
}

// axpyFast computes Axpy with AVX-512 when that path is in use.
func axpyFast(y []float32, a float32, x []float32) bool {
	if !vec512 || len(y) < 8 {
		return false
	}
	_ = x[len(y)-1]
	axpy512(&y[0], &x[0], a, len(y))
	return true
}
