//go:build amd64 && !purego

package kernels

// Assembly in bf16_amd64.s (AVX512_BF16).

//go:noescape
func cvtBF16Row(dst, src *float32, n, words int)

//go:noescape
func cvtBF16Pairs(dst, r0, r1 *float32, n, words int)

// zeroRow is a row of zeros for the missing second value of an odd kc.
var zeroRow [gemmMaxNT + 64]float32

// The AVX-512 packers of the bfloat16 operands, with the layouts and
// contracts of packNBFGo, packTBFGo and packABFGo (bf16.go).

func packNBF512(dst, src []float32, ld, kc, cols int) {
	rows := bfRows(kc)
	nr := len(dst) / rows
	_ = src[(kc-1)*ld+cols-1]
	for s := 0; s < rows; s++ {
		d := dst[s*nr : s*nr+nr]
		switch {
		case 2*s+1 < kc:
			cvtBF16Pairs(&d[0], &src[2*s*ld], &src[(2*s+1)*ld], cols, nr)
		case 2*s < kc:
			cvtBF16Pairs(&d[0], &src[2*s*ld], &zeroRow[0], cols, nr)
		default:
			clear(d)
		}
	}
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
	_ = src[(kc-1)*csA+rows-1]
	tb := getBuf(kq * ldt)
	defer putBuf(tb)
	t := *tb
	for s := 0; s < kq; s++ {
		switch {
		case 2*s+1 < kc:
			cvtBF16Pairs(&t[s*ldt], &src[2*s*csA], &src[(2*s+1)*csA], rows, ldt)
		case 2*s < kc:
			cvtBF16Pairs(&t[s*ldt], &src[2*s*csA], &zeroRow[0], rows, ldt)
		default:
			clear(t[s*ldt : (s+1)*ldt])
		}
	}
	transposeAsm512(dst, t, kq, ldt, kq, rows)
}
