package optim

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// TestClipGradNormAgainstPyTorch compares with torch.nn.utils.clip_grad_norm_.
// PyTorch reduces in float32 and relupo in float64, so the norm agrees to
// float32 precision (1e-6 relative) and the clipped gradients to within a
// couple of float32 units in the last place (the coefficient may differ by
// one unit).
func TestClipGradNormAgainstPyTorch(t *testing.T) {
	for _, c := range loadCases(t).Clip {
		t.Run(c.Name, func(t *testing.T) {
			grads := make([][]float32, len(c.Grads))
			for i, g := range c.Grads {
				grads[i] = fromBits(g)
			}
			norm := ClipGradNorm(grads, c.MaxNorm)
			if math.Abs(norm-c.TotalNorm) > 1e-6*c.TotalNorm {
				t.Errorf("norm = %.9g, want %.9g", norm, c.TotalNorm)
			}
			for i := range grads {
				checkBits(t, "grad", grads[i], fromBits(c.After[i]), 2)
			}
		})
	}
}

func TestClipGradNorm(t *testing.T) {
	t.Run("any number of cores", func(t *testing.T) {
		// Several chunks per tensor and a ragged last one: the norm is the
		// same, bit for bit, on one core and on four, and the float64 sum
		// of squares to 1e-12 relative.
		r := rand.New(rand.NewPCG(3, 4))
		grads := [][]float32{make([]float32, 3*clipChunk+5), make([]float32, 7), make([]float32, clipChunk)}
		var want float64
		for _, g := range grads {
			for i := range g {
				g[i] = float32(r.NormFloat64())
				want += float64(g[i]) * float64(g[i])
			}
		}
		want = math.Sqrt(want)
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
		one := ClipGradNorm(grads, 0)
		runtime.GOMAXPROCS(4)
		four := ClipGradNorm(grads, 0)
		if math.Float64bits(one) != math.Float64bits(four) || math.Abs(one-want) > 1e-12*want {
			t.Errorf("norm %v on one core, %v on four; want %v", one, four, want)
		}
		before := slices.Clone(grads[0])
		ClipGradNorm(grads, 1)
		c := float32(1 / (one + 1e-6))
		for i, v := range grads[0] {
			if v != before[i]*c {
				t.Fatalf("value %d: %v clipped to %v, want %v", i, before[i], v, before[i]*c)
			}
		}
	})
	t.Run("3-4-5", func(t *testing.T) {
		g := [][]float32{{3}, {0, 4}}
		if n := ClipGradNorm(g, 1); n != 5 {
			t.Errorf("norm = %v, want 5", n)
		}
		c := float32(1 / (5 + 1e-6))
		if g[0][0] != 3*c || g[1][1] != 4*c || g[1][0] != 0 {
			t.Errorf("clipped grads = %v", g)
		}
	})
	t.Run("disabled", func(t *testing.T) {
		g := [][]float32{{3, 4}}
		if n := ClipGradNorm(g, 0); n != 5 || g[0][0] != 3 || g[0][1] != 4 {
			t.Errorf("maxNorm 0: norm %v grads %v", n, g)
		}
	})
	t.Run("below max", func(t *testing.T) {
		g := [][]float32{{0.3, 0.4}}
		if n := ClipGradNorm(g, 1); math.Abs(n-0.5) > 1e-7 || g[0][0] != 0.3 || g[0][1] != 0.4 {
			t.Errorf("norm %v grads %v", n, g)
		}
	})
	t.Run("empty", func(t *testing.T) {
		if n := ClipGradNorm(nil, 1); n != 0 {
			t.Errorf("norm of nothing = %v", n)
		}
	})
	t.Run("no float32 overflow", func(t *testing.T) {
		g := [][]float32{{3e38, 3e38}}
		n := ClipGradNorm(g, 1)
		if math.IsInf(n, 0) || math.Abs(n-3e38*math.Sqrt2) > 1e32 {
			t.Errorf("norm = %v", n)
		}
		if g[0][0] > 1 {
			t.Errorf("not clipped: %v", g)
		}
	})
	for _, bad := range []float32{float32(math.NaN()), float32(math.Inf(-1))} {
		t.Run(fmt.Sprintf("non-finite %v", bad), func(t *testing.T) {
			g := [][]float32{{1, 2}, {bad}}
			n := ClipGradNorm(g, 1)
			if !(math.IsNaN(n) || math.IsInf(n, 1)) {
				t.Errorf("norm = %v, want NaN or +Inf", n)
			}
			if g[0][0] != 1 || g[0][1] != 2 {
				t.Errorf("grads changed despite a non-finite norm: %v", g)
			}
		})
	}
}

