package pref

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/relupo/relupo/internal/testutil"
)

// close reports whether got is within rtol·|want| + atol of want.
func close(got, want, rtol, atol float64) bool {
	return math.Abs(got-want) <= rtol*math.Abs(want)+atol
}

func checkSlice(t *testing.T, what string, got, want []float64, rtol, atol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: got %d values, want %d", what, len(got), len(want))
		return
	}
	for i := range want {
		if !close(got[i], want[i], rtol, atol) {
			t.Errorf("%s[%d] = %.17g, want %.17g", what, i, got[i], want[i])
		}
	}
}

// checkMetrics compares the metrics named in want; when exact is set the key
// sets must also be equal.
func checkMetrics(t *testing.T, got, want map[string]float64, exact bool, rtol, atol float64) {
	t.Helper()
	for k, w := range want {
		g, ok := got[k]
		if !ok {
			t.Errorf("metric %q missing", k)
			continue
		}
		if !close(g, w, rtol, atol) {
			t.Errorf("metric %q = %.17g, want %.17g", k, g, w)
		}
	}
	if exact {
		for k := range got {
			if _, ok := want[k]; !ok {
				t.Errorf("unexpected metric %q", k)
			}
		}
	}
}

// goldenConfig maps golden.json's loss keys to configurations. golden.json's
// SimPO uses TRL's raw γ applied as β·M − γ (β = 2, γ = 0.5), which is
// gamma_beta_ratio = γ/β = 0.25 in relupo's convention. Its RePO rewards are
// β-free average log-probs, while relupo logs β·A like the official RePO
// trainer, so the RePO entries are checked with β = 1.
var goldenConfigs = map[string]Config{
	"dpo":         {LossType: LossDPO, Beta: 0.1},
	"dpo_ls0.1":   {LossType: LossDPO, Beta: 0.1, LabelSmoothing: 0.1},
	"ipo":         {LossType: LossIPO, Beta: 0.1},
	"hinge":       {LossType: LossHinge, Beta: 0.1},
	"simpo":       {LossType: LossSimPO, Beta: 2, Gamma: 0.5 / 2},
	"repo":        {LossType: LossRePO, Beta: 1, Gamma: 0.5},
	"repo_gamma1": {LossType: LossRePO, Beta: 1, Gamma: 1},
}

type goldenFile struct {
	Synthetic struct {
		Inputs struct {
			PC []float64 `json:"policy_chosen_logp_sum"`
			PR []float64 `json:"policy_rejected_logp_sum"`
			RC []float64 `json:"reference_chosen_logp_sum"`
			RR []float64 `json:"reference_rejected_logp_sum"`
			NC []float64 `json:"chosen_count"`
			NR []float64 `json:"rejected_count"`
		} `json:"inputs"`
		Results map[string]struct {
			Loss      float64            `json:"loss"`
			PerPair   []float64          `json:"per_pair"`
			DChosen   []float64          `json:"dloss_dpolicy_chosen_sum"`
			DRejected []float64          `json:"dloss_dpolicy_rejected_sum"`
			Metrics   map[string]float64 `json:"metrics"`
		} `json:"results"`
	} `json:"synthetic_loss_vectors"`
	F32 struct {
		PolicySum []float64                     `json:"policy_logp_sum"`
		Count     []float64                     `json:"token_count"`
		RefSum    []float64                     `json:"reference_logp_sum"`
		Loss      map[string]float64            `json:"loss"`
		PerPair   map[string][]float64          `json:"per_pair_loss"`
		Metrics   map[string]map[string]float64 `json:"metrics"`
	} `json:"f32"`
}

func loadGolden(t *testing.T) goldenFile {
	t.Helper()
	path := testutil.SharedPath(t, "fixtures", "golden", "golden.json")
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var g goldenFile
	if err := json.Unmarshal(raw, &g); err != nil {
		t.Fatalf("parse golden.json: %v", err)
	}
	return g
}

