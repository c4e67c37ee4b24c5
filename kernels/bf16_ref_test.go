package kernels

import "math"

// The portable packers of the bfloat16 operands: the specification the
// AVX512_BF16 packers (bf16_amd64.go) are tested against, bit for bit, in
// the layouts bf16.go describes.

// bf16Pair packs RoundBF16(lo) and RoundBF16(hi) into one 32-bit word, lo in
// the low half: the pair layout the bfloat16 dot-product instructions read.
func bf16Pair(lo, hi float32) float32 {
	return math.Float32frombits(uint32(bf16Bits(lo)) | uint32(bf16Bits(hi))<<16)
}

// packNBFGo packs the bfloat16 panel of op(B)[l, j] = src[l·ld + j] into
// dst, bfRows(kc) pair rows of len(dst)/bfRows(kc) words.
func packNBFGo(dst, src []float32, ld, kc, cols int) {
	rows := bfRows(kc)
	nr := len(dst) / rows
	for s := 0; s < rows; s++ {
		d := dst[s*nr : s*nr+nr]
		switch {
		case 2*s+1 < kc:
			r0, r1 := src[2*s*ld:2*s*ld+cols], src[(2*s+1)*ld:(2*s+1)*ld+cols]
			for j, v := range r0 {
				d[j] = bf16Pair(v, r1[j])
			}
		case 2*s < kc:
			for j, v := range src[2*s*ld : 2*s*ld+cols] {
				d[j] = bf16Pair(v, 0)
			}
		default:
			clear(d[:cols])
		}
		clear(d[cols:])
	}
}

// packTBFGo packs the bfloat16 panel of op(B)[l, j] = src[j·ld + l].
func packTBFGo(dst, src []float32, ld, kc, cols int) {
	rows := bfRows(kc)
	nr := len(dst) / rows
	if cols < nr {
		clear(dst)
	}
	for j := 0; j < cols; j++ {
		packRowBF(dst[j:], nr, rows, src[j*ld:j*ld+kc])
	}
}

// packRowBF writes the pairs (row[2s], row[2s+1]) to dst[s·stride] for s <
// rows, zero past the end of row.
func packRowBF(dst []float32, stride, rows int, row []float32) {
	kc := len(row)
	s := 0
	for ; 2*s+1 < kc; s++ {
		dst[s*stride] = bf16Pair(row[2*s], row[2*s+1])
	}
	if kc%2 == 1 {
		dst[s*stride] = bf16Pair(row[kc-1], 0)
		s++
	}
	for ; s < rows; s++ {
		dst[s*stride] = 0
	}
}

// packABFGo packs rows [0, rows) and steps [0, kc) of op(A)[i, l] =
// src[i·rsA + l·csA] (rsA = 1 or csA = 1) as a bfloat16 block of
// bfRows(kc) words per row, and zeroes the rows from rows up to the next
// multiple of 32 (the AMX kernel's row block).
func packABFGo(dst, src []float32, rsA, csA, kc, rows int) {
	kq := bfRows(kc)
	clear(dst[rows*kq : roundUp(rows, 32)*kq])
	if csA == 1 {
		for i := 0; i < rows; i++ {
			packRowBF(dst[i*kq:], 1, kq, src[i*rsA:i*rsA+kc])
		}
		return
	}
	// Aᵀ: step l of every row is the contiguous src[l·csA : l·csA + rows].
	for s := 0; s < kq; s++ {
		switch {
		case 2*s+1 < kc:
			r0, r1 := src[2*s*csA:2*s*csA+rows], src[(2*s+1)*csA:(2*s+1)*csA+rows]
			for i, v := range r0 {
				dst[i*kq+s] = bf16Pair(v, r1[i])
			}
		case 2*s < kc:
			for i, v := range src[2*s*csA : 2*s*csA+rows] {
				dst[i*kq+s] = bf16Pair(v, 0)
			}
		default:
			for i := 0; i < rows; i++ {
				dst[i*kq+s] = 0
			}
		}
	}
}