// TestScheduleAgainstHF compares with the rates a PyTorch LambdaLR produced
// from transformers' lambdas (see testdata/gen_optim_cases.py), step by step,
// including steps past the end.
func TestScheduleAgainstHF(t *testing.T) {
	for _, c := range loadCases(t).Schedules {
		t.Run(c.Kind, func(t *testing.T) {
			lr, err := Schedule(c.Kind, c.BaseLR, c.Warmup, c.Total)
			if err != nil {
				t.Fatal(err)
			}
			for k, want := range c.LRs {
				// λ ∈ [0, 1] and 1 + cos(·) cancels near the end of the
				// cosine, where Go's and C's cos differ in the last bit, so
				// the bound is absolute, relative to the base rate.
				if got := lr(k); math.Abs(got-want) > 1e-15*c.BaseLR {
					t.Errorf("W=%d T=%d: lr(%d) = %.17g, want %.17g", c.Warmup, c.Total, k, got, want)
				}
			}
		})
	}
}

func TestScheduleLinearWarmup(t *testing.T) {
	lr, err := Schedule(ScheduleLinear, 1, 2, 10)
	if err != nil {
		t.Fatal(err)
	}
	want := []float64{0, 0.5, 1, 7.0 / 8, 6.0 / 8, 5.0 / 8, 4.0 / 8, 3.0 / 8, 2.0 / 8, 1.0 / 8, 0, 0}
	for k, w := range want {
		if got := lr(k); got != w {
			t.Errorf("λ(%d) = %v, want %v", k, got, w)
		}
	}
	if lr(-3) != 0 {
		t.Errorf("negative step: %v", lr(-3))
	}
}

func TestScheduleErrors(t *testing.T) {
	for _, tc := range []struct {
		kind          string
		lr            float64
		warmup, total int
		wantErr       string
	}{
		{"polynomial", 1e-3, 0, 10, "valid: constant, constant_with_warmup, linear, cosine"},
		{ScheduleLinear, 1e-3, 0, 0, "needs the total number"},
		{ScheduleCosine, 1e-3, -1, 10, "must not be negative"},
		{ScheduleConstant, -1e-3, 0, 10, "non-negative"},
		{ScheduleConstant, math.Inf(1), 0, 10, "non-negative"},
	} {
		if _, err := Schedule(tc.kind, tc.lr, tc.warmup, tc.total); err == nil || !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("Schedule(%q, %v, %d, %d) error = %v, want %q", tc.kind, tc.lr, tc.warmup, tc.total, err, tc.wantErr)
		}
	}
}

func TestWarmupSteps(t *testing.T) {
	for _, c := range loadCases(t).Warmup {
		got, err := WarmupSteps(c.Steps, c.Ratio, c.Total)
		if err != nil || got != c.Want {
			t.Errorf("WarmupSteps(%d, %v, %d) = %d, %v; want %d", c.Steps, c.Ratio, c.Total, got, err, c.Want)
		}
	}
	for _, bad := range []struct {
		steps int
		ratio float64
		total int
	}{{-1, 0, 10}, {0, 1.5, 10}, {0, math.NaN(), 10}, {0, 0.1, -5}} {
		if _, err := WarmupSteps(bad.steps, bad.ratio, bad.total); err == nil {
			t.Errorf("WarmupSteps(%d, %v, %d): no error", bad.steps, bad.ratio, bad.total)
		}
	}
}
