package kernels

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

func BenchmarkTune(b *testing.B) {
	p := NewPool(0)
	defer p.Close()
	r := rand.New(rand.NewPCG(1, 2))
	for _, s := range benchShapes {
		if s.name != "135m/gateup/fwd" && s.name != "135m/down/dW" && s.name != "135m/gateup/dx" && s.name != "30m/qkvo/fwd" && s.name != "135m/logits/fwd" && s.name != "135m/logits/dx" {
			continue
		}
		x := randSlice(r, s.m*s.k)
		y := randSlice(r, s.n*s.k)
		c := make([]float32, s.m*s.n)
		for _, kc := range []int{128, 192, 256} {
			for _, mc := range []int{96, 192, 384} {
				b.Run(fmt.Sprintf("%s/%s/kc%d/mc%d", s.name, s.variant, kc, mc), func(b *testing.B) {
					gemmKC, gemmMC = kc, mc
					defer func() { gemmKC, gemmMC = 192, 192 }()
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
					b.ReportMetric(2*float64(s.m)*float64(s.n)*float64(s.k)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
				})
			}
		}
	}
}
