package bench

import (
	"context"
	"math"
	"strings"
	"testing"

	"github.com/relupo/relupo/train"
)

// TestTrainProfile checks the time split of real training steps on a tiny
// shape: every part is there, the measured parts add up to no more than
// the steps' wall time (the rest is "other", not negative), and the
// products' operations per step are exactly those of the shape: per layer
// the q, k, v, o, gate/up and down products over all 128 tokens, the logits
// over the 96 label rows (24 per sequence), each three times (forward,
// input gradient, weight gradient). No timing is asserted.
func TestTrainProfile(t *testing.T) {
	cfg, err := ParseShape("256,32,64,2,4,2") // V, D, I, L, H, KV: head dim 8
	if err != nil {
		t.Fatal(err)
	}
	const steps = 2
	r, err := Train(context.Background(), TrainConfig{Model: cfg, Mode: "train", Seq: 32, Pairs: 2, Steps: steps,
		Compute: train.Compute{Threads: 2}, Profile: true})
	if err != nil {
		t.Fatal(err)
	}
	sp := r.Profile
	if sp == nil {
		t.Fatal("no profile")
	}
	names := []string{"gemm", "attention", "elementwise", "optimizer", "other"}
	if len(sp.Parts) != len(names) {
		t.Fatalf("parts %+v", sp.Parts)
	}
	var sum float64
	for i, p := range sp.Parts {
		if p.Name != names[i] {
			t.Errorf("part %d is %q, want %q", i, p.Name, names[i])
		}
		if p.Name != "other" && !(p.SPerStep > 0) {
			t.Errorf("part %s took %v s a step", p.Name, p.SPerStep)
		}
		sum += p.SPerStep
	}
	if other := sp.Parts[4].SPerStep; other < 0 {
		t.Errorf("the parts add up to more than the step: other %v s", other)
	}
	if math.Abs(sum-sp.StepS) > 1e-9*sp.StepS {
		t.Errorf("parts sum to %v s, the step took %v s", sum, sp.StepS)
	}
	const N, D, I, KVD, V, rows = 128, 32, 64, 2 * 8, 256, 4 * 24
	perLayer := N * (D*D + 2*KVD*D + D*D + 2*I*D + I*D)
	want := 3 * 2 * float64(2*perLayer+rows*V*D)
	g := sp.Parts[0]
	if got := g.GFlops * 1e9 * g.SPerStep; math.Abs(got-want) > 1e-6*want {
		t.Errorf("gemm: %.0f flops a step, want %.0f", got, want)
	}
	if !(sp.PeakGFlopsF32 > 0) || !(g.PeakFraction > 0) || sp.Cores < 1 {
		t.Errorf("peak %v GFLOP/s on %d cores, gemm at %v of it", sp.PeakGFlopsF32, sp.Cores, g.PeakFraction)
	}
	var table strings.Builder
	if err := sp.WriteTable(&table); err != nil || !strings.Contains(table.String(), "optimizer") {
		t.Errorf("table %q, %v", table.String(), err)
	}
}