// TestGoldenSynthetic checks every synthetic_loss_vectors entry. The inputs
// are exact float64 values, so only rounding-order differences remain.
func TestGoldenSynthetic(t *testing.T) {
	g := loadGolden(t)
	in := g.Synthetic.Inputs
	inputs := Inputs{ChosenLogps: in.PC, RejectedLogps: in.PR, ChosenTokens: in.NC, RejectedTokens: in.NR,
		RefChosenLogps: in.RC, RefRejectedLogps: in.RR}
	if len(g.Synthetic.Results) == 0 {
		t.Fatal("golden.json has no synthetic results")
	}
	for name, want := range g.Synthetic.Results {
		t.Run(name, func(t *testing.T) {
			c, ok := goldenConfigs[name]
			if !ok {
				t.Fatalf("no configuration for golden loss %q", name)
			}
			res, err := Compute(c, inputs)
			if err != nil {
				t.Fatal(err)
			}
			const rtol, atol = 1e-12, 1e-15
			if !close(res.Loss, want.Loss, rtol, atol) {
				t.Errorf("loss = %.17g, want %.17g", res.Loss, want.Loss)
			}
			checkSlice(t, "per_pair", res.PerPair, want.PerPair, rtol, atol)
			checkSlice(t, "dchosen", res.DChosen, want.DChosen, rtol, atol)
			checkSlice(t, "drejected", res.DRejected, want.DRejected, rtol, atol)
			checkMetrics(t, res.Metrics, want.Metrics, false, rtol, atol)
		})
	}
}

// TestGoldenF32 recomputes the f32 run's losses and metrics from its
// per-sequence sums. The sums are float32 values; PyTorch evaluated the
// losses in float32 while relupo works in float64, so agreement is limited
// by float32 rounding inside PyTorch: about 6e-8 relative per operation,
// hence 1e-6 relative. Values that result from cancellation (γ − M ≈ 0.15
// with average log-probs near −7, whose float32 spacing is 4.8e-7) carry an
// absolute error of a few 1e-7, hence the 1e-6 absolute floor.
func TestGoldenF32(t *testing.T) {
	g := loadGolden(t)
	f := g.F32
	b := len(f.PolicySum) / 2
	if b == 0 || len(f.Count) != 2*b || len(f.RefSum) != 2*b {
		t.Fatalf("golden f32 sums/counts have unexpected lengths %d/%d/%d", len(f.PolicySum), len(f.Count), len(f.RefSum))
	}
	inputs := Inputs{ChosenLogps: f.PolicySum[:b], RejectedLogps: f.PolicySum[b:],
		ChosenTokens: f.Count[:b], RejectedTokens: f.Count[b:],
		RefChosenLogps: f.RefSum[:b], RefRejectedLogps: f.RefSum[b:]}
	for name, wantLoss := range f.Loss {
		t.Run(name, func(t *testing.T) {
			c, ok := goldenConfigs[name]
			if !ok {
				t.Fatalf("no configuration for golden loss %q", name)
			}
			res, err := Compute(c, inputs)
			if err != nil {
				t.Fatal(err)
			}
			const rtol, atol = 1e-6, 1e-6
			if !close(res.Loss, wantLoss, rtol, atol) {
				t.Errorf("loss = %.9g, want %.9g", res.Loss, wantLoss)
			}
			checkSlice(t, "per_pair", res.PerPair, f.PerPair[name], rtol, atol)
			checkMetrics(t, res.Metrics, f.Metrics[name], false, rtol, atol)
		})
	}
}

type pyCase struct {
	Name   string `json:"name"`
	Config struct {
		LossType       string  `json:"loss_type"`
		Beta           float64 `json:"beta"`
		Gamma          float64 `json:"gamma"`
		LabelSmoothing float64 `json:"label_smoothing"`
	} `json:"config"`
	Inputs struct {
		PC []float64 `json:"chosen_logps"`
		PR []float64 `json:"rejected_logps"`
		NC []float64 `json:"chosen_tokens"`
		NR []float64 `json:"rejected_tokens"`
		RC []float64 `json:"ref_chosen_logps"`
		RR []float64 `json:"ref_rejected_logps"`
	} `json:"inputs"`
	Expected struct {
		Loss      float64            `json:"loss"`
		PerPair   []float64          `json:"per_pair"`
		DChosen   []float64          `json:"d_chosen"`
		DRejected []float64          `json:"d_rejected"`
		Metrics   map[string]float64 `json:"metrics"`
	} `json:"expected"`
}

