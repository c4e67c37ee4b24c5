package kernels

import (
	"fmt"
	"math"
)

// Precision is how the matrix products of a [Pool] treat their operands,
// like the math mode of a BLAS handle.
type Precision uint8

const (
	// F32 multiplies float32 operands in float32 (the default).
	F32 Precision = iota
	// BF16 rounds both operands of every blocked product (MatMulNT,
	// MatMulNNAcc, MatMulTNAcc) to bfloat16, to nearest even, and sums the
	// products in float32; results stay float32. Products of two bfloat16
	// values are exact in float32, so the only new error is the operand
	// rounding (relative 2⁻⁹ per operand), as with PyTorch's bf16 autocast
	// but without rounding the result. On CPUs with AVX512_BF16 it runs the
	// VDPBF16PS micro-kernels, twice the float32 throughput; elsewhere it
	// rounds the operands and uses the float32 products, for the same
	// numbers at float32 speed. Products of at most 4 rows (decoding) stay
	// float32.
	BF16
)

// String returns "float32" or "bf16".
func (pr Precision) String() string {
	switch pr {
	case F32:
		return "float32"
	case BF16:
		return "bf16"
	}
	return fmt.Sprintf("Precision(%d)", uint8(pr))
}

// ParsePrecision maps a compute dtype name (float32, fp32, f32, bf16,
// bfloat16) to a Precision.
func ParsePrecision(s string) (Precision, error) {
	switch s {
	case "float32", "fp32", "f32", "":
		return F32, nil
	case "bf16", "bfloat16":
		return BF16, nil
	}
	return F32, fmt.Errorf("compute dtype %q is not one of float32, bf16", s)
}

// SetPrecision sets how the pool's matrix products treat their operands.
// A nil Pool always computes in float32.
func (p *Pool) SetPrecision(pr Precision) {
	if p != nil {
		p.prec = pr
	}
}

// Precision reports the pool's matrix-product precision (F32 for nil).
func (p *Pool) Precision() Precision {
	if p == nil {
		return F32
	}
	return p.prec
}

// NativeBF16 reports whether BF16 products run on the CPU's bfloat16
// instructions (AVX512_BF16) rather than being emulated in float32.
func NativeBF16() bool { return gemmImpl != nil && gemmImpl.kernelBF != nil }

// RoundBF16 rounds x to the nearest bfloat16 (ties to even) and returns it as
// a float32, as the CPU's VCVTNEPS2BF16 does: subnormal inputs become signed
// zeros and NaNs stay NaNs.
func RoundBF16(x float32) float32 {
	return math.Float32frombits(uint32(bf16Bits(x)) << 16)
}

// bf16Bits returns the bfloat16 bit pattern of RoundBF16(x).
func bf16Bits(x float32) uint16 {
	u := math.Float32bits(x)
	switch {
	case u&0x7f800000 == 0: // zero or subnormal: flushed
		return uint16(u>>16) & 0x8000
	case u&0x7fffffff > 0x7f800000: // NaN: keep it a (quiet) NaN
		return uint16(u>>16) | 0x40
	}
	return uint16((u + 0x7fff + (u>>16)&1) >> 16)
}

// bf16Pair packs RoundBF16(lo) and RoundBF16(hi) into one 32-bit word, lo in
// the low half: the layout VDPBF16PS reads.
func bf16Pair(lo, hi float32) float32 {
	return math.Float32frombits(uint32(bf16Bits(lo)) | uint32(bf16Bits(hi))<<16)
}

// roundBF16Slice sets dst[i] = RoundBF16(src[i]).
func roundBF16Slice(p *Pool, dst, src []float32) {
	p.ForRange(len(src), 1<<14, func(lo, hi int) {
		for i, v := range src[lo:hi] {
			dst[lo+i] = RoundBF16(v)
		}
	})
}

