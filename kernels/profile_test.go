package kernels

import (
	"math/rand/v2"
	"testing"
	"time"
)

// TestProfileCounts checks a pool's profile: each product counts 2·m·n·k,
// attention counts its visible (query, key) pairs (counted here one by one
// from the mask's definition, with a prefix and a window), the parallel
// loops inside a timed call are not counted again, a loop outside one is
// elementwise, the parts add up to no more than the wall time, and a pool
// without a profile counts nothing.
func TestProfileCounts(t *testing.T) {
	p := NewPool(2)
	defer p.Close()
	pr := new(Profile)
	p.SetProfile(pr)
	r := rand.New(rand.NewPCG(1, 2))
	t0 := time.Now()
	const m, n, k = 70, 90, 110
	a, b, c := randSlice(r, m*k), randSlice(r, n*k), make([]float32, m*n)
	MatMulNT(p, c, a, b, nil, m, n, k)
	MatMulNNAcc(p, c, a, randSlice(r, k*n), m, n, k)
	bh := make([]uint16, n*k)
	NarrowBF16(bh, b)
	MatMulNTH(p, c, a, bh, nil, m, n, k)
	if got, want := pr.Flops(PartGEMM), 3*2.0*m*n*k; got != want {
		t.Errorf("gemm flops %v, want %v", got, want)
	}
	if pr.Time(PartElementwise) != 0 {
		t.Errorf("the products' own loops counted as elementwise: %v", pr.Time(PartElementwise))
	}

	for _, window := range []int{0, 5} {
		pr.Reset()
		// Sequence 0 is the prefix of sequences 1 and 2; 3 stands alone.
		sh := AttnShape{Offsets: []int{0, 7, 12, 20, 29}, Prefix: []int{-1, 0, 0, -1}, Heads: 4, KVHeads: 2, HeadDim: 8, Window: window}
		N, H, KV, hd := 29, 4, 2, 8
		q, kk, v := randSlice(r, N*H*hd), randSlice(r, N*KV*hd), randSlice(r, N*KV*hd)
		out, lse := make([]float32, N*H*hd), make([]float32, N*H)
		AttentionForwardBlocked(p, out, lse, q, kk, v, sh)
		dq, dk, dv := make([]float32, N*H*hd), make([]float32, N*KV*hd), make([]float32, N*KV*hd)
		AttentionBackwardBlocked(p, dq, dk, dv, randSlice(r, N*H*hd), q, kk, v, out, lse, sh)
		pairs := 0
		for s := 0; s < 4; s++ {
			_, np := sh.prefix(s)
			for i := 0; i < sh.Offsets[s+1]-sh.Offsets[s]; i++ {
				pos := np + i
				for j := 0; j <= pos; j++ { // keys at positions 0..pos
					if j >= sh.firstKey(pos) {
						pairs++
					}
				}
			}
		}
		if got, want := pr.Flops(PartAttention), float64(pairs*H*2*hd*(2+5)); got != want {
			t.Errorf("window %d: attention flops %v, want %v (%d pairs)", window, got, want, pairs)
		}
		if pr.Flops(PartGEMM) != 0 || pr.Time(PartGEMM) != 0 {
			t.Errorf("window %d: attention's products counted as GEMM too", window)
		}
	}

	pr.Reset()
	x := randSlice(r, 1<<16)
	p.For(8, func(i int) { scal(x[i<<13:(i+1)<<13], 0.5) })
	loop := pr.Time(PartElementwise)
	if loop <= 0 {
		t.Error("a loop outside the kernel calls counted no elementwise time")
	}
	RMSNormForward(p, make([]float32, 64*1024), make([]float32, 64), x, randSlice(r, 1024), 64, 1024, 1e-5)
	if pr.Time(PartElementwise) <= loop {
		t.Error("RMSNorm counted no elementwise time")
	}
	var sum time.Duration
	for part := Part(0); part < NumParts; part++ {
		sum += pr.Time(part)
	}
	if wall := time.Since(t0); sum > wall {
		t.Errorf("the parts add up to %v, more than the %v that passed", sum, wall)
	}

	// Regions inside a region count once, in the outer part.
	pr.Reset()
	outer := pr.Start()
	inner := pr.Start()
	time.Sleep(time.Millisecond)
	pr.Stop(inner, PartGEMM, 5)
	pr.Stop(outer, PartOptimizer, 0)
	if pr.Time(PartGEMM) != 0 || pr.Flops(PartGEMM) != 0 || pr.Time(PartOptimizer) < time.Millisecond {
		t.Errorf("nested regions: gemm %v %v, optimizer %v", pr.Time(PartGEMM), pr.Flops(PartGEMM), pr.Time(PartOptimizer))
	}

	p.SetProfile(nil)
	pr.Reset()
	MatMulNT(p, c, a, b, nil, m, n, k)
	var nilProf *Profile
	nilProf.Stop(nilProf.Start(), PartGEMM, 1)
	if pr.Time(PartGEMM) != 0 || nilProf.Time(PartGEMM) != 0 {
		t.Error("counted without a profile")
	}
}

// TestPeakGFLOPS checks that the peak measurement runs on every path and
// precision and reports a positive rate (its size is a benchmark's matter).
func TestPeakGFLOPS(t *testing.T) {
	for _, path := range testPaths() {
		withPath(path, func() {
			for _, prec := range []Precision{F32, BF16} {
				if g := PeakGFLOPS(prec, 20*time.Millisecond); !(g > 0) {
					t.Errorf("%s %s: peak %v GFLOP/s", pathName(path), prec, g)
				}
			}
		})
	}
}