// TestPyTorchCases checks RePO++, the DPO-based RePO variants, SimPO with
// label smoothing, ties on the threshold, all-filtered batches and very large
// |βz| against values and autograd derivatives generated by
// testdata/gen_pref_cases.py (float64 throughout). The full metric set must
// match, key for key.
func TestPyTorchCases(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("testdata", "pref_cases.json"))
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Cases []pyCase `json:"cases"`
	}
	if err := json.Unmarshal(raw, &file); err != nil {
		t.Fatalf("parse pref_cases.json: %v", err)
	}
	seen := map[string]bool{}
	for _, pc := range file.Cases {
		t.Run(pc.Name, func(t *testing.T) {
			c := Config{LossType: pc.Config.LossType, Beta: pc.Config.Beta, Gamma: pc.Config.Gamma,
				LabelSmoothing: pc.Config.LabelSmoothing}
			seen[c.LossType] = true
			in := Inputs{ChosenLogps: pc.Inputs.PC, RejectedLogps: pc.Inputs.PR, ChosenTokens: pc.Inputs.NC,
				RejectedTokens: pc.Inputs.NR, RefChosenLogps: pc.Inputs.RC, RefRejectedLogps: pc.Inputs.RR}
			res, err := Compute(c, in)
			if err != nil {
				t.Fatal(err)
			}
			const rtol, atol = 1e-12, 1e-15
			want := pc.Expected
			if !close(res.Loss, want.Loss, rtol, atol) {
				t.Errorf("loss = %.17g, want %.17g", res.Loss, want.Loss)
			}
			checkSlice(t, "per_pair", res.PerPair, want.PerPair, rtol, atol)
			checkSlice(t, "dchosen", res.DChosen, want.DChosen, rtol, atol)
			checkSlice(t, "drejected", res.DRejected, want.DRejected, rtol, atol)
			checkMetrics(t, res.Metrics, want.Metrics, true, rtol, atol)
			if strings.HasSuffix(pc.Name, "_tie") || strings.HasSuffix(pc.Name, "_all_filtered") {
				for i := range res.DChosen {
					if res.DChosen[i] != 0 || res.DRejected[i] != 0 {
						t.Errorf("pair %d on or past the threshold has gradient (%g, %g), want 0", i, res.DChosen[i], res.DRejected[i])
					}
				}
			}
		})
	}
	for _, lt := range LossTypes() {
		if !seen[lt] && lt != LossSimPOHinge { // added after the shared goldens; the travelling goldens check it
			t.Errorf("no PyTorch case for loss type %q", lt)
		}
	}
}

// TestFiniteDifference checks every loss's analytic derivative against a
// central difference of the batch loss. The inputs keep every pair at least
// 0.05 away from its ReLU kink, so the loss is smooth within the step.
func TestFiniteDifference(t *testing.T) {
	base := Inputs{
		ChosenLogps:      []float64{-12.5, -30.0, -7.25, -44.0, -3.1},
		RejectedLogps:    []float64{-15.0, -28.5, -9.0, -40.0, -20.2},
		ChosenTokens:     []float64{5, 12, 3, 20, 2},
		RejectedTokens:   []float64{6, 10, 4, 16, 9},
		RefChosenLogps:   []float64{-13.0, -29.0, -8.0, -45.5, -4.0},
		RefRejectedLogps: []float64{-14.0, -29.5, -8.5, -41.0, -19.0},
	}
	configs := []Config{
		{LossType: LossRePO, Beta: 2, Gamma: 0.5},
		{LossType: LossRePOPlusPlus, Beta: 2.5, Gamma: 0.5},
		{LossType: LossSimPO, Beta: 2.5, Gamma: 0.3, LabelSmoothing: 0.1},
		{LossType: LossDPO, Beta: 0.1, LabelSmoothing: 0.2},
		{LossType: LossIPO, Beta: 0.1},
		{LossType: LossHinge, Beta: 0.5},
		{LossType: LossDPORePO, Beta: 0.1, Gamma: 1},
		{LossType: LossDPORePOPlusPlus, Beta: 0.5, Gamma: 0.5},
	}
	const step = 1e-6
	for _, c := range configs {
		t.Run(c.LossType, func(t *testing.T) {
			res, err := Compute(c, base)
			if err != nil {
				t.Fatal(err)
			}
			loss := func(in Inputs) float64 {
				r, err := Compute(c, in)
				if err != nil {
					t.Fatal(err)
				}
				return r.Loss
			}
			for _, side := range []struct {
				name string
				get  func(Inputs) []float64
				d    []float64
			}{
				{"chosen", func(in Inputs) []float64 { return in.ChosenLogps }, res.DChosen},
				{"rejected", func(in Inputs) []float64 { return in.RejectedLogps }, res.DRejected},
			} {
				for i := range side.d {
					plus, minus := cloneInputs(base), cloneInputs(base)
					side.get(plus)[i] += step
					side.get(minus)[i] -= step
					fd := (loss(plus) - loss(minus)) / (2 * step)
					if !close(side.d[i], fd, 1e-6, 1e-9) {
						t.Errorf("d loss/d S_%s[%d] = %.12g, finite difference %.12g", side.name, i, side.d[i], fd)
					}
				}
			}
		})
	}
}

