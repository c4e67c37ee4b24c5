//go:build amd64 && !purego

package kernels

import "unsafe"

//go:generate go run gen_gemm_amd64.go

// Assembly in gemm_amd64.s and pack_amd64.s.

func cpuid(eaxArg, ecxArg uint32) (eax, ebx, ecx, edx uint32)
func xgetbv() (eax, edx uint32)

//go:noescape
func packA12(dst, src *float32, ld, kc int, mask uint32)

//go:noescape
func packN512(dst, src *float32, ld, kc int, mask uint32)

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

// cpuHasBF16 reports AVX512_BF16 (VCVTNE2PS2BF16); call it only when cpuHas
// reports AVX-512.
func cpuHasBF16() bool {
	if maxID, _, _, _ := cpuid(0, 0); maxID < 7 {
		return false
	}
	eax, _, _, _ := cpuid(7, 1)
	return eax&(1<<5) != 0
}

// cpuHasAMXBF16 reports whether CPUID lists AMX-TILE and AMX-BF16; whether
// the tile unit may run (the OS state and Linux's permission) is amxEnable's
// question, asked when a bfloat16 product first runs.
func cpuHasAMXBF16() bool {
	if maxID, _, _, _ := cpuid(0, 0); maxID < 7 {
		return false
	}
	const amxBF16, amxTile = 1 << 22, 1 << 24
	_, _, _, edx7 := cpuid(7, 0)
	return edx7&(amxBF16|amxTile) == amxBF16|amxTile
}

// gemmPaths lists the micro-kernel paths this CPU supports, best first.
//
// With AVX512_BF16 the avx512 path has bfloat16 kernels: on the AMX tile
// unit where CPUID lists AMX-BF16 (NativeBF16 asks Linux for the tile state
// the first time a BF16 product runs), with VDPBF16PS otherwise. Where both
// exist, the path "avx512bf16" (the float32 kernels of avx512 with the
// VDPBF16PS kernel) is listed too, for RELUPO_KERNELS and the tests.
func gemmPaths() []*gemmPath {
	avx2, avx512 := cpuHas()
	var paths []*gemmPath
	if avx512 {
		p := &gemmPath{name: "avx512", mr: 12, nr: 32, kernel: kernel512, packN: packNAsm512, packT: packTAsm512, packA: packAAsm512, transpose: transposeAsm512,
			packNH: packNH512, packTH: packTH512, widen: widen512}
		if cpuHasBF16() {
			p.packNBF, p.packTBF, p.packABF = packNBF512, packTBF512, packABF512
			p.packNBFH, p.packTBFH, p.packABFH = packNBFH512, packTBFH512, packABFH512
			dp := *p
			dp.name, dp.bfKernel, dp.blockBF, dp.bfKC = "avx512bf16", "vdpbf16ps", blockDPBF, bfKCDP
			if cpuHasAMXBF16() {
				p.bfKernel, p.blockBF, p.bfReady, p.bfKC = "amx", blockAMX, amxEnable, 4*gemmKC
				paths = append(paths, p, &dp)
			} else {
				p.bfKernel, p.blockBF, p.bfKC = dp.bfKernel, dp.blockBF, dp.bfKC
				paths = append(paths, p)
			}
		} else {
			paths = append(paths, p)
		}
	}
	if avx2 {
		paths = append(paths, &gemmPath{name: "avx2", mr: 6, nr: 16, kernel: kernel256, packN: packNGo, packT: packTGo, packA: packA6, transpose: transposeGo})
	}
	return paths
}

type kernelFunc = func(a *float32, rsA, csA int, b *float32, ldb int, c *float32, ldc int, kc int, mask uint32, store bool)

var kernels512 = [...]kernelFunc{nil,
	gemmK512x1, gemmK512x2, gemmK512x3, gemmK512x4, gemmK512x5, gemmK512x6,
	gemmK512x7, gemmK512x8, gemmK512x9, gemmK512x10, gemmK512x11, gemmK512x12}

func colMask32(cols int) uint32 {
	if cols >= 32 {
		return ^uint32(0)
	}
	return 1<<uint(cols) - 1
}

