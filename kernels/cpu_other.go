//go:build !amd64 || purego

package kernels

// gemmPaths lists the micro-kernel paths this CPU supports: none without
// assembly, so the portable Go products run.
func gemmPaths() []*gemmPath { return nil }
