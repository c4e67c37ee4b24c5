package model

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/relupo/relupo/internal/testutil"
	"github.com/relupo/relupo/kernels"
	"github.com/relupo/relupo/safetensors"
)

// golden is the part of ../shared/fixtures/golden/golden.json these tests read.
type golden struct {
	Data struct {
		Prompts  [][]int32 `json:"prompts"`
		Chosen   [][]int32 `json:"chosen"`
		Rejected [][]int32 `json:"rejected"`
	} `json:"data"`
	F32 struct {
		PolicyLogpSum    []float64          `json:"policy_logp_sum"`
		TokenCount       []float64          `json:"token_count"`
		ReferenceLogpSum []float64          `json:"reference_logp_sum"`
		GradGlobalL2     map[string]float64 `json:"grad_global_l2"`
	} `json:"f32"`
	Hyper map[string]map[string]float64 `json:"hyperparameters"`
}

func loadGolden(t *testing.T) (string, golden) {
	t.Helper()
	dir := testutil.SharedPath(t, "fixtures", "golden")
	b, err := os.ReadFile(filepath.Join(dir, "golden.json"))
	if err != nil {
		t.Fatal(err)
	}
	var g golden
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatal(err)
	}
	return dir, g
}

// goldenBatch packs the golden pairs as the reference lays them out:
// chosen sequences 0..B-1, then rejected sequences 0..B-1.
func goldenBatch(g golden) *Batch {
	b := &Batch{}
	for i := range g.Data.Prompts {
		b.Add(g.Data.Prompts[i], g.Data.Chosen[i])
	}
	for i := range g.Data.Prompts {
		b.Add(g.Data.Prompts[i], g.Data.Rejected[i])
	}
	return b
}

func mustLoad(t *testing.T, dir string) *Model {
	t.Helper()
	m, _, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// relErr is |got − want| / max(|want|, floor).
func relErr(got, want, floor float64) float64 {
	return math.Abs(got-want) / math.Max(math.Abs(want), floor)
}

// Per-sequence log-prob sums must match PyTorch's float32 run to 1e-5
// relative: golden.json's own float32-vs-float64 comparison shows float32
// rounding moves these sums by about 1e-6 relative, and our summation order
// (packed, blocked, float64 row sums) differs from PyTorch's.
func TestGoldenLogps(t *testing.T) {
	dir, g := loadGolden(t)
	for _, tc := range []struct {
		name    string
		model   string
		want    []float64
		workers int
	}{
		{"policy/serial", "tiny-llama", g.F32.PolicyLogpSum, 1},
		{"policy/parallel", "tiny-llama", g.F32.PolicyLogpSum, 2},
		{"reference", "tiny-llama-ref", g.F32.ReferenceLogpSum, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := mustLoad(t, filepath.Join(dir, tc.model))
			ws := &Workspace{Pool: kernels.NewPool(tc.workers)}
			defer ws.Pool.Close()
			sums, counts, err := m.Forward(ws, goldenBatch(g))
			if err != nil {
				t.Fatal(err)
			}
			for i := range tc.want {
				if float64(counts[i]) != g.F32.TokenCount[i] {
					t.Errorf("seq %d: count %d, want %v", i, counts[i], g.F32.TokenCount[i])
				}
				if e := relErr(sums[i], tc.want[i], 1); e > 1e-5 {
					t.Errorf("seq %d: logp sum %.8g, want %.8g (rel err %.2g)", i, sums[i], tc.want[i], e)
				}
			}
		})
	}
}

// Packing several sequences without padding must give the same numbers as
// running each sequence alone.
func TestPackedEqualsSingle(t *testing.T) {
	dir, g := loadGolden(t)
	m := mustLoad(t, filepath.Join(dir, "tiny-llama"))
	ws := &Workspace{}
	b := goldenBatch(g)
	packed, _, err := m.Forward(ws, b)
	if err != nil {
		t.Fatal(err)
	}
	for s := 0; s < b.NumSeqs(); s++ {
		one := &Batch{}
		seq := b.Tokens[b.Offsets[s]:b.Offsets[s+1]]
		one.Add(seq[:b.PromptLens[s]], seq[b.PromptLens[s]:])
		alone, _, err := m.Forward(ws, one)
		if err != nil {
			t.Fatal(err)
		}
		if e := relErr(alone[0], packed[s], 1); e > 1e-6 {
			t.Errorf("seq %d: alone %.8g, packed %.8g", s, alone[0], packed[s])
		}
	}
}

