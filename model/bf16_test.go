package model

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/relupo/relupo/kernels"
	"github.com/relupo/relupo/safetensors"
)

// bf16Drift is how far a bf16 computation moves the golden model's numbers
// from PyTorch's float32 ones; testdata/bf16_autocast.json holds the same
// measures for PyTorch's bf16 autocast (testdata/gen_bf16_autocast.py).
type bf16Drift struct {
	LogpSumMaxRelErr float64 `json:"logp_sum_max_rel_err"`
	LogpAvgMaxAbsErr float64 `json:"logp_avg_max_abs_err"`
	Grads            map[string]gradDrift
}

type gradDrift struct {
	Cos       float64 `json:"grad_cos"`        // cosine between the whole gradients
	NormRatio float64 `json:"grad_norm_ratio"` // ‖g_bf16‖ / ‖g_f32‖
	Worst     float64 `json:"worst_tensor_err"`
}

// TestBF16Accuracy measures the BF16 precision (bfloat16 operands, float32
// sums) on the golden model against PyTorch's float32 log-probs and
// gradients, and holds it to the drift of PyTorch's own bf16 autocast: no
// measure may be more than twice autocast's (and 1 − cos no more than twice
// autocast's). Measured here with attention in bfloat16 too (AMX-BF16;
// BENCHMARKS.md): log-prob sums 1.4e-3 relative (autocast 1.4e-3), gradient
// cosines 0.99994 (autocast 0.99991–0.99993), worst per-tensor error
// 1.7–1.9% of the tensor's largest gradient (autocast 2.1–2.9%). The float32 run of the same test must stay at float32 rounding,
// and bf16 must move the numbers at all, so the precision cannot silently be
// float32.
func TestBF16Accuracy(t *testing.T) {
	dir, g := loadGolden(t)
	var torch struct {
		bf16Drift
		Repo  gradDrift `json:"repo"`
		SimPO gradDrift `json:"simpo"`
		DPO   gradDrift `json:"dpo"`
	}
	b, err := os.ReadFile(filepath.Join("testdata", "bf16_autocast.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &torch); err != nil {
		t.Fatal(err)
	}
	torchGrads := map[string]gradDrift{"repo": torch.Repo, "simpo": torch.SimPO, "dpo": torch.DPO}
	m := mustLoad(t, filepath.Join(dir, "tiny-llama"))
	f32 := measureDrift(t, m, g, dir, kernels.F32)
	bf := measureDrift(t, m, g, dir, kernels.BF16)
	t.Logf("float32: %+v", f32)
	t.Logf("bf16:    %+v", bf)
	t.Logf("autocast: %+v %+v", torch.bf16Drift, torchGrads)
	if f32.LogpSumMaxRelErr > 1e-5 {
		t.Errorf("float32 log-prob sums off by %.2g relative", f32.LogpSumMaxRelErr)
	}
	if bf.LogpSumMaxRelErr < 1e-5 {
		t.Errorf("bf16 log-prob sums within %.2g of float32: the products were not rounded", bf.LogpSumMaxRelErr)
	}
	const factor = 2
	if bf.LogpSumMaxRelErr > factor*torch.LogpSumMaxRelErr {
		t.Errorf("bf16 log-prob sums off by %.3g relative, autocast %.3g", bf.LogpSumMaxRelErr, torch.LogpSumMaxRelErr)
	}
	if bf.LogpAvgMaxAbsErr > factor*torch.LogpAvgMaxAbsErr {
		t.Errorf("bf16 average log-probs off by %.3g, autocast %.3g", bf.LogpAvgMaxAbsErr, torch.LogpAvgMaxAbsErr)
	}
	for kind, want := range torchGrads {
		got := bf.Grads[kind]
		if 1-got.Cos > factor*(1-want.Cos) || math.Abs(1-got.NormRatio) > factor*math.Abs(1-want.NormRatio) || got.Worst > factor*want.Worst {
			t.Errorf("%s gradients: bf16 %+v, autocast %+v", kind, got, want)
		}
		if f := f32.Grads[kind]; f.Worst > 1e-4 {
			t.Errorf("%s gradients in float32: worst tensor error %.2g", kind, f.Worst)
		}
	}
}

// measureDrift runs the golden batch forward and backward (RePO, SimPO, DPO)
// in the given precision and compares with golden.json and the golden
// gradient files.
func measureDrift(t *testing.T, m *Model, g golden, dir string, prec kernels.Precision) bf16Drift {
	t.Helper()
	ws := &Workspace{Pool: kernels.NewPool(2)}
	defer ws.Pool.Close()
	ws.Pool.SetPrecision(prec)
	b := goldenBatch(g)
	sums, counts, err := m.Forward(ws, b)
	if err != nil {
		t.Fatal(err)
	}
	d := bf16Drift{Grads: map[string]gradDrift{}}
	for i := range sums {
		want, n := g.F32.PolicyLogpSum[i], g.F32.TokenCount[i]
		d.LogpSumMaxRelErr = math.Max(d.LogpSumMaxRelErr, relErr(sums[i], want, 1))
		d.LogpAvgMaxAbsErr = math.Max(d.LogpAvgMaxAbsErr, math.Abs(sums[i]/float64(counts[i])-want/n))
	}
	for _, kind := range []string{"repo", "simpo", "dpo"} {
		grads := NewParams(m.Config)
		if err := m.Backward(ws, b, goldenDSums(kind, g, sums, counts), grads); err != nil {
			t.Fatal(err)
		}
		f, err := safetensors.Open(filepath.Join(dir, "grads_"+kind+".safetensors"))
		if err != nil {
			t.Fatal(err)
		}
		var dot, n1, n2, worst float64
		for _, tn := range grads.Tensors() {
			want, err := f.Float32(tn.Name)
			if err != nil {
				t.Fatal(err)
			}
			var scale, w float64
			for _, x := range want {
				scale = math.Max(scale, math.Abs(float64(x)))
			}
			for i, x := range want {
				y := float64(tn.Data[i])
				dot += float64(x) * y
				n1 += float64(x) * float64(x)
				n2 += y * y
				w = math.Max(w, math.Abs(y-float64(x))/math.Max(scale, 1e-12))
			}
			worst = math.Max(worst, w)
		}
		f.Close()
		d.Grads[kind] = gradDrift{Cos: dot / math.Sqrt(n1*n2), NormRatio: math.Sqrt(n2 / n1), Worst: worst}
	}
	return d
}
