//go:build amd64 && !purego

package kernels

// AMX-BF16 micro-kernel, assembly in amx_amd64.s. Nothing calls it yet: it is
// meant to be plugged into the blocked GEMM driver once the bf16 packing
// exists, behind amxEnable.
//
// Layouts (all strides in bytes):
//
//   - A: bf16 bit patterns, row-major, rows × kc, row stride lda. kc is a
//     multiple of 32 (the caller zero-pads the tail of k).
//   - B: a panel of 32 columns in "VNNI pair" layout: for k-pair p (k = 2p,
//     2p+1) and column j, B[2p, j] and B[2p+1, j] sit at byte offsets
//     p*ldb + 4*j and p*ldb + 4*j + 2. ldb is normally 32*4 = 128 bytes.
//   - C: float32, row-major, row stride ldc; the kernel accumulates into it.
//
// Products are accumulated in float32 inside the tiles; C is loaded into
// the tiles once per 32×32 block and stored back once, so each C element gets
// one rounding per TDPBF16PS (32 products) plus the initial load.
//
// The tile configuration is per thread and is loaded (LDTILECFG) at the
// start of every call and released (TILERELEASE) at its end, so no tile state
// outlives a call and goroutines may move between threads freely between
// calls. A call is an assembly function without preemption points, so it
// runs on one thread from start to end.

// amxBF16Block computes C[rows×32] += A[rows×kc]·B[kc×32] in blocks of 32×32
// (with store, C = A·B: C is not read), loading the tile configuration once
// per call. rows and kc must be multiples of 32 (other values are rounded
// down to one; zero rows or depth do nothing). The caller must have checked
// amxEnable.
//
//go:noescape
func amxBF16Block(a *uint16, lda, rows int, b *uint16, ldb int, c *float32, ldc int, kc int, store bool)

// amxTileConfigRelease loads the tile configuration and releases it again:
// the fixed cost that every amxBF16Block call pays, for benchmarks.
func amxTileConfigRelease()

// amxBF16Kernel32x32 computes C[32×32] += A[32×kc]·B[kc×32]: amxBF16Block
// for one row block. The caller must have checked amxEnable.
func amxBF16Kernel32x32(a *uint16, lda int, b *uint16, ldb int, c *float32, ldc int, kc int) {
	amxBF16Block(a, lda, 32, b, ldb, c, ldc, kc, false)
}

// amxTDPPeak runs n steps of four TDPBF16PS on zeroed tiles without memory
// operands and stores the first (all-zero) 16×16 C tile to c with a row
// stride of 64 bytes: the tile unit's compute ceiling, for benchmarks.
//
//go:noescape
func amxTDPPeak(n int, c *float32)
