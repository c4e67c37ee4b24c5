//go:build !amd64 || purego

package kernels

// gemmPaths lists the micro-kernel paths this CPU supports: none without
// assembly, so the portable Go products run.
func gemmPaths() []*gemmPath { return nil }

func dotFast(a, b []float32) (float32, bool)            { return 0, false }
func axpyFast(y []float32, a float32, x []float32) bool { return false }
