package kernels

import (
	"math/rand/v2"
	"testing"
)

// BenchmarkAttention times the forward and backward attention on two
// layouts of the 30m preset's heads (8 of 64): "4x256" is 1024 tokens packed
// as four sequences of 256; "pairs" is the 30m training step of relupo
// bench, two pairs whose 128-token prompt runs once and is the prefix of
// both 384-token responses. Besides the wall time it reports cpu-ns/op, the
// CPU time of all workers, which a loaded machine disturbs less, and
// GFLOP/s/core by that CPU time, counting 4·headDim FLOPs per visible
// (query, key) entry forward and 10·headDim backward (scores recomputed,
// dP, dV, dQ, dK). With AMX-BF16, the -bf16 runs time the BF16 precision.
func BenchmarkAttention(b *testing.B) {
	p := NewPool(0)
	defer p.Close()
	const h, hd = 8, 64
	layouts := []struct {
		name string
		sh   AttnShape
	}{
		{"4x256", AttnShape{Offsets: []int{0, 256, 512, 768, 1024}, Heads: h, KVHeads: h, HeadDim: hd}},
		{"pairs", AttnShape{Offsets: []int{0, 128, 512, 896, 1024, 1408, 1792}, Prefix: []int{-1, 0, 0, -1, 3, 3},
			Heads: h, KVHeads: h, HeadDim: hd}},
	}
	for _, lay := range layouts {
		sh := lay.sh
		n := sh.Offsets[len(sh.Offsets)-1]
		entries := 0.0 // visible (query, key) entries, all heads
		for s := 0; s+1 < len(sh.Offsets); s++ {
			_, np := sh.prefix(s)
			for t := 1; t <= sh.Offsets[s+1]-sh.Offsets[s]; t++ {
				entries += float64(h * (np + t))
			}
		}
		r := rand.New(rand.NewPCG(3, 4))
		q, k, v := randSlice(r, n*h*hd), randSlice(r, n*h*hd), randSlice(r, n*h*hd)
		out, lse, dout := make([]float32, n*h*hd), make([]float32, n*h), randSlice(r, n*h*hd)
		dq, dk, dv := make([]float32, n*h*hd), make([]float32, n*h*hd), make([]float32, n*h*hd)
		run := func(name string, flops float64, fn func()) {
			b.Run(lay.name+"/"+name, func(b *testing.B) {
				c0 := processCPU()
				for b.Loop() {
					fn()
				}
				cpu := processCPU() - c0
				b.ReportMetric(cpu*1e9/float64(b.N), "cpu-ns/op")
				if cpu > 0 {
					b.ReportMetric(flops*float64(b.N)/cpu/1e9, "GFLOP/s/core")
				}
			})
		}
		fwd, bwd := 4*hd*entries, 10*hd*entries
		run("forward", fwd, func() { AttentionForward(p, out, lse, q, k, v, sh) })
		run("forward-blocked", fwd, func() { AttentionForwardBlocked(p, out, lse, q, k, v, sh) })
		run("backward", bwd, func() { AttentionBackward(p, dq, dk, dv, dout, q, k, v, out, lse, sh) })
		run("backward-blocked", bwd, func() { AttentionBackwardBlocked(p, dq, dk, dv, dout, q, k, v, out, lse, sh) })
		if NativeBF16() {
			p.SetPrecision(BF16)
			run("forward-blocked-bf16", fwd, func() { AttentionForwardBlocked(p, out, lse, q, k, v, sh) })
			run("backward-blocked-bf16", bwd, func() { AttentionBackwardBlocked(p, dq, dk, dv, dout, q, k, v, out, lse, sh) })
			p.SetPrecision(F32)
		}
	}
}
