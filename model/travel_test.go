package model

// PyTorch comparisons that travel with the repository: they read only
// testdata/golden, which scripts/goldens/gen_goldens.py writes with its own
// PyTorch Llama (see testdata/golden/README.md), so they run in any clone,
// without ../shared.

import (
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/relupo/relupo/kernels"
	"github.com/relupo/relupo/safetensors"
)

const travelDir = "testdata/golden"

// travelExpected is testdata/golden/expected.json.
type travelExpected struct {
	Prompts  [][]int32 `json:"prompts"`
	Chosen   [][]int32 `json:"chosen"`
	Rejected [][]int32 `json:"rejected"`
	// DSums is dL/dS for each sequence (chosen 0..B-1, then rejected); the
	// golden gradients are those of L = Σ DSums[s]·S[s].
	DSums    []float64 `json:"dsums"`
	LogpSums []float64 `json:"logp_sums"` // PyTorch float32 log-prob sums
	Counts   []int     `json:"counts"`
	// F32VsF64 is how far PyTorch's float32 run is from its float64 run;
	// BF16Autocast how far its bf16 autocast run is from the float32 one.
	F32VsF64     travelDrift `json:"f32_vs_f64"`
	BF16Autocast travelDrift `json:"bf16_autocast"`
}

// travelDrift measures a run's distance from a reference run.
type travelDrift struct {
	LogpSumMaxRelErr float64 `json:"logp_sum_max_rel_err"` // max |ΔS|/max(|S|, 1)
	LogpAvgMaxAbsErr float64 `json:"logp_avg_max_abs_err"` // max |ΔS/n|
	GradCos          float64 `json:"grad_cos"`             // cosine between the whole gradients
	GradNormRatio    float64 `json:"grad_norm_ratio"`      // ‖g‖/‖g_ref‖
	WorstTensorErr   float64 `json:"worst_tensor_err"`     // max over tensors of max|Δg|/max|g_ref|
}

type travelGolden struct {
	model *Model
	exp   travelExpected
	grads map[string][]float32 // PyTorch's float32 gradients by HF name
}

