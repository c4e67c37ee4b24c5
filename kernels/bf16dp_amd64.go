//go:build amd64 && !purego

package kernels

// The AVX512_BF16 block kernel: the bfloat16 products on CPUs without AMX
// (AMD Zen 4 and 5, Intel Cooper Lake), with the operands of the AMX kernel
// packed the same way (bf16.go) and the same numbers up to the order of the
// float32 sums: VDPBF16PS multiplies two pairs of bfloat16 exactly and adds
// both products to a float32 accumulator, 32 products per instruction
// against the 16 of a float32 FMA, at the same instruction rate on these
// CPUs. Kernels in gemm_amd64.s (gen_gemm_amd64.go).

var kernelsBF512 = [...]func(a *float32, lda int, b *float32, c *float32, ldc int, kq int, mask uint32, store bool){nil,
	gemmBF512x1, gemmBF512x2, gemmBF512x3, gemmBF512x4, gemmBF512x5, gemmBF512x6,
	gemmBF512x7, gemmBF512x8, gemmBF512x9, gemmBF512x10, gemmBF512x11, gemmBF512x12}

// bfRowsDP is the most rows of C one gemmBF512 call computes.
const bfRowsDP = len(kernelsBF512) - 1

// blockDPBF is the bfloat16 block kernel (gemmPath.blockBF) on AVX512_BF16:
// C[rows×cols] (+)= A·Bp for a packed block of A (bfRows(kc) words a row)
// and a packed panel of 32 columns, bfRowsDP rows of C a call. The kernels
// mask the columns past cols and never touch the rows past rows, so unlike
// the tile kernel they need no scratch tile for ragged blocks.
func blockDPBF(a []float32, kc, rows int, bp *float32, c []float32, ldc, cols int, store bool) {
	if rows == 0 {
		return
	}
	kq := bfRows(kc)
	_ = a[rows*kq-1]
	_ = c[(rows-1)*ldc+cols-1]
	mask := colMask32(cols)
	for i := 0; i < rows; i += bfRowsDP {
		r := min(bfRowsDP, rows-i)
		kernelsBF512[r](&a[i*kq], 4*kq, bp, &c[i*ldc], 4*ldc, kq, mask, store)
	}
}

// bfKCDP is the depth of a block of k for the VDPBF16PS kernel
// (gemmPath.bfKC): 384 steps make a panel of B 192 pair rows of 128 bytes,
// 24 KiB, which stays in L1 with the kernel's rows of A while the block's
// rows of C pass over it.
const bfKCDP = 384
