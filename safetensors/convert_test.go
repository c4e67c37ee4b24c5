package safetensors

import (
	"math"
	"math/rand/v2"
	"testing"
)

// refF16ToF32 is PyTorch's c10::detail::fp16_ieee_to_fp32_value, written
// with explicit float32 conversions so that no operations are fused.
func refF16ToF32(h uint16) float32 {
	w := uint32(h) << 16
	sign := w & 0x80000000
	twoW := w + w
	const expOffset = uint32(0xe0) << 23
	expScale := float32(0x1.0p-112)
	normalized := float32(math.Float32frombits((twoW>>4)+expOffset) * expScale)
	const magicMask = uint32(126) << 23
	magicBias := float32(0.5)
	denormalized := float32(math.Float32frombits((twoW>>17)|magicMask) - magicBias)
	const denormalizedCutoff = uint32(1) << 27
	if twoW < denormalizedCutoff {
		return math.Float32frombits(sign | math.Float32bits(denormalized))
	}
	return math.Float32frombits(sign | math.Float32bits(normalized))
}

// refF32ToF16 is PyTorch's c10::detail::fp16_ieee_from_fp32_value.
func refF32ToF16(f float32) uint16 {
	scaleToInf := float32(0x1.0p+112)
	scaleToZero := float32(0x1.0p-110)
	abs := float32(math.Abs(float64(f)))
	base := float32(float32(abs*scaleToInf) * scaleToZero)
	w := math.Float32bits(f)
	shl1W := w + w
	sign := w & 0x80000000
	bias := shl1W & 0xff000000
	if bias < 0x71000000 {
		bias = 0x71000000
	}
	base = float32(math.Float32frombits((bias>>1)+0x07800000) + base)
	bits := math.Float32bits(base)
	expBits := (bits >> 13) & 0x7c00
	mantBits := bits & 0x0fff
	if shl1W > 0xff000000 {
		return uint16(sign>>16) | 0x7e00
	}
	return uint16(sign>>16) | uint16(expBits+mantBits)
}

func TestF16ToF32(t *testing.T) {
	tests := []struct {
		name string
		in   uint16
		want uint32 // float32 bits
	}{
		{"one", 0x3c00, 0x3f800000},
		{"minus two", 0xc000, 0xc0000000},
		{"zero", 0x0000, 0x00000000},
		{"minus zero", 0x8000, 0x80000000},
		{"max normal 65504", 0x7bff, math.Float32bits(65504)},
		{"min normal 2^-14", 0x0400, math.Float32bits(0x1p-14)},
		{"min subnormal 2^-24", 0x0001, math.Float32bits(0x1p-24)},
		{"max subnormal", 0x03ff, math.Float32bits(1023 * 0x1p-24)},
		{"negative subnormal", 0x8003, math.Float32bits(-3 * 0x1p-24)},
		{"inf", 0x7c00, 0x7f800000},
		{"minus inf", 0xfc00, 0xff800000},
		{"quiet NaN", 0x7e00, 0x7fc00000},
		{"negative NaN", 0xfe00, 0xffc00000},
		{"signalling NaN comes back quiet with its payload", 0x7c01, 0x7fc02000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := math.Float32bits(F16ToF32(tt.in)); got != tt.want {
				t.Errorf("F16ToF32(%#04x) = %#08x, want %#08x", tt.in, got, tt.want)
			}
		})
	}
}

// TestF16ToF32AllValues checks every F16 value against PyTorch's conversion.
func TestF16ToF32AllValues(t *testing.T) {
	for h := range 1 << 16 {
		got, want := math.Float32bits(F16ToF32(uint16(h))), math.Float32bits(refF16ToF32(uint16(h)))
		if got != want {
			t.Fatalf("F16ToF32(%#04x) = %#08x, PyTorch gives %#08x", h, got, want)
		}
	}
}

