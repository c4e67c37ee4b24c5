package kernels

import "os"

// The matrix products run on one of these paths, chosen once when the
// package initializes:
//
//   - "avx512": AVX-512 micro-kernels of 12×32 (amd64 with AVX-512 F); with
//     AVX512_BF16, the BF16 precision's products run on the AMX tile unit
//     where the CPU has AMX-BF16 and on VDPBF16PS kernels otherwise,
//   - "avx512bf16": avx512 with the VDPBF16PS kernels even where the CPU has
//     AMX (amd64 with AVX512_BF16), to compare or test them,
//   - "avx2":   AVX2+FMA micro-kernels of 6×16 (amd64 with AVX2 and FMA),
//   - "generic": the portable Go loops, on every other CPU.
//
// The best path the CPU supports is used unless the environment variable
// RELUPO_KERNELS names another (generic, avx2, avx512 or avx512bf16), which
// is useful to compare or test paths. A path the CPU lacks falls back to the
// best one it has below it (avx512bf16 without AVX512_BF16: avx512).
// [Describe] reports the path in use.
// Dot and Axpy follow it: AVX-512 loops on the avx512 path, Go otherwise;
// so do the exponentials (exp.go): AVX-512 or AVX2 loops, or math.Exp.
var gemmImpl *gemmPath

// vec512 selects the AVX-512 Dot and Axpy, exp loops and row loops of
// RMSNorm, RoPE and attention; vec256 the AVX2 exp loops.
var vec512, vec256 bool

func init() { setPath(selectPath(os.Getenv("RELUPO_KERNELS"))) }

func setPath(p *gemmPath) {
	gemmImpl = p
	vec512 = p != nil && (p.name == "avx512" || p.name == "avx512bf16")
	vec256 = p != nil && p.name == "avx2"
}

// selectPath returns the path named by want ("" for the best one), or the
// best supported path below it; nil means the portable Go loops.
func selectPath(want string) *gemmPath {
	paths := gemmPaths()
	switch want {
	case "generic", "go", "portable":
		return nil
	case "avx2":
		for _, p := range paths {
			if p.name == "avx2" {
				return p
			}
		}
		return nil
	case "avx512bf16":
		// Where the CPU has no AMX, the best path's bfloat16 kernel is
		// already VDPBF16PS.
		for _, p := range paths {
			if p.bfKernel == "vdpbf16ps" {
				return p
			}
		}
	}
	if len(paths) == 0 {
		return nil
	}
	return paths[0]
}

// Describe names the kernel implementation in use, for benchmark reports:
// "avx512", "avx2" or "portable Go", followed for a path with bfloat16
// kernels by the one the BF16 precision uses, as in "avx512 (bf16: amx)"
// or "avx512 (bf16: vdpbf16ps)" (asking Linux for the AMX tile state, as
// NativeBF16 does).
func Describe() string {
	if gemmImpl == nil {
		return "portable Go"
	}
	switch {
	case gemmImpl.nativeBF16():
		return gemmImpl.name + " (bf16: " + gemmImpl.bfKernel + ")"
	case gemmImpl.blockBF != nil: // AMX without Linux's permission
		return gemmImpl.name + " (bf16: emulated)"
	}
	return gemmImpl.name
}