func loadTravel(t *testing.T) travelGolden {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(travelDir, "expected.json"))
	if err != nil {
		t.Fatal(err)
	}
	var g travelGolden
	if err := json.Unmarshal(raw, &g.exp); err != nil {
		t.Fatalf("parse expected.json: %v", err)
	}
	n := 2 * len(g.exp.Prompts)
	if n == 0 || len(g.exp.DSums) != n || len(g.exp.LogpSums) != n || len(g.exp.Counts) != n {
		t.Fatalf("expected.json: %d pairs, %d dsums, %d sums, %d counts", n/2, len(g.exp.DSums), len(g.exp.LogpSums), len(g.exp.Counts))
	}
	g.model = mustLoad(t, travelDir)
	f, err := safetensors.Open(filepath.Join(travelDir, "grads.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	g.grads = map[string][]float32{}
	for _, name := range f.Names() {
		if g.grads[name], err = f.Float32(name); err != nil {
			t.Fatal(err)
		}
	}
	return g
}

// batch packs the golden sequences as PyTorch laid them out: every pair's
// prompt+chosen, then every pair's prompt+rejected.
func (g travelGolden) batch() *Batch {
	b := &Batch{}
	for i, p := range g.exp.Prompts {
		b.Add(p, g.exp.Chosen[i])
	}
	for i, p := range g.exp.Prompts {
		b.Add(p, g.exp.Rejected[i])
	}
	return b
}

// sharedBatch lays the pairs out with shared prompts: each prompt once, and
// both responses continuing it (Batch.AddPrefixed). A pair with an empty
// prompt has nothing to share and gets two plain sequences. seq[k] is the
// batch sequence of golden sequence k (the prompts have no labels).
func (g travelGolden) sharedBatch() (b *Batch, seq []int) {
	B := len(g.exp.Prompts)
	b, seq = &Batch{}, make([]int, 2*B)
	for i, p := range g.exp.Prompts {
		if len(p) == 0 {
			b.Add(nil, g.exp.Chosen[i])
			seq[i] = b.NumSeqs() - 1
			b.Add(nil, g.exp.Rejected[i])
			seq[B+i] = b.NumSeqs() - 1
			continue
		}
		b.Add(p, nil)
		at := b.NumSeqs() - 1
		seq[i] = b.AddPrefixed(at, g.exp.Chosen[i])
		seq[B+i] = b.AddPrefixed(at, g.exp.Rejected[i])
	}
	return b, seq
}

// checkSums compares log-prob sums and label counts with PyTorch's float32
// run. seq maps golden sequence k to the batch's (nil: the identity).
// Tolerance 1e-5 relative (floor 1): PyTorch's own float32 run is within
// about 1e-7 of its float64 run (expected.json, f32_vs_f64), and relupo sums
// in another order (packed rows, blocked products, float64 row sums).
func (g travelGolden) checkSums(t *testing.T, sums []float64, counts []int, seq []int) {
	t.Helper()
	for k, want := range g.exp.LogpSums {
		s := k
		if seq != nil {
			s = seq[k]
		}
		if counts[s] != g.exp.Counts[k] {
			t.Errorf("sequence %d: %d labels, PyTorch %d", k, counts[s], g.exp.Counts[k])
		}
		if e := relErr(sums[s], want, 1); e > 1e-5 {
			t.Errorf("sequence %d: log-prob sum %.8g, PyTorch %.8g (rel err %.2g)", k, sums[s], want, e)
		}
	}
}

// gradErrs returns, for every parameter tensor, max|got − want|/max|want|
// against PyTorch's gradients; a tensor PyTorch has and relupo lacks (or the
// reverse) is an error.
func (g travelGolden) gradErrs(t *testing.T, grads *Params) map[string]float64 {
	t.Helper()
	if len(grads.Tensors()) != len(g.grads) {
		t.Errorf("relupo has %d gradient tensors, PyTorch %d", len(grads.Tensors()), len(g.grads))
	}
	errs := map[string]float64{}
	for _, tn := range grads.Tensors() {
		want, ok := g.grads[tn.Name]
		if !ok || len(want) != len(tn.Data) {
			t.Fatalf("%s: PyTorch gradient missing or of another size (%d values, relupo %d)", tn.Name, len(want), len(tn.Data))
		}
		var scale, worst float64
		for i, w := range want {
			scale = math.Max(scale, math.Abs(float64(w)))
			worst = math.Max(worst, math.Abs(float64(tn.Data[i])-float64(w)))
		}
		errs[tn.Name] = worst / math.Max(scale, 1e-30)
	}
	return errs
}

// checkGrads holds every gradient tensor to 1e-4 of its largest PyTorch
// value: float32 gradients through two layers of attention and the
// log-softmax carry a few 1e-6 of rounding on either side (expected.json's
// f32_vs_f64 shows PyTorch's own), and relupo's products sum in another
// order; 1e-4 leaves a margin of well over ten while a wrong term (a
// missing mask, a misplaced RoPE half, the wrong kv head) moves whole
// entries.
func (g travelGolden) checkGrads(t *testing.T, grads *Params) {
	t.Helper()
	for name, e := range g.gradErrs(t, grads) {
		if e > 1e-4 {
			t.Errorf("%s: gradient off by %.2g of its largest PyTorch value", name, e)
		}
	}
}

// TestTravelLogps checks the per-sequence log-prob sums and label counts of
// a packed batch (four pairs of different lengths; one with an empty
// prompt, one with a one-token prompt) against PyTorch's float32 run of an
// HF-faithful Llama (GQA, rope_theta 500, untied lm_head), on one and
// several workers and with NoGrad.
func TestTravelLogps(t *testing.T) {
	g := loadTravel(t)
	t.Logf("kernels: %s", kernels.Describe())
	for _, tc := range []struct {
		name    string
		workers int
		noGrad  bool
	}{{"serial", 1, false}, {"parallel", 2, false}, {"nograd", 2, true}} {
		t.Run(tc.name, func(t *testing.T) {
			ws := &Workspace{Pool: kernels.NewPool(tc.workers), NoGrad: tc.noGrad}
			defer ws.Pool.Close()
			sums, counts, err := g.model.Forward(ws, g.batch())
			if err != nil {
				t.Fatal(err)
			}
			g.checkSums(t, sums, counts, nil)
		})
	}
}

// TestTravelGradients checks the gradient of every parameter tensor for the
// golden dL/dS against PyTorch autograd (tolerance: see checkGrads), with the
// logits computed again in Backward or kept from Forward.
func TestTravelGradients(t *testing.T) {
	g := loadTravel(t)
	for _, tc := range []struct {
		name    string
		workers int
		keep    bool
	}{{"serial", 1, false}, {"parallel", 2, false}, {"kept-logits", 2, true}} {
		t.Run(tc.name, func(t *testing.T) {
			ws := &Workspace{Pool: kernels.NewPool(tc.workers), KeepLogits: tc.keep}
			defer ws.Pool.Close()
			b := g.batch()
			if _, _, err := g.model.Forward(ws, b); err != nil {
				t.Fatal(err)
			}
			grads := NewParams(g.model.Config)
			if err := g.model.Backward(ws, b, g.exp.DSums, grads); err != nil {
				t.Fatal(err)
			}
			g.checkGrads(t, grads)
		})
	}
}

// TestTravelSharedPrompt runs the pairs with shared prompts (each prompt
// once, both responses continuing it) and requires PyTorch's sums, counts
// and gradients, which come from separate prompt+response sequences, with
// the tolerances above; and, against relupo's own separate layout, the
// same sums to 1e-6 and gradients to 1e-5 of each tensor's largest (only
// the summation order differs).
func TestTravelSharedPrompt(t *testing.T) {
	g := loadTravel(t)
	ws := &Workspace{Pool: kernels.NewPool(2)}
	defer ws.Pool.Close()
	m := g.model

	plain := g.batch()
	pSums, _, err := m.Forward(ws, plain)
	if err != nil {
		t.Fatal(err)
	}
	pGrads := NewParams(m.Config)
	if err := m.Backward(ws, plain, g.exp.DSums, pGrads); err != nil {
		t.Fatal(err)
	}

	shared, seq := g.sharedBatch()
	if shared.Prefix == nil || len(shared.Tokens) >= len(plain.Tokens) {
		t.Fatalf("the shared layout shares nothing: %d tokens, separate %d", len(shared.Tokens), len(plain.Tokens))
	}
	sums, counts, err := m.Forward(ws, shared)
	if err != nil {
		t.Fatal(err)
	}
	g.checkSums(t, sums, counts, seq)
	for k, s := range seq {
		if e := relErr(sums[s], pSums[k], 1); e > 1e-6 {
			t.Errorf("sequence %d: shared %.9g, separate %.9g", k, sums[s], pSums[k])
		}
	}
	dS := make([]float64, shared.NumSeqs()) // the prompts themselves have no labels: 0
	for k, s := range seq {
		dS[s] = g.exp.DSums[k]
	}
	grads := NewParams(m.Config)
	if err := m.Backward(ws, shared, dS, grads); err != nil {
		t.Fatal(err)
	}
	g.checkGrads(t, grads)
	for k, tn := range grads.Tensors() {
		want := pGrads.Tensors()[k].Data
		var scale, worst float64
		for i, w := range want {
			scale = math.Max(scale, math.Abs(float64(w)))
			worst = math.Max(worst, math.Abs(float64(tn.Data[i]-w)))
		}
		if worst > 1e-5*scale {
			t.Errorf("%s: shared and separate gradients differ by %.2g of max %.3g", tn.Name, worst/scale, scale)
		}
	}
}

// travelMeasure runs the golden batch forward and backward in the given
// precision and measures it against PyTorch's float32 results, as the
// script measures PyTorch's bf16 autocast.
func travelMeasure(t *testing.T, g travelGolden, prec kernels.Precision) travelDrift {
	t.Helper()
	ws := &Workspace{Pool: kernels.NewPool(2)}
	defer ws.Pool.Close()
	ws.Pool.SetPrecision(prec)
	b := g.batch()
	sums, counts, err := g.model.Forward(ws, b)
	if err != nil {
		t.Fatal(err)
	}
	var d travelDrift
	for k, want := range g.exp.LogpSums {
		d.LogpSumMaxRelErr = math.Max(d.LogpSumMaxRelErr, relErr(sums[k], want, 1))
		d.LogpAvgMaxAbsErr = math.Max(d.LogpAvgMaxAbsErr, math.Abs(sums[k]-want)/float64(counts[k]))
	}
	grads := NewParams(g.model.Config)
	if err := g.model.Backward(ws, b, g.exp.DSums, grads); err != nil {
		t.Fatal(err)
	}
	var dot, n1, n2 float64
	for _, tn := range grads.Tensors() {
		for i, w := range g.grads[tn.Name] {
			x, y := float64(w), float64(tn.Data[i])
			dot, n1, n2 = dot+x*y, n1+x*x, n2+y*y
		}
	}
	d.GradCos, d.GradNormRatio = dot/math.Sqrt(n1*n2), math.Sqrt(n2/n1)
	for _, e := range g.gradErrs(t, grads) {
		d.WorstTensorErr = math.Max(d.WorstTensorErr, e)
	}
	return d
}

// TestTravelBF16 holds the BF16 precision (bfloat16 operands, float32 sums)
// to the drift PyTorch's own bf16 autocast shows on the same model and batch
// (expected.json, bf16_autocast), measured the same way against PyTorch's
// float32 run. relupo rounds only the operands of its products while
// autocast also rounds their results, so relupo is usually closer; the
// bound allows twice autocast's drift on the log-probs and the worst tensor,
// and on the gradient's direction (1 − cos) and length (|1 − ratio|), the
// latter with a floor of 5e-4 under autocast's (6e-5 here): the length
// error is a sum of roundings of both signs, whose size one small batch
// pins only roughly (with attention's products in bfloat16 too, as on AMX
// and AVX512_BF16, it is 2.9e-4 here, while autocast's own on the shared
// golden model is 2e-3 to 3e-3). The float32 run must stay at float32
// rounding, and bf16 must move the log-probs at all (autocast moves them by
// 1.8e-3), so the precision cannot silently be float32.
func TestTravelBF16(t *testing.T) {
	g := loadTravel(t)
	f32 := travelMeasure(t, g, kernels.F32)
	bf := travelMeasure(t, g, kernels.BF16)
	ac := g.exp.BF16Autocast
	t.Logf("float32:  %+v", f32)
	t.Logf("bf16:     %+v", bf)
	t.Logf("autocast: %+v", ac)
	if f32.LogpSumMaxRelErr > 1e-5 || f32.WorstTensorErr > 1e-4 {
		t.Errorf("float32 run off PyTorch's: %+v", f32)
	}
	if bf.LogpSumMaxRelErr < 1e-5 {
		t.Errorf("bf16 log-prob sums within %.2g of float32: the operands were not rounded", bf.LogpSumMaxRelErr)
	}
	const factor = 2
	for _, c := range []struct {
		what          string
		got, autocast float64
	}{
		{"log-prob sums (max rel err)", bf.LogpSumMaxRelErr, ac.LogpSumMaxRelErr},
		{"average log-probs (max abs err)", bf.LogpAvgMaxAbsErr, ac.LogpAvgMaxAbsErr},
		{"gradient direction (1 - cos)", 1 - bf.GradCos, 1 - ac.GradCos},
		{"gradient length (|1 - norm ratio|)", math.Abs(1 - bf.GradNormRatio), math.Max(math.Abs(1-ac.GradNormRatio), 5e-4)},
		{"worst gradient tensor", bf.WorstTensorErr, ac.WorstTensorErr},
	} {
		if c.got > factor*c.autocast {
			t.Errorf("bf16 %s: %.3g, more than %d× autocast's %.3g", c.what, c.got, factor, c.autocast)
		}
	}
}

// TestTravelKernelPaths runs the tests above again in child processes with
// RELUPO_KERNELS forcing the portable Go loops, the AVX2 path and the
// AVX512_BF16 (VDPBF16PS) bfloat16 path (the
// variable is read once, when package kernels initializes), so every matrix
// product path this CPU has is compared with PyTorch, not only the best one.
// (A path the CPU lacks falls back to the best one below it.)
func TestTravelKernelPaths(t *testing.T) {
	if os.Getenv("RELUPO_KERNELS") != "" {
		t.Skip("already running on a forced kernel path")
	}
	for _, path := range []string{"generic", "avx2", "avx512bf16"} {
		t.Run(path, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^TestTravel(Logps|Gradients|SharedPrompt|BF16)$", "-test.v", "-test.count=1")
			cmd.Env = append(os.Environ(), "RELUPO_KERNELS="+path)
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("with RELUPO_KERNELS=%s: %v\n%s", path, err, out)
			}
			if !strings.Contains(string(out), "--- PASS: TestTravelLogps") {
				t.Fatalf("with RELUPO_KERNELS=%s the travel tests did not run:\n%s", path, out)
			}
			if path == "generic" && !strings.Contains(string(out), "kernels: portable Go") {
				t.Errorf("RELUPO_KERNELS=generic did not select the portable Go loops:\n%s", out)
			}
			for _, line := range strings.Split(string(out), "\n") {
				if strings.Contains(line, "kernels: ") {
					t.Log(strings.TrimSpace(line))
				}
			}
		})
	}
}

// TestTravelGoldenConfig guards the golden model's shape: grouped-query
// attention, an untied lm_head and a non-default rope_theta, so that the
// comparisons above exercise them.
func TestTravelGoldenConfig(t *testing.T) {
	c := loadTravel(t).model.Config
	if c.NumKVHeads >= c.NumHeads || c.TieWordEmbeddings || c.RopeTheta == 10000 || c.NumLayers < 2 {
		t.Errorf("golden model config %+v does not exercise GQA, an untied lm_head, rope_theta and several layers", c)
	}
}
