package kernels

import (
	"math/rand/v2"
	"testing"
)

// BenchmarkAttention times the forward and backward attention of the 30m
// preset on 1024 tokens packed as four sequences of 256 (8 heads of 64).
// Besides the wall time it reports cpu-ns/op, the CPU time of all workers,
// which a loaded machine disturbs less.
func BenchmarkAttention(b *testing.B) {
	p := NewPool(0)
	defer p.Close()
	r := rand.New(rand.NewPCG(3, 4))
	const n, h, hd = 1024, 8, 64
	sh := AttnShape{Offsets: []int{0, 256, 512, 768, 1024}, Heads: h, KVHeads: h, HeadDim: hd}
	q, k, v := randSlice(r, n*h*hd), randSlice(r, n*h*hd), randSlice(r, n*h*hd)
	out, lse, dout := make([]float32, n*h*hd), make([]float32, n*h), randSlice(r, n*h*hd)
	dq, dk, dv := make([]float32, n*h*hd), make([]float32, n*h*hd), make([]float32, n*h*hd)
	b.Run("forward", func(b *testing.B) {
		c0 := processCPU()
		for b.Loop() {
			AttentionForward(p, out, lse, q, k, v, sh)
		}
		b.ReportMetric((processCPU()-c0)*1e9/float64(b.N), "cpu-ns/op")
	})
	b.Run("forward-blocked", func(b *testing.B) {
		c0 := processCPU()
		for b.Loop() {
			AttentionForwardBlocked(p, out, lse, q, k, v, sh)
		}
		b.ReportMetric((processCPU()-c0)*1e9/float64(b.N), "cpu-ns/op")
	})
	b.Run("backward", func(b *testing.B) {
		c0 := processCPU()
		for b.Loop() {
			AttentionBackward(p, dq, dk, dv, dout, q, k, v, out, lse, sh)
		}
		b.ReportMetric((processCPU()-c0)*1e9/float64(b.N), "cpu-ns/op")
	})
	b.Run("backward-blocked", func(b *testing.B) {
		c0 := processCPU()
		for b.Loop() {
			AttentionBackwardBlocked(p, dq, dk, dv, dout, q, k, v, out, lse, sh)
		}
		b.ReportMetric((processCPU()-c0)*1e9/float64(b.N), "cpu-ns/op")
	})
}
