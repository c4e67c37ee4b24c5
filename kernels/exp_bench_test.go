package kernels

import (
	"math/rand/v2"
	"testing"
)

// BenchmarkExpOps times, on one thread and on every path, the exponential
// loops of a 30m-preset step: SwiGLU forward and backward over 64 tokens ×
// 1376, and log-sum-exp and the softmax gradient over a 49152-wide row.
func BenchmarkExpOps(b *testing.B) {
	r := rand.New(rand.NewPCG(7, 8))
	const n, V = 64 * 1376, 49152
	g, u, d := randSlice(r, n), randSlice(r, n), randSlice(r, n)
	h, dg, du := make([]float32, n), make([]float32, n), make([]float32, n)
	x, y := randSlice(r, V), make([]float32, V)
	for _, path := range testPaths() {
		withPath(path, func() {
			b.Run(pathName(path)+"/swiglu", func(b *testing.B) {
				for b.Loop() {
					SwiGLUForward(nil, h, g, u)
				}
			})
			b.Run(pathName(path)+"/swigluBwd", func(b *testing.B) {
				for b.Loop() {
					SwiGLUBackward(nil, dg, du, d, g, u)
				}
			})
			b.Run(pathName(path)+"/logsumexp", func(b *testing.B) {
				for b.Loop() {
					LogSumExp(x)
				}
			})
			b.Run(pathName(path)+"/softmaxgrad", func(b *testing.B) {
				for b.Loop() {
					copy(y, x)
					SoftmaxGrad(y, 3, 5, 0.5)
				}
			})
		})
	}
}
