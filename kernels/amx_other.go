//go:build !amd64 || purego

package kernels

// amxEnable reports whether the AMX-BF16 kernels may run: never without the
// amd64 assembly.
func amxEnable() bool { return false }

// amxBF16Block is the AMX-BF16 block kernel of amx_amd64.go; it does not exist
// here, and amxEnable is false, so it is never called.
func amxBF16Block(a *uint16, lda, rows int, b *uint16, ldb int, c *float32, ldc int, kc int) {
	panic("kernels: AMX kernel without amd64 assembly")
}

// amxBF16Kernel32x32 is the 32×32 AMX-BF16 kernel of amx_amd64.go; it does
// not exist here, and amxEnable is false, so it is never called.
func amxBF16Kernel32x32(a *uint16, lda int, b *uint16, ldb int, c *float32, ldc int, kc int) {
	panic("kernels: AMX kernel without amd64 assembly")
}
