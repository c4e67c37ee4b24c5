package kernels

import (
	"fmt"
	"math/rand/v2"
	"strings"
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
			op := newBenchProduct(r, s.variant, s.m, s.n, s.k)
			cpu0 := processCPU()
			for b.Loop() {
				op.run(p)
			}
			reportGFLOPs(b, op.flop()*float64(b.N), processCPU()-cpu0)
		})
	}
}

// benchProduct is one product of benchShapes with its operands.
type benchProduct struct {
	variant string
	m, n, k int
	a, b, c []float32
}

func newBenchProduct(r *rand.Rand, variant string, m, n, k int) *benchProduct {
	return &benchProduct{variant, m, n, k, randSlice(r, m*k), randSlice(r, n*k), make([]float32, m*n)}
}

func (o *benchProduct) flop() float64 { return 2 * float64(o.m) * float64(o.n) * float64(o.k) }

func (o *benchProduct) run(p *Pool) {
	switch o.variant {
	case "NT":
		MatMulNT(p, o.c, o.a, o.b, nil, o.m, o.n, o.k)
	case "NN":
		MatMulNNAcc(p, o.c, o.a, o.b, o.m, o.n, o.k)
	case "TN":
		MatMulTNAcc(p, o.c, o.a, o.b, o.m, o.n, o.k)
	}
}

// reportGFLOPs reports GFLOP/s by wall time and, given the CPU time spent,
// GFLOP/s per core of CPU time: free of the time other processes take from
// the cores.
func reportGFLOPs(b *testing.B, flop, cpu float64) {
	b.ReportMetric(flop/b.Elapsed().Seconds()/1e9, "GFLOP/s")
	if cpu > 0 {
		b.ReportMetric(flop/cpu/1e9, "GFLOP/s/core")
	}
}

// stepProducts is how many times a training step of each preset runs each
// of its benchShapes: per layer, times the layers (30m: q, k, v and o are
// each a qkvo product, 8 layers; 135m: q and o are q products, k and v kv
// products, 30 layers), and the logits products once.
var stepProducts = map[string]map[string]int{
	"30m":  {"qkvo": 4 * 8, "gateup": 8, "down": 8, "logits": 1},
	"135m": {"q": 2 * 30, "kv": 2 * 30, "gateup": 30, "down": 30, "logits": 1},
}

// BenchmarkMatMulStep runs, per iteration, every matrix product of one
// training step of a preset, in the step's proportions (stepProducts), and
// reports their combined GFLOP/s: what the step's products reach together,
// in each precision. The per-shape figures of BenchmarkMatMul weigh small
// and large products alike; this weighs them as a step does.
func BenchmarkMatMulStep(b *testing.B) {
	p := NewPool(0)
	defer p.Close()
	r := rand.New(rand.NewPCG(1, 2))
	for _, preset := range []string{"30m", "135m"} {
		var ops []*benchProduct
		var counts []int
		for _, s := range benchShapes {
			if pre, layer, _ := strings.Cut(s.name, "/"); pre == preset {
				layer, _, _ = strings.Cut(layer, "/")
				ops = append(ops, newBenchProduct(r, s.variant, s.m, s.n, s.k))
				counts = append(counts, stepProducts[preset][layer])
			}
		}
		for _, prec := range []Precision{F32, BF16} {
			b.Run(preset+"/"+prec.String(), func(b *testing.B) {
				p.SetPrecision(prec)
				defer p.SetPrecision(F32)
				var flop float64
				cpu0 := processCPU()
				for b.Loop() {
					for i, op := range ops {
						for range counts[i] {
							op.run(p)
						}
						flop += op.flop() * float64(counts[i])
					}
				}
				reportGFLOPs(b, flop, processCPU()-cpu0)
			})
		}
	}
}