// blockAMX is the bfloat16 block kernel of the avx512 path (gemmPath.blockBF),
// on the AMX tile unit: full 32×32 blocks go straight into C, and the
// partial ones (the last rows of a block, a panel narrower than 32 columns)
// into a 32×32 tile that is then added to C (with store, copied).
func blockAMX(a []float32, kc, rows int, bp *float32, c []float32, ldc, cols int, store bool) {
	kq := bfRows(kc)
	_ = a[roundUp(rows, 32)*kq-1]
	b16 := (*uint16)(unsafe.Pointer(bp))
	full := 0
	if cols == 32 {
		full = rows &^ 31
	}
	if full > 0 {
		_ = c[(full-1)*ldc+31]
		amxBF16Block((*uint16)(unsafe.Pointer(&a[0])), 4*kq, full, b16, 128, &c[0], 4*ldc, 2*kq, store)
	}
	for r0 := full; r0 < rows; r0 += 32 {
		var t [32 * 32]float32
		amxBF16Block((*uint16)(unsafe.Pointer(&a[r0*kq])), 4*kq, 32, b16, 128, &t[0], 128, 2*kq, true)
		for i := 0; i < min(32, rows-r0); i++ {
			row := c[(r0+i)*ldc : (r0+i)*ldc+cols]
			if store {
				copy(row, t[i*32:])
				continue
			}
			for j := range row {
				row[j] += t[i*32+j]
			}
		}
	}
}

func kernel512(rows int, a *float32, rsA, csA int, b *float32, ldb int, c *float32, ldc int, kc, cols int, store bool) {
	kernels512[rows](a, rsA, csA, b, ldb, c, ldc, kc, colMask32(cols), store)
}

func packNAsm512(dst []float32, src []float32, ld, kc, cols int) {
	_ = dst[32*kc-1]
	packN512(&dst[0], &src[0], 4*ld, kc, colMask32(cols))
}

// packTAsm512 packs a panel of Bᵀ by register transposes (transpose16): the
// gathers (VGATHERDPS) that it used before cost several cycles per element on CPUs with the
// gather-data-sampling fix, which made packing B a fifth of a forward
// product's time. Columns past cols are zeroed.
// packAAsm512 is packA for 12-row panels with a masked copy of twelve floats
// a step (packA12); the Go loop, which copies through memmove for the
// ragged panels, took 8–9% of the TN products' profiles.
func packAAsm512(dst, src []float32, ld, kc, rows int) {
	if rows == 0 || kc == 0 {
		return
	}
	_ = dst[roundUp(rows, 12)*kc-1]
	_ = src[(kc-1)*ld+rows-1]
	for p0 := 0; p0 < rows; p0 += 12 {
		packA12(&dst[p0*kc], &src[p0], 4*ld, kc, uint32(1)<<min(12, rows-p0)-1)
	}
}

func packA6(dst, src []float32, ld, kc, rows int) { packA(dst, src, ld, kc, rows, 6) }

func packTAsm512(dst []float32, src []float32, ld, kc, cols int) {
	_ = dst[32*kc-1]
	if cols < 32 {
		clear(dst[:32*kc])
	}
	transpose16(dst, src, 32, ld, cols, kc)
}

type kernelFunc256 = func(a *float32, rsA, csA int, b *float32, ldb int, c *float32, ldc int, kc int, mask *int32, store bool)

var kernels256 = [...]kernelFunc256{nil,
	gemmK256x1, gemmK256x2, gemmK256x3, gemmK256x4, gemmK256x5, gemmK256x6}

// maskTable256[16-cols:] starts with cols entries of -1: the VMASKMOVPS
// masks of a 16-column panel with cols valid columns.
var maskTable256 = [32]int32{-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1}

func kernel256(rows int, a *float32, rsA, csA int, b *float32, ldb int, c *float32, ldc int, kc, cols int, store bool) {
	kernels256[rows](a, rsA, csA, b, ldb, c, ldc, kc, &maskTable256[16-min(cols, 16)], store)
}

func transposeAsm512(dst, src []float32, ldd, lds, rows, cols int) {
	transpose16(dst, src, ldd, lds, rows, cols)
}