func cloneInputs(in Inputs) Inputs {
	cp := func(v []float64) []float64 { return append([]float64(nil), v...) }
	return Inputs{cp(in.ChosenLogps), cp(in.RejectedLogps), cp(in.ChosenTokens), cp(in.RejectedTokens),
		cp(in.RefChosenLogps), cp(in.RefRejectedLogps)}
}

// TestSimPOGammaConventions pins the mapping between TRL's raw simpo_gamma
// (applied as β·M − γ) and relupo's Gamma (gamma_beta_ratio, applied as
// β·(M − γ)): Gamma = simpo_gamma/β.
func TestSimPOGammaConventions(t *testing.T) {
	in := Inputs{ChosenLogps: []float64{-3, -7}, RejectedLogps: []float64{-4, -5}, ChosenTokens: []float64{2, 3},
		RejectedTokens: []float64{4, 2}}
	const beta, trlGamma = 2.0, 0.5
	res, err := Compute(Config{LossType: LossSimPO, Beta: beta, Gamma: trlGamma / beta}, in)
	if err != nil {
		t.Fatal(err)
	}
	for i := range in.ChosenLogps {
		m := in.ChosenLogps[i]/in.ChosenTokens[i] - in.RejectedLogps[i]/in.RejectedTokens[i]
		want := math.Log1p(math.Exp(-(beta*m - trlGamma))) // −log σ(β·M − γ_TRL)
		if !close(res.PerPair[i], want, 1e-14, 0) {
			t.Errorf("pair %d: loss %.17g, want %.17g", i, res.PerPair[i], want)
		}
	}
}

// TestLargeArguments checks that huge |βz| gives finite losses and the
// saturated derivatives.
func TestLargeArguments(t *testing.T) {
	in := Inputs{ChosenLogps: []float64{-1, -1e6}, RejectedLogps: []float64{-1e6, -1}, ChosenTokens: []float64{1, 1},
		RejectedTokens: []float64{1, 1}, RefChosenLogps: []float64{0, 0}, RefRejectedLogps: []float64{0, 0}}
	for _, lt := range LossTypes() {
		t.Run(lt, func(t *testing.T) {
			res, err := Compute(Config{LossType: lt, Beta: 1e3, Gamma: 0.5}, in)
			if err != nil {
				t.Fatal(err)
			}
			vals := append(append(append([]float64{res.Loss}, res.PerPair...), res.DChosen...), res.DRejected...)
			for k, v := range res.Metrics {
				if math.IsNaN(v) || math.IsInf(v, 0) {
					t.Errorf("metric %s = %v", k, v)
				}
			}
			for _, v := range vals {
				if math.IsNaN(v) || math.IsInf(v, 0) {
					t.Fatalf("non-finite value in %+v", res)
				}
			}
		})
	}
	// SimPO far on the wrong side: loss ≈ β|z|, derivative saturates at −β/B.
	res, err := Compute(Config{LossType: LossSimPO, Beta: 1e3}, in)
	if err != nil {
		t.Fatal(err)
	}
	if !close(res.PerPair[1], 1e3*(1e6-1), 1e-15, 0) || res.DChosen[1] != -1e3/2 || res.PerPair[0] != 0 {
		t.Errorf("saturated SimPO: per-pair %v, dchosen %v", res.PerPair, res.DChosen)
	}
}

func TestQuantile(t *testing.T) {
	// Expected values from numpy.quantile (default method "linear").
	xs := []float64{3, -1, 7, 0.5}
	for _, tc := range []struct{ q, want float64 }{
		{0, -1}, {0.1, -0.55}, {0.5, 1.75}, {0.9, 5.8}, {1, 7},
	} {
		if got := Quantile(xs, tc.q); !close(got, tc.want, 1e-15, 1e-15) {
			t.Errorf("Quantile(%v, %v) = %.17g, want %v", xs, tc.q, got, tc.want)
		}
	}
	if got := Quantile([]float64{2.5}, 0.9); got != 2.5 {
		t.Errorf("single value quantile = %v", got)
	}
	if !math.IsNaN(Quantile(nil, 0.5)) || !math.IsNaN(Quantile(xs, 1.5)) {
		t.Error("Quantile of empty input or q outside [0,1] should be NaN")
	}
	if xs[0] != 3 || xs[1] != -1 || xs[2] != 7 || xs[3] != 0.5 {
		t.Errorf("Quantile modified its input: %v", xs)
	}
}

