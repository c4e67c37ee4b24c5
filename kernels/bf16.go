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
	// but without rounding the result. On CPUs with AMX-BF16 (Intel Xeon
	// since Sapphire Rapids) it runs on the tile unit, about 2.5 times the
	// float32 throughput; on CPUs with AVX512_BF16 but no AMX (AMD Zen 4
	// and 5, Intel Cooper Lake) on VDPBF16PS, which does twice the float32
	// FMA's work per instruction there (BENCHMARKS.md); elsewhere it rounds
	// the operands and uses the float32 products, for the same numbers at
	// float32 speed. (On a Sapphire Rapids Xeon VDPBF16PS measured at half
	// the float32 FMA rate, so AMX is preferred there; RELUPO_KERNELS=
	// avx512bf16 forces it.) MatMulNT products of at most 4 rows
	// (decoding) stay float32. Attention's products are bfloat16 where
	// NativeBF16 reports true (see AttentionForwardBlocked).
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

// NativeBF16 reports whether BF16 products run on bfloat16 kernels (the
// AMX-BF16 tile unit, or AVX512_BF16's VDPBF16PS on CPUs without AMX)
// rather than being emulated in float32. The first call on a CPU with AMX
// asks Linux for the tile state (arch_prctl).
func NativeBF16() bool { return gemmImpl.nativeBF16() }

// nativeBF16 reports whether the path's bfloat16 kernel may run.
func (p *gemmPath) nativeBF16() bool {
	return p != nil && p.blockBF != nil && (p.bfReady == nil || p.bfReady())
}

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

// roundBF16Slice sets dst[i] = RoundBF16(src[i]).
func roundBF16Slice(p *Pool, dst, src []float32) {
	p.ForRange(len(src), 1<<14, func(lo, hi int) {
		for i, v := range src[lo:hi] {
			dst[lo+i] = RoundBF16(v)
		}
	})
}

// The packed bfloat16 operands hold pairs along k in 32-bit words, stored in
// []float32 buffers (the bits are not float32 values), as the AMX kernel
// (amx_amd64.go) reads them:
//
//   - a panel of B, nr = 32 columns: word s·nr + j is (B[2s, j], B[2s+1, j]),
//     for s < bfRows(kc) and j < nr;
//   - a block of A: word i·bfRows(kc) + s is (A[i, 2s], A[i, 2s+1]).
//
// Steps past kc, up to the next multiple of 32, are zero in both, so the
// padding adds nothing.

// bfRows is the number of pair rows a packed block of kc steps has: ⌈kc/2⌉
// rounded up to 16, the depth of one AMX tile.
func bfRows(kc int) int { return roundUp((kc+1)/2, 16) }

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
	if NativeBF16() {
		return a, b, true, func() {}
	}
	ca, cb := getBuf(len(a)), getBuf(len(b))
	roundBF16Slice(p, *ca, a)
	roundBF16Slice(p, *cb, b)
	return *ca, *cb, false, func() { putBuf(ca); putBuf(cb) }
}
