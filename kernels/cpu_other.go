//go:build !amd64 || purego

package kernels

// gemmPaths lists the micro-kernel paths this CPU supports: none without
// assembly, so the portable Go products run.
func gemmPaths() []*gemmPath { return nil }

func dotFast(a, b []float32) (float32, bool)            { return 0, false }
func dotHFast(a []float32, b []uint16) (float32, bool)  { return 0, false }
func axpyFast(y []float32, a float32, x []float32) bool { return false }
func scalFast(x []float32, a float32) bool              { return false }
func softmaxBwdFast(dr, p []float32, d, s float32) bool { return false }

func expAffineFast(dst, src []float32, a, b, c float32) (float64, bool) { return 0, false }
func sumExpFast(x []float32, b float32) (float64, bool)                 { return 0, false }
func maxFast(x []float32) (float32, bool)                               { return 0, false }
func swigluFast(h, g, u []float32) bool                                 { return false }
func swigluBwdFast(dg, du, d, g, u []float32) bool                      { return false }

func sumSqFast(x []float32) (float64, bool)                              { return 0, false }
func rmsScaleFast(out, x, w []float32, rs float32) bool                  { return false }
func rmsBwdDotFast(dwp, dr, xr, w []float32, rs float32) (float64, bool) { return 0, false }
func rmsBwdDxFast(dxr, dr, xr, w []float32, rs, dot float32) bool        { return false }
func ropeFast(x1, x2, c, s []float32, inverse bool) bool                 { return false }

func narrowFast(dst []uint16, src []float32) bool { return false }
