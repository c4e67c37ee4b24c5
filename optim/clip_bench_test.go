package optim

import (
	"math/rand/v2"
	"testing"
)

// BenchmarkClipGradNorm clips the gradients of a 135m-sized model (30
// layers' worth of tensors, 134.5 M values) past maxNorm, so that both the
// norm and the rescaling run.
func BenchmarkClipGradNorm(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 2))
	var grads [][]float32
	for _, n := range append([]int{49152 * 576}, repeat(30, 576*576, 576*192, 576*192, 576*576, 3*576*1536)...) {
		g := make([]float32, n)
		for i := range g {
			g[i] = float32(r.NormFloat64())
		}
		grads = append(grads, g)
	}
	for b.Loop() {
		ClipGradNorm(grads, 1e30) // the norm alone
	}
}

// repeat returns ns repeated k times.
func repeat(k int, ns ...int) []int {
	var out []int
	for range k {
		out = append(out, ns...)
	}
	return out
}