// The packed bfloat16 operands hold pairs along k in 32-bit words, stored in
// []float32 buffers (the bits are not float32 values):
//
//   - a panel of B: word s·nr + j is (B[2s, j], B[2s+1, j]), for
//     s < ⌈kc/2⌉ and j < nr; the kernels read it as they read a float32 panel;
//   - a block of A: word i·kq + s is (A[i, 2s], A[i, 2s+1]), kq = ⌈kc/2⌉.
//
// An odd kc ends with pairs whose second value is zero in both, so the
// padding adds nothing.

// packNBFGo packs the bfloat16 panel of op(B)[l, j] = src[l·ld + j].
func packNBFGo(dst, src []float32, ld, kc, cols int) {
	kq := (kc + 1) / 2
	nr := len(dst) / kq
	for s := 0; s < kq; s++ {
		d := dst[s*nr : s*nr+nr]
		r0 := src[2*s*ld : 2*s*ld+cols]
		if 2*s+1 < kc {
			r1 := src[(2*s+1)*ld : (2*s+1)*ld+cols]
			for j, v := range r0 {
				d[j] = bf16Pair(v, r1[j])
			}
		} else {
			for j, v := range r0 {
				d[j] = bf16Pair(v, 0)
			}
		}
		clear(d[cols:])
	}
}

// packTBFGo packs the bfloat16 panel of op(B)[l, j] = src[j·ld + l].
func packTBFGo(dst, src []float32, ld, kc, cols int) {
	kq := (kc + 1) / 2
	nr := len(dst) / kq
	if cols < nr {
		clear(dst)
	}
	for j := 0; j < cols; j++ {
		packRowBF(dst[j:], nr, src[j*ld:j*ld+kc])
	}
}

// packRowBF writes the pairs of row (2s, 2s+1) of row to dst[s·stride].
func packRowBF(dst []float32, stride int, row []float32) {
	kc := len(row)
	s := 0
	for ; 2*s+1 < kc; s++ {
		dst[s*stride] = bf16Pair(row[2*s], row[2*s+1])
	}
	if kc%2 == 1 {
		dst[s*stride] = bf16Pair(row[kc-1], 0)
	}
}

// packABFGo packs rows [0, rows) and steps [0, kc) of op(A)[i, l] =
// src[i·rsA + l·csA] (rsA = 1 or csA = 1) as a bfloat16 block with ⌈kc/2⌉
// words per row.
func packABFGo(dst, src []float32, rsA, csA, kc, rows int) {
	kq := (kc + 1) / 2
	if csA == 1 {
		for i := 0; i < rows; i++ {
			packRowBF(dst[i*kq:], 1, src[i*rsA:i*rsA+kc])
		}
		return
	}
	// Aᵀ: step l of every row is the contiguous src[l·csA : l·csA + rows].
	for s := 0; s < kq; s++ {
		r0 := src[2*s*csA : 2*s*csA+rows]
		if 2*s+1 < kc {
			r1 := src[(2*s+1)*csA : (2*s+1)*csA+rows]
			for i, v := range r0 {
				dst[i*kq+s] = bf16Pair(v, r1[i])
			}
		} else {
			for i, v := range r0 {
				dst[i*kq+s] = bf16Pair(v, 0)
			}
		}
	}
}

// bf16Operands prepares the operands of a product under the pool's
// precision. For F32 it returns a and b. For BF16 it reports native when the
// path has bfloat16 kernels (the driver then rounds while packing);
// otherwise it returns copies of a and b rounded to bfloat16, for the float32
// products to multiply exactly as the bfloat16 kernels would, up to the
// order of the sums. release returns the copies.
func bf16Operands(p *Pool, a, b []float32) (ra, rb []float32, native bool, release func()) {
	if p.Precision() != BF16 {
		return a, b, false, func() {}
	}
	if gemmImpl != nil && gemmImpl.kernelBF != nil {
		return a, b, true, func() {}
	}
	ca, cb := getBuf(len(a)), getBuf(len(b))
	roundBF16Slice(p, *ca, a)
	roundBF16Slice(p, *cb, b)
	return *ca, *cb, false, func() { putBuf(ca); putBuf(cb) }
}
