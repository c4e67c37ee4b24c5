package kernels

import (
	"fmt"
	"math/rand/v2"
	"syscall"
	"testing"
)

// processCPU returns the CPU time the process has used, in seconds (0 where
// getrusage is missing).
func processCPU() float64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}

// benchShapes are the products of a training step of the 30m and 135m
// presets with 1024 tokens, named by layer (qkvo: each of q, k, v and o in
// 30m; q: q and o in 135m, whose k and v are kv); gate and up are one product over
// the stacked weights, and the logits products cover all label rows of the
// step at once (1536 for 30m, 768 for 135m), as the model runs them in
// training (model.Workspace.KeepLogits).
// m, n, k are as passed to the function (MatMulNT: C[m,n] = A[m,k]·B[n,k]ᵀ;
// MatMulNNAcc: C[m,n] += A[m,k]·B[k,n]; MatMulTNAcc: C[m,n] += A[k,m]ᵀ·B[k,n]).
var benchShapes = []struct {
	name, variant string
	m, n, k       int
}{
	{"30m/qkvo/fwd", "NT", 1024, 512, 512},
	{"30m/qkvo/dx", "NN", 1024, 512, 512},
	{"30m/qkvo/dW", "TN", 512, 512, 1024},
	{"30m/gateup/fwd", "NT", 1024, 2752, 512},
	{"30m/down/fwd", "NT", 1024, 512, 1376},
	{"30m/gateup/dx", "NN", 1024, 512, 2752},
	{"30m/down/dx", "NN", 1024, 1376, 512},
	{"30m/gateup/dW", "TN", 2752, 512, 1024},
	{"30m/down/dW", "TN", 512, 1376, 1024},
	{"30m/logits/fwd", "NT", 1536, 8192, 512},
	{"30m/logits/dx", "NN", 1536, 512, 8192},
	{"30m/logits/dW", "TN", 8192, 512, 1536},
	{"135m/q/fwd", "NT", 1024, 576, 576},
	{"135m/q/dx", "NN", 1024, 576, 576},
	{"135m/q/dW", "TN", 576, 576, 1024},
	{"135m/kv/fwd", "NT", 1024, 192, 576},
	{"135m/gateup/fwd", "NT", 1024, 3072, 576},
	{"135m/down/fwd", "NT", 1024, 576, 1536},
	{"135m/kv/dx", "NN", 1024, 576, 192},
	{"135m/gateup/dx", "NN", 1024, 576, 3072},
	{"135m/down/dx", "NN", 1024, 1536, 576},
	{"135m/kv/dW", "TN", 192, 576, 1024},
	{"135m/gateup/dW", "TN", 3072, 576, 1024},
	{"135m/down/dW", "TN", 576, 1536, 1024},
	{"135m/logits/fwd", "NT", 768, 49152, 576},
	{"135m/logits/dx", "NN", 768, 576, 49152},
	{"135m/logits/dW", "TN", 49152, 576, 768},
	{"square/1024", "NT", 1024, 1024, 1024},
}

// BenchmarkMatMul runs every shape on the path in use (see RELUPO_KERNELS)
// with a pool of GOMAXPROCS workers and reports GFLOP/s (2·m·n·k per call)
// by wall time, and GFLOP/s/core by the CPU time the process used (Linux),
// which a loaded machine disturbs less: multiply it by the cores for the
// throughput of an idle machine.
//
// BenchmarkMatMulBF16 does the same in the BF16 precision.
func BenchmarkMatMul(b *testing.B) { benchMatMul(b, F32) }

// BenchmarkMatMulBF16 is BenchmarkMatMul with bfloat16 operands.
func BenchmarkMatMulBF16(b *testing.B) { benchMatMul(b, BF16) }

func benchMatMul(b *testing.B, prec Precision) {
	p := NewPool(0)
	defer p.Close()
	p.SetPrecision(prec)
	r := rand.New(rand.NewPCG(1, 2))
	for _, s := range benchShapes {
		b.Run(fmt.Sprintf("%s/%s/%dx%dx%d", s.name, s.variant, s.m, s.n, s.k), func(b *testing.B) {
			x := randSlice(r, s.m*s.k)
			y := randSlice(r, s.n*s.k)
			c := make([]float32, s.m*s.n)
			cpu0 := processCPU()
			for b.Loop() {
				switch s.variant {
				case "NT":
					MatMulNT(p, c, x, y, nil, s.m, s.n, s.k)
				case "NN":
					MatMulNNAcc(p, c, x, y, s.m, s.n, s.k)
				case "TN":
					MatMulTNAcc(p, c, x, y, s.m, s.n, s.k)
				}
			}
			flop := 2 * float64(s.m) * float64(s.n) * float64(s.k) * float64(b.N)
			b.ReportMetric(flop/b.Elapsed().Seconds()/1e9, "GFLOP/s")
			if cpu := processCPU() - cpu0; cpu > 0 {
				// Per core of CPU time actually spent: free of the time
				// other processes take from the cores.
				b.ReportMetric(flop/cpu/1e9, "GFLOP/s/core")
			}
		})
	}
}
