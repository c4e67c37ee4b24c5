//go:build !amd64 || purego

package kernels

func adamw512(data, grad, m, v *float32, n int, c *AdamWConsts) {
	panic("kernels: adamw512 without AVX-512")
}
