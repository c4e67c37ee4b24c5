//go:build amd64 && !purego

package kernels

// Assembly in bf16_amd64.s (AVX512_BF16).

//go:noescape
func cvtBF16Row(dst, src *float32, n, words int)

//go:noescape
func cvtBF16Pairs(dst, r0, r1 *float32, n, words int)

// zeroRow is the missing second row of an odd kc: pairRowsBF converts at
// most nr columns of B or gemmMC rows of A, far fewer than its length.
var zeroRow [gemmMaxNT + 64]float32

// The AVX-512 packers of the bfloat16 operands, with the layouts and
// contracts of the portable reference packers packNBFGo, packTBFGo and
// packABFGo (bf16_ref_test.go).

// pairRowsBF writes pair rows s < rows, ldd words each (a multiple of 16),
// to dst: word j of row s holds the bfloat16 of src[2s·ld + j] and
// src[(2s+1)·ld + j] for j < n, with zero for the rows of src at or past kc
// and for j ≥ n.
func pairRowsBF(dst []float32, ldd int, src []float32, ld, kc, n, rows int) {
	_ = src[(kc-1)*ld+n-1]
	_ = dst[rows*ldd-1]
	_ = zeroRow[n-1]
	for s := 0; s < rows; s++ {
		switch {
		case 2*s+1 < kc:
			cvtBF16Pairs(&dst[s*ldd], &src[2*s*ld], &src[(2*s+1)*ld], n, ldd)
		case 2*s < kc:
			cvtBF16Pairs(&dst[s*ldd], &src[2*s*ld], &zeroRow[0], n, ldd)
		default:
			clear(dst[s*ldd : (s+1)*ldd])
		}
	}
}

func packNBF512(dst, src []float32, ld, kc, cols int) {
	rows := bfRows(kc)
	pairRowsBF(dst, len(dst)/rows, src, ld, kc, cols, rows)
}

func packTBF512(dst, src []float32, ld, kc, cols int) {
	rows := bfRows(kc)
	nr := len(dst) / rows
	_ = src[(cols-1)*ld+kc-1]
	// Convert each column's row of Bᵀ, then transpose the words.
	tb := getBuf(nr * rows)
	defer putBuf(tb)
	t := *tb
	for j := 0; j < cols; j++ {
		cvtBF16Row(&t[j*rows], &src[j*ld], kc, rows)
	}
	clear(t[cols*rows:])
	transposeAsm512(dst, t, nr, rows, nr, rows)
}

func packABF512(dst, src []float32, rsA, csA, kc, rows int) {
	kq := bfRows(kc)
	clear(dst[rows*kq : roundUp(rows, 32)*kq])
	if csA == 1 {
		_ = src[(rows-1)*rsA+kc-1]
		_ = dst[rows*kq-1]
		for i := 0; i < rows; i++ {
			cvtBF16Row(&dst[i*kq], &src[i*rsA], kc, kq)
		}
		return
	}
	// Aᵀ: pair the rows of the source (steps 2s and 2s+1, contiguous over
	// A's rows), then transpose the words.
	ldt := roundUp(rows, 16)
	tb := getBuf(kq * ldt)
	defer putBuf(tb)
	pairRowsBF(*tb, ldt, src, csA, kc, rows, kq)
	transposeAsm512(dst, *tb, kq, ldt, kq, rows)
}