// transpose16 sets dst[j·ldd + i] = src[i·lds + j] for i < rows, j < cols:
// whole 16×16 blocks in registers (transpose16x16, a strip of 16 rows per
// call), the ragged edges element by element.
func transpose16(dst, src []float32, ldd, lds, rows, cols int) {
	if rows == 0 || cols == 0 {
		return
	}
	_ = dst[(cols-1)*ldd+rows-1]
	_ = src[(rows-1)*lds+cols-1]
	r16, c16 := rows&^15, cols&^15
	if c16 > 0 {
		for i := 0; i < r16; i += 16 {
			transpose16x16(&dst[i], &src[i*lds], 4*lds, 4*ldd, c16/16)
		}
	}
	for i := 0; i < rows; i++ {
		j0 := c16
		if i >= r16 {
			j0 = 0
		}
		s := src[i*lds : i*lds+cols]
		for j := j0; j < cols; j++ {
			dst[j*ldd+i] = s[j]
		}
	}
}

//go:noescape
func dot512(a, b *float32, n int) float32

//go:noescape
func dotH512(a *float32, b *uint16, n int) float32

//go:noescape
func axpy512(y, x *float32, a float32, n int)

//go:noescape
func scal512(x *float32, a float32, n int)

//go:noescape
func softmaxBwd512(dr, p *float32, d, s float32, n int)

// scalFast computes scal with AVX-512 when that path is in use.
func scalFast(x []float32, a float32) bool {
	if !vec512 || len(x) == 0 {
		return false
	}
	scal512(&x[0], a, len(x))
	return true
}

// softmaxBwdFast computes softmaxBwdRow with AVX-512 when that path is in
// use.
func softmaxBwdFast(dr, p []float32, d, s float32) bool {
	if !vec512 || len(dr) == 0 {
		return false
	}
	_ = p[len(dr)-1]
	softmaxBwd512(&dr[0], &p[0], d, s, len(dr))
	return true
}

// dotFast computes Dot with AVX-512 when that path is in use.
func dotFast(a, b []float32) (float32, bool) {
	if !vec512 || len(a) < 8 {
		return 0, false
	}
	_ = b[len(a)-1]
	return dot512(&a[0], &b[0], len(a)), true
}

// dotHFast computes Dot(a, widened b) with AVX-512 when that path is in
// use: the same result as dotFast on the widened b, bit for bit.
func dotHFast(a []float32, b []uint16) (float32, bool) {
	if !vec512 || len(a) < 8 {
		return 0, false
	}
	_ = b[len(a)-1]
	return dotH512(&a[0], &b[0], len(a)), true
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

//go:noescape
func sumSq512(x *float32, n int) float64

//go:noescape
func rmsScale512(out, x, w *float32, rs float32, n int)

//go:noescape
func rmsBwdDot512(dwp, dr, xr, w *float32, rs float32, n int) float64

//go:noescape
func rmsBwdDx512(dxr, dr, xr, w *float32, rs, dot float32, n int)

//go:noescape
func rope512(x1, x2, c, s *float32, n int, inverse bool)

// The row loops of RMSNorm and RoPE with AVX-512 when that path is in use
// (see the Go loops in ops.go, whose float32 operations they repeat).

func sumSqFast(x []float32) (float64, bool) {
	if !vec512 || len(x) == 0 {
		return 0, false
	}
	return sumSq512(&x[0], len(x)), true
}

func rmsScaleFast(out, x, w []float32, rs float32) bool {
	if !vec512 || len(x) == 0 {
		return false
	}
	_, _ = out[len(x)-1], w[len(x)-1]
	rmsScale512(&out[0], &x[0], &w[0], rs, len(x))
	return true
}

func rmsBwdDotFast(dwp, dr, xr, w []float32, rs float32) (float64, bool) {
	if !vec512 || len(dr) == 0 {
		return 0, false
	}
	_, _, _ = dwp[len(dr)-1], xr[len(dr)-1], w[len(dr)-1]
	return rmsBwdDot512(&dwp[0], &dr[0], &xr[0], &w[0], rs, len(dr)), true
}

func rmsBwdDxFast(dxr, dr, xr, w []float32, rs, dot float32) bool {
	if !vec512 || len(dr) == 0 {
		return false
	}
	_, _, _ = dxr[len(dr)-1], xr[len(dr)-1], w[len(dr)-1]
	rmsBwdDx512(&dxr[0], &dr[0], &xr[0], &w[0], rs, dot, len(dr))
	return true
}

func ropeFast(x1, x2, c, s []float32, inverse bool) bool {
	if !vec512 || len(c) == 0 {
		return false
	}
	_, _, _ = x1[len(c)-1], x2[len(c)-1], s[len(c)-1]
	rope512(&x1[0], &x2[0], &c[0], &s[0], len(c), inverse)
	return true
}
