package kernels

import "os"

// The matrix products run on one of three paths, chosen once when the
// package initializes:
//
//   - "avx512": AVX-512 micro-kernels of 12×32 (amd64 with AVX-512 F),
//   - "avx2":   AVX2+FMA micro-kernels of 6×16 (amd64 with AVX2 and FMA),
//   - "generic": the portable Go loops, on every other CPU.
//
// The best path the CPU supports is used unless the environment variable
// RELUPO_KERNELS names another (generic, avx2 or avx512), which is useful to
// compare or test paths. A path the CPU lacks falls back to the best one it
// has below it. [Describe] reports the path in use.
// Dot and Axpy follow it: AVX-512 loops on the avx512 path, Go otherwise;
// so do the exponentials (exp.go): AVX-512 or AVX2 loops, or math.Exp.
var gemmImpl *gemmPath

// vec512 selects the AVX-512 Dot and Axpy, exp loops and row loops of
// RMSNorm, RoPE and attention; vec256 the AVX2 exp loops.
var vec512, vec256 bool

func init() { setPath(selectPath(os.Getenv("RELUPO_KERNELS"))) }

func setPath(p *gemmPath) {
	gemmImpl = p
	vec512 = p != nil && p.name == "avx512"
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
	}
	if len(paths) == 0 {
		return nil
	}
	return paths[0]
}

// Describe names the kernel implementation in use, for benchmark reports:
// "avx512", "avx2" or "portable Go".
func Describe() string {
	if gemmImpl == nil {
		return "portable Go"
	}
	return gemmImpl.name
}