// dSums for the golden losses, written from method.md section B so the
// engine test does not depend on package pref. B pairs; rows 0..B-1 chosen.
func goldenDSums(kind string, g golden, sums []float64, counts []int) []float64 {
	B := len(sums) / 2
	d := make([]float64, len(sums))
	hp := g.Hyper[kind]
	for i := 0; i < B; i++ {
		nc, nr := float64(counts[i]), float64(counts[B+i])
		switch kind {
		case "repo":
			mg := sums[i]/nc - sums[B+i]/nr
			if hp["gamma"]-mg > 0 {
				d[i], d[B+i] = -1/nc/float64(B), 1/nr/float64(B)
			}
		case "simpo": // golden's SimPO: −log σ(β·M − γ) with TRL's raw γ
			z := hp["beta"]*(sums[i]/nc-sums[B+i]/nr) - hp["gamma"]
			w := -hp["beta"] / (1 + math.Exp(z)) / float64(B)
			d[i], d[B+i] = w/nc, -w/nr
		case "dpo":
			h := (sums[i] - sums[B+i]) - (g.F32.ReferenceLogpSum[i] - g.F32.ReferenceLogpSum[B+i])
			w := -hp["beta"] / (1 + math.Exp(hp["beta"]*h)) / float64(B)
			d[i], d[B+i] = w, -w
		}
	}
	return d
}

// Full gradient tensors against PyTorch autograd. Tolerance: 1e-4 relative
// to each tensor's largest entry (golden README: float32 gradients agree to
// about 1e-4), plus the global L2 norm to 1e-4 relative.
func TestGoldenGradients(t *testing.T) {
	dir, g := loadGolden(t)
	m := mustLoad(t, filepath.Join(dir, "tiny-llama"))
	for _, kind := range []string{"repo", "simpo", "dpo", "repo/kept-logits"} {
		t.Run(kind, func(t *testing.T) {
			kind, kept := strings.CutSuffix(kind, "/kept-logits")
			ws := &Workspace{Pool: kernels.NewPool(2), KeepLogits: kept}
			defer ws.Pool.Close()
			b := goldenBatch(g)
			sums, counts, err := m.Forward(ws, b)
			if err != nil {
				t.Fatal(err)
			}
			grads := NewParams(m.Config)
			if err := m.Backward(ws, b, goldenDSums(kind, g, sums, counts), grads); err != nil {
				t.Fatal(err)
			}
			compareGrads(t, grads, filepath.Join(dir, "grads_"+kind+".safetensors"))
			var sq float64
			for _, v := range grads.Mem {
				sq += float64(v) * float64(v)
			}
			if e := relErr(math.Sqrt(sq), g.F32.GradGlobalL2[kind], 1e-12); e > 1e-4 {
				t.Errorf("global grad norm %.8g, want %.8g", math.Sqrt(sq), g.F32.GradGlobalL2[kind])
			}
		})
	}
}

// sameGrads checks that every gradient tensor of got is within tol of the
// tensor's largest entry from want's (two layouts of one computation).
func sameGrads(t *testing.T, got, want *Params, tol float64) {
	t.Helper()
	for k, tn := range got.Tensors() {
		w := want.Tensors()[k].Data
		var scale, worst float64
		for i, v := range w {
			scale = math.Max(scale, math.Abs(float64(v)))
			worst = math.Max(worst, math.Abs(float64(tn.Data[i]-v)))
		}
		if worst > tol*scale {
			t.Errorf("%s: gradients differ by %.2g of max %.3g", tn.Name, worst/scale, scale)
		}
	}
}

