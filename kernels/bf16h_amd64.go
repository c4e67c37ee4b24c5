//go:build amd64 && !purego

package kernels

import (
	"math"
	"unsafe"
)

// Assembly in bf16h_amd64.s: the AVX-512 packers of bfloat16 bits, with the
// layouts and contracts of the portable ones (bf16h.go), against which
// TestPackH checks them bit for bit. Whole panels of 32 columns run in
// assembly; the narrower edge panels use the portable loops.

//go:noescape
func widenRow512(dst *float32, src *uint16, n int)

//go:noescape
func widenPanelN512(dst *float32, src *uint16, ld, kc int)

//go:noescape
func pairPanelN512(dst *float32, src *uint16, ld, pairs int)

//go:noescape
func unpairPanel512(dst, src *float32, pairs int)

//go:noescape
func transpose16x16H(dst *float32, src *uint16, lds, ldd, nblk int)

//go:noescape
func cvtBF16RowH(dst *uint16, src *float32, n, words int)

// widen512 is WidenBF16's loop on the avx512 path.
func widen512(dst []float32, src []uint16) {
	n := len(src)
	if n == 0 {
		return
	}
	dst = dst[:n]
	if n16 := n &^ 15; n16 > 0 {
		widenRow512(&dst[0], &src[0], n16)
	}
	widenBF16Go(dst[n&^15:], src[n&^15:])
}

// narrowFast computes NarrowBF16 with VCVTNE2PS2BF16 where the path in use
// has the AVX512_BF16 packers.
func narrowFast(dst []uint16, src []float32) bool {
	if gemmImpl == nil || gemmImpl.packNBF == nil {
		return false
	}
	n32 := len(src) &^ 31
	if n32 > 0 {
		_ = dst[n32-1]
		cvtBF16RowH(&dst[0], &src[0], n32, n32/2)
	}
	narrowBF16Go(dst[n32:len(src)], src[n32:])
	return true
}

func packNH512(dst []float32, src []uint16, ld, kc, cols int) {
	if cols < 32 {
		packNHGo(dst, src, ld, kc, cols)
		return
	}
	_ = dst[32*kc-1]
	_ = src[(kc-1)*ld+31]
	widenPanelN512(&dst[0], &src[0], 2*ld, kc)
}

func packNBFH512(dst []float32, src []uint16, ld, kc, cols int) {
	if cols < 32 {
		packNBFHGo(dst, src, ld, kc, cols)
		return
	}
	rows := bfRows(kc)
	_ = dst[32*rows-1]
	_ = src[(kc-1)*ld+31]
	pairs := kc / 2
	if pairs > 0 {
		pairPanelN512(&dst[0], &src[0], 2*ld, pairs)
	}
	s := pairs
	if kc%2 == 1 {
		d, r := dst[32*s:32*s+32], src[(kc-1)*ld:(kc-1)*ld+32]
		for j, h := range r {
			d[j] = pairH(h, 0)
		}
		s++
	}
	clear(dst[32*s : 32*rows])
}

// packTBFH512 transposes the words of Bᵀ's rows, which are the pairs
// (B[2s, j], B[2s+1, j]) already: 16×16 blocks of whole pairs in registers,
// the rest (an odd last step, the zero rows, a ragged strip of columns) in
// Go.
func packTBFH512(dst []float32, src []uint16, ld, kc, cols int) {
	rows := bfRows(kc)
	_ = dst[32*rows-1]
	_ = src[(cols-1)*ld+kc-1]
	if cols < 32 {
		clear(dst[:32*rows])
	}
	blocks := kc / 2 / 16 // whole 16×16 blocks of pairs
	c16 := cols &^ 15
	if blocks > 0 {
		for j0 := 0; j0 < c16; j0 += 16 {
			transpose16x16H(&dst[j0], &src[j0*ld], 2*ld, 128, blocks)
		}
	}
	for j := 0; j < cols; j++ {
		s0 := 16 * blocks
		if j >= c16 {
			s0 = 0
		}
		row := src[j*ld : j*ld+kc]
		for s := s0; s < rows; s++ {
			var w float32
			switch {
			case 2*s+1 < kc:
				w = pairH(row[2*s], row[2*s+1])
			case 2*s < kc:
				w = pairH(row[2*s], 0)
			}
			dst[s*32+j] = w
		}
	}
}

// packTH512 packs the bfloat16 pair panel (packTBFH512) and widens its
// halves into the float32 rows.
func packTH512(dst []float32, src []uint16, ld, kc, cols int) {
	_ = dst[32*kc-1]
	tb := getBuf(32 * bfRows(kc))
	defer putBuf(tb)
	t := *tb
	packTBFH512(t, src, ld, kc, cols)
	if pairs := kc / 2; pairs > 0 {
		unpairPanel512(&dst[0], &t[0], pairs)
	}
	if kc%2 == 1 {
		d, w := dst[32*(kc-1):32*kc], t[32*(kc/2):32*(kc/2)+32]
		for j, v := range w {
			d[j] = math.Float32frombits(math.Float32bits(v) << 16)
		}
	}
}

// packABFH512 packs a row-major bfloat16 A: a row's pairs are its bits in
// order (little-endian words), so each row is a copy and zero padding.
func packABFH512(dst []float32, src []uint16, ld, kc, rows int) {
	kq := bfRows(kc)
	clear(dst[rows*kq : roundUp(rows, 32)*kq])
	if rows == 0 {
		return
	}
	_ = src[(rows-1)*ld+kc-1]
	d16 := unsafe.Slice((*uint16)(unsafe.Pointer(&dst[0])), 2*rows*kq)
	for i := 0; i < rows; i++ {
		row := d16[2*i*kq : 2*(i+1)*kq]
		copy(row, src[i*ld:i*ld+kc])
		clear(row[kc:])
	}
}
