package kernels

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// BenchmarkMatMulH times the products with bfloat16 weights (MatMulNTH,
// MatMulNNAccH) against the float32 products on the same weights widened,
// in both precisions, on the 135m preset's shapes and on Llama-3-8B-shaped
// ones (256 tokens: the forward products take MatMulNT's transposed
// evaluation there). Run the two variants of a shape back to back:
//
//	go test ./kernels -run '^$' -bench 'MatMulH/' -count 5
func BenchmarkMatMulH(b *testing.B) {
	p := NewPool(0)
	defer p.Close()
	r := rand.New(rand.NewPCG(3, 4))
	shapes := []struct {
		name, variant string
		m, n, k       int
	}{
		{"135m/q/fwd", "NT", 1024, 576, 576},
		{"135m/gateup/fwd", "NT", 1024, 3072, 576},
		{"135m/gateup/dx", "NN", 1024, 576, 3072},
		{"8b/q/fwd", "NT", 256, 4096, 4096},
		{"8b/q/dx", "NN", 256, 4096, 4096},
		{"8b/down/fwd", "NT", 256, 4096, 14336},
	}
	for _, s := range shapes {
		a := randSlice(r, s.m*s.k)
		bh, bw := randBF16(r, s.n*s.k)
		c := make([]float32, s.m*s.n)
		for _, prec := range []Precision{F32, BF16} {
			for _, weights := range []string{"f32", "bf16"} {
				b.Run(fmt.Sprintf("%s/%s/%s/weights-%s", s.name, s.variant, prec, weights), func(b *testing.B) {
					p.SetPrecision(prec)
					defer p.SetPrecision(F32)
					cpu0 := processCPU()
					for b.Loop() {
						switch {
						case s.variant == "NT" && weights == "f32":
							MatMulNT(p, c, a, bw, nil, s.m, s.n, s.k)
						case s.variant == "NT":
							MatMulNTH(p, c, a, bh, nil, s.m, s.n, s.k)
						case weights == "f32":
							MatMulNNAcc(p, c, a, bw, s.m, s.n, s.k)
						default:
							MatMulNNAccH(p, c, a, bh, s.m, s.n, s.k)
						}
					}
					reportGFLOPs(b, 2*float64(s.m)*float64(s.n)*float64(s.k)*float64(b.N), processCPU()-cpu0)
				})
			}
		}
	}
}