// compareGrads checks every gradient tensor against PyTorch's, saved in a
// safetensors file, to 1e-4 of the tensor's largest entry.
func compareGrads(t *testing.T, grads *Params, path string) {
	t.Helper()
	f, err := safetensors.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if len(f.Names()) != len(grads.Tensors()) {
		t.Errorf("PyTorch has %d gradient tensors, we have %d", len(f.Names()), len(grads.Tensors()))
	}
	for _, tn := range grads.Tensors() {
		want, err := f.Float32(tn.Name)
		if err != nil {
			t.Fatal(err)
		}
		var scale float64
		for _, w := range want {
			scale = math.Max(scale, math.Abs(float64(w)))
		}
		worst, at := 0.0, 0
		for i, w := range want {
			if e := math.Abs(float64(tn.Data[i]-w)) / math.Max(scale, 1e-12); e > worst {
				worst, at = e, i
			}
		}
		if worst > 1e-4 {
			t.Errorf("%s: max error %.2g of max|grad| %.3g at %d (got %.6g want %.6g)", tn.Name, worst, scale, at, tn.Data[at], want[at])
		}
	}
}

// Shared-prompt execution (each pair's prompt once, both responses as
// prefixed sequences) equals the unshared layout: the same log-prob sums and
// counts, and the same gradient of every parameter, to float32 rounding
// (1e-5 of each tensor's largest gradient: only summation order differs).
func TestSharedPromptEqualsUnshared(t *testing.T) {
	dir, g := loadGolden(t)
	for _, name := range []string{"tiny-llama", "arch/qwen3", "arch/llama-gqa-tied"} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(dir, name)
			if name != "tiny-llama" {
				path = filepath.Join("testdata", name)
			}
			m := mustLoad(t, path)
			B := len(g.Data.Prompts)
			clip := func(ids []int32) []int32 { // the arch models have a 96-token vocabulary
				out := make([]int32, len(ids))
				for i, id := range ids {
					out[i] = id % int32(m.Config.VocabSize)
				}
				return out
			}
			unshared, shared := &Batch{}, &Batch{}
			for i := 0; i < B; i++ {
				unshared.Add(clip(g.Data.Prompts[i]), clip(g.Data.Chosen[i]))
			}
			for i := 0; i < B; i++ {
				unshared.Add(clip(g.Data.Prompts[i]), clip(g.Data.Rejected[i]))
			}
			var ci, ri []int
			for i := 0; i < B; i++ {
				shared.Add(clip(g.Data.Prompts[i]), nil)
				p := shared.NumSeqs() - 1
				ci = append(ci, shared.AddPrefixed(p, clip(g.Data.Chosen[i])))
				ri = append(ri, shared.AddPrefixed(p, clip(g.Data.Rejected[i])))
			}
			ws := &Workspace{Pool: kernels.NewPool(2)}
			defer ws.Pool.Close()
			uSums, uCounts, err := m.Forward(ws, unshared)
			if err != nil {
				t.Fatal(err)
			}
			dU := make([]float64, 2*B)
			for i := range dU {
				dU[i] = 0.1 * float64(i+1) * float64(1-2*(i%2))
			}
			uGrads := NewParams(m.Config)
			if err := m.Backward(ws, unshared, dU, uGrads); err != nil {
				t.Fatal(err)
			}
			sSums, sCounts, err := m.Forward(ws, shared)
			if err != nil {
				t.Fatal(err)
			}
			dS := make([]float64, shared.NumSeqs())
			for i := 0; i < B; i++ {
				if sCounts[ci[i]] != uCounts[i] || sCounts[ri[i]] != uCounts[B+i] {
					t.Fatalf("pair %d: counts %d/%d, unshared %d/%d", i, sCounts[ci[i]], sCounts[ri[i]], uCounts[i], uCounts[B+i])
				}
				if relErr(sSums[ci[i]], uSums[i], 1) > 1e-6 || relErr(sSums[ri[i]], uSums[B+i], 1) > 1e-6 {
					t.Fatalf("pair %d: sums %.8g/%.8g, unshared %.8g/%.8g", i, sSums[ci[i]], sSums[ri[i]], uSums[i], uSums[B+i])
				}
				dS[ci[i]], dS[ri[i]] = dU[i], dU[B+i]
			}
			sGrads := NewParams(m.Config)
			if err := m.Backward(ws, shared, dS, sGrads); err != nil {
				t.Fatal(err)
			}
			sameGrads(t, sGrads, uGrads, 1e-5)
		})
	}
}
