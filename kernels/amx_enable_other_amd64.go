//go:build !linux && !purego

package kernels

// amxEnable reports whether the AMX-BF16 kernels may run: only on Linux,
// which is the one OS this package knows how to ask for the tile state.
func amxEnable() bool { return false }