func TestF32ToF16(t *testing.T) {
	tests := []struct {
		name string
		in   float32
		want uint16
	}{
		{"one", 1, 0x3c00},
		{"minus zero", float32(math.Copysign(0, -1)), 0x8000},
		{"max normal", 65504, 0x7bff},
		{"just below the overflow tie", 65519.996, 0x7bff},
		{"overflow tie rounds to even: inf", 65520, 0x7c00},
		{"overflow", 1e6, 0x7c00},
		{"negative overflow", -1e6, 0xfc00},
		{"max float32", math.MaxFloat32, 0x7c00},
		{"inf", float32(math.Inf(1)), 0x7c00},
		{"minus inf", float32(math.Inf(-1)), 0xfc00},
		{"NaN", float32(math.NaN()), 0x7e00},
		{"negative NaN", math.Float32frombits(0xffc00001), 0xfe00},
		{"tie rounds down to even", 1 + 0x1p-11, 0x3c00},
		{"tie rounds up to even", 1 + 3*0x1p-11, 0x3c02},
		{"above tie rounds up", 1 + 0x1p-11 + 0x1p-20, 0x3c01},
		{"min subnormal", 0x1p-24, 0x0001},
		{"half min subnormal ties to zero", 0x1p-25, 0x0000},
		{"above half min subnormal", 0x1p-25 * (1 + 0x1p-20), 0x0001},
		{"subnormal tie to even 2", 3 * 0x1p-25, 0x0002},
		{"subnormal tie to even 4", 7 * 0x1p-25, 0x0004},
		{"largest subnormal rounds up to min normal", 0x1p-14 - 0x1p-26, 0x0400},
		{"min normal", 0x1p-14, 0x0400},
		{"float32 subnormal", math.Float32frombits(0x00000001), 0x0000},
		{"negative tiny", -1e-30, 0x8000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := F32ToF16(tt.in); got != tt.want {
				t.Errorf("F32ToF16(%g) = %#04x, want %#04x", tt.in, got, tt.want)
			}
			if got := refF32ToF16(tt.in); got != tt.want {
				t.Errorf("PyTorch reference gives %#04x for %g, test expects %#04x", got, tt.in, tt.want)
			}
		})
	}
}

// TestF32ToF16AgainstPyTorch compares with PyTorch's conversion at and
// beside every rounding boundary, on a stride through all float32 bit
// patterns, and on random values.
func TestF32ToF16AgainstPyTorch(t *testing.T) {
	check := func(b uint32) {
		f := math.Float32frombits(b)
		if got, want := F32ToF16(f), refF32ToF16(f); got != want {
			t.Fatalf("F32ToF16(%#08x = %g) = %#04x, PyTorch gives %#04x", b, f, got, want)
		}
	}
	for h := range 1 << 15 {
		lo := math.Float32bits(F16ToF32(uint16(h)))
		hi := math.Float32bits(F16ToF32(uint16(h + 1)))
		if h+1 >= 0x7c00 {
			hi = math.Float32bits(65520) // the overflow boundary
		}
		mid := lo + (hi-lo)/2
		for _, b := range []uint32{lo, lo + 1, mid - 1, mid, mid + 1, hi - 1} {
			check(b)
			check(b | 0x80000000)
		}
	}
	for b := uint64(0); b < 1<<32; b += 65521 {
		check(uint32(b))
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 200000 {
		check(r.Uint32())
	}
}

func TestF16RoundTrip(t *testing.T) {
	for h := range 1 << 16 {
		h := uint16(h)
		got := F32ToF16(F16ToF32(h))
		want := h
		if h&0x7c00 == 0x7c00 && h&0x3ff != 0 {
			want = h&0x8000 | 0x7e00 // NaNs come back canonical
		}
		if got != want {
			t.Fatalf("F32ToF16(F16ToF32(%#04x)) = %#04x, want %#04x", h, got, want)
		}
	}
}

func TestBF16(t *testing.T) {
	tests := []struct {
		name string
		in   uint32 // float32 bits
		want uint16
	}{
		{"one", 0x3f800000, 0x3f80},
		{"exact", 0xc0490000, 0xc049},
		{"tie rounds down to even", 0x3f808000, 0x3f80},
		{"tie rounds up to even", 0x3f818000, 0x3f82},
		{"below tie rounds down", 0x3f807fff, 0x3f80},
		{"above tie rounds up", 0x3f808001, 0x3f81},
		{"carry into exponent", 0x3fffffff, 0x4000},
		{"max float32 overflows to inf", 0x7f7fffff, 0x7f80},
		{"largest that stays finite", 0x7f7f7fff, 0x7f7f},
		{"inf", 0x7f800000, 0x7f80},
		{"minus inf", 0xff800000, 0xff80},
		{"minus zero", 0x80000000, 0x8000},
		{"subnormal tie to even zero", 0x00008000, 0x0000},
		{"subnormal tie to even", 0x00018000, 0x0002},
		{"NaN", 0x7fc00000, 0x7fc0},
		{"NaN with low payload only", 0x7f800001, 0x7fc0},
		{"negative NaN", 0xffffffff, 0x7fc0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := F32ToBF16(math.Float32frombits(tt.in)); got != tt.want {
				t.Errorf("F32ToBF16(%#08x) = %#04x, want %#04x", tt.in, got, tt.want)
			}
		})
	}
	for h := range 1 << 16 {
		h := uint16(h)
		f := BF16ToF32(h)
		if got := math.Float32bits(f); got != uint32(h)<<16 {
			t.Fatalf("BF16ToF32(%#04x) = %#08x, want %#08x", h, got, uint32(h)<<16)
		}
		if f == f { // not NaN: the round trip is exact
			if got := F32ToBF16(f); got != h {
				t.Fatalf("F32ToBF16(BF16ToF32(%#04x)) = %#04x", h, got)
			}
		}
	}
}