func TestErrors(t *testing.T) {
	ok := Inputs{ChosenLogps: []float64{-1, -2}, RejectedLogps: []float64{-2, -3}, ChosenTokens: []float64{1, 2},
		RejectedTokens: []float64{1, 2}, RefChosenLogps: []float64{-1, -1}, RefRejectedLogps: []float64{-1, -1}}
	mod := func(f func(*Inputs)) Inputs { in := cloneInputs(ok); f(&in); return in }
	for _, tc := range []struct {
		name    string
		cfg     Config
		in      Inputs
		wantErr string
	}{
		{"unknown loss", Config{LossType: "kto", Beta: 1}, ok, "valid: repo, repo++, simpo"},
		{"zero beta", Config{LossType: LossSimPO}, ok, "beta must be positive"},
		{"nan gamma", Config{Beta: 1, Gamma: math.NaN()}, ok, "gamma must be finite"},
		{"smoothing on repo", Config{Beta: 1, LabelSmoothing: 0.1}, ok, "label smoothing is supported only"},
		{"smoothing too large", Config{LossType: LossDPO, Beta: 1, LabelSmoothing: 0.7}, ok, "[0, 0.5]"},
		{"empty batch", DefaultConfig(), Inputs{}, "empty batch"},
		{"length mismatch", DefaultConfig(), mod(func(in *Inputs) { in.RejectedLogps = in.RejectedLogps[:1] }), "RejectedLogps has 1 entries"},
		{"zero token count", DefaultConfig(), mod(func(in *Inputs) { in.RejectedTokens[1] = 0 }), "RejectedTokens[1] = 0"},
		{"missing counts", DefaultConfig(), mod(func(in *Inputs) { in.ChosenTokens = nil }), "ChosenTokens is required"},
		{"ipo needs counts", Config{LossType: LossIPO, Beta: 1}, mod(func(in *Inputs) { in.ChosenTokens = nil }), "ChosenTokens is required"},
		{"missing reference", Config{LossType: LossDPO, Beta: 1}, mod(func(in *Inputs) { in.RefRejectedLogps = nil }), "RefRejectedLogps is required"},
		{"nan logp", DefaultConfig(), mod(func(in *Inputs) { in.ChosenLogps[0] = math.NaN() }), "ChosenLogps[0] is not finite"},
		{"inf reference", Config{LossType: LossDPORePO, Beta: 1}, mod(func(in *Inputs) { in.RefChosenLogps[1] = math.Inf(-1) }), "RefChosenLogps[1] is not finite"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Compute(tc.cfg, tc.in)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("Compute error = %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
	// Inputs a loss does not use may be omitted.
	if _, err := Compute(Config{LossType: LossDPO, Beta: 0.1}, mod(func(in *Inputs) { in.ChosenTokens, in.RejectedTokens = nil, nil })); err != nil {
		t.Errorf("dpo without token counts: %v", err)
	}
	if _, err := Compute(DefaultConfig(), mod(func(in *Inputs) { in.RefChosenLogps, in.RefRejectedLogps = nil, nil })); err != nil {
		t.Errorf("repo without reference: %v", err)
	}
}

func TestConfig(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatal(err)
	}
	if (Config{Beta: 1}).lossType() != LossRePO {
		t.Error("empty loss type should mean repo")
	}
	for _, tc := range []struct {
		lt        string
		ref, cnts bool
	}{
		{LossRePO, false, true}, {LossRePOPlusPlus, false, true}, {LossSimPO, false, true}, {LossDPO, true, false},
		{LossIPO, true, true}, {LossHinge, true, false}, {LossDPORePO, true, false}, {LossDPORePOPlusPlus, true, false},
	} {
		c := Config{LossType: tc.lt, Beta: 1}
		if c.NeedsReference() != tc.ref || c.NeedsTokenCounts() != tc.cnts {
			t.Errorf("%s: NeedsReference %v NeedsTokenCounts %v, want %v %v", tc.lt, c.NeedsReference(), c.NeedsTokenCounts(), tc.ref, tc.cnts)
		}
	}
}
