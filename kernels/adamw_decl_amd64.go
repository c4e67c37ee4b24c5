//go:build amd64 && !purego

package kernels

//go:noescape
func adamw512(data, grad, m, v *float32, n int, c *AdamWConsts)
