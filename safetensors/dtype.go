package safetensors

import "math"

// DType names the element type of a tensor as spelled in a safetensors header.
type DType string

// The element types a safetensors header may name.
const (
	F32    DType = "F32"
	F16    DType = "F16"
	BF16   DType = "BF16"
	F64    DType = "F64"
	I64    DType = "I64"
	I32    DType = "I32"
	I16    DType = "I16"
	I8     DType = "I8"
	U8     DType = "U8"
	BOOL   DType = "BOOL"
	U16    DType = "U16"
	U32    DType = "U32"
	U64    DType = "U64"
	F8E4M3 DType = "F8_E4M3"
	F8E5M2 DType = "F8_E5M2"
)

// Size returns the number of bytes one element of d occupies, or 0 if d is
// not a dtype this package knows.
func (d DType) Size() int {
	switch d {
	case F64, I64, U64:
		return 8
	case F32, I32, U32:
		return 4
	case F16, BF16, I16, U16:
		return 2
	case I8, U8, BOOL, F8E4M3, F8E5M2:
		return 1
	}
	return 0
}

// IsFloat reports whether d is one of the floating-point dtypes that
// [File.Float32] converts and [Write] can produce: F32, F16, BF16 or F64.
func (d DType) IsFloat() bool {
	switch d {
	case F32, F16, BF16, F64:
		return true
	}
	return false
}

// F16ToF32 converts IEEE 754 half-precision bits to a float32. The conversion
// is exact for zeros, subnormals, normals and infinities. A NaN keeps its sign
// and payload and comes back quiet, as the hardware conversions PyTorch uses
// return it.
func F16ToF32(h uint16) float32 {
	sign := uint32(h&0x8000) << 16
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h & 0x3ff)
	switch {
	case exp == 0x1f: // infinity or NaN
		if mant != 0 {
			mant |= 0x200 // quiet the NaN
		}
		return math.Float32frombits(sign | 0x7f800000 | mant<<13)
	case exp != 0: // normal
		return math.Float32frombits(sign | (exp+127-15)<<23 | mant<<13)
	case mant == 0: // signed zero
		return math.Float32frombits(sign)
	}
	// Subnormal: mant × 2⁻²⁴; normalize so the leading one becomes implicit.
	e := uint32(127 - 15 + 1)
	for mant&0x400 == 0 {
		mant <<= 1
		e--
	}
	return math.Float32frombits(sign | e<<23 | (mant&0x3ff)<<13)
}

// F32ToF16 converts a float32 to IEEE 754 half-precision bits, rounding to
// nearest with ties to even as PyTorch's .to(torch.float16) does. Values too
// large for F16 become infinity, values too small become (signed) zero or a
// subnormal, and a NaN becomes the quiet NaN 0x7e00 with the input's sign.
func F32ToF16(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	exp := int(b>>23) & 0xff
	mant := b & 0x7fffff
	if exp == 0xff {
		if mant != 0 {
			return sign | 0x7e00
		}
		return sign | 0x7c00
	}
	e := exp - 127 + 15 // biased F16 exponent
	if e >= 0x1f {
		return sign | 0x7c00
	}
	if e <= 0 {
		// The result is an F16 subnormal (or zero): the significand,
		// with its implicit bit, shifted right by 14-e and rounded.
		if exp == 0 {
			return sign // F32 subnormals are far below half the smallest F16 subnormal
		}
		shift := uint(14 - e)
		if shift > 24 {
			return sign // below half the smallest F16 subnormal
		}
		m := mant | 0x800000
		r := m >> shift
		rem := m & (1<<shift - 1)
		half := uint32(1) << (shift - 1)
		if rem > half || rem == half && r&1 == 1 {
			r++ // may carry into the smallest normal, which is the right encoding
		}
		return sign | uint16(r)
	}
	r := uint32(e)<<10 | mant>>13
	rem := mant & 0x1fff
	if rem > 0x1000 || rem == 0x1000 && r&1 == 1 {
		r++ // a carry into the exponent is correct, up to and including infinity
	}
	return sign | uint16(r)
}

// BF16ToF32 converts bfloat16 bits to a float32. The conversion is exact:
// bfloat16 is the upper half of a float32.
func BF16ToF32(h uint16) float32 {
	return math.Float32frombits(uint32(h) << 16)
}

// F32ToBF16 converts a float32 to bfloat16 bits, rounding to nearest with ties
// to even as PyTorch's .to(torch.bfloat16) does; values beyond the bfloat16
// range become infinity. Any NaN becomes the quiet NaN 0x7fc0, the value
// PyTorch's scalar conversion (c10::BFloat16) produces.
func F32ToBF16(f float32) uint16 {
	b := math.Float32bits(f)
	if b&0x7fffffff > 0x7f800000 {
		return 0x7fc0
	}
	return uint16((b + 0x7fff + (b>>16)&1) >> 16)
}
