package pref

// PyTorch comparisons that travel with the repository: they read only
// testdata/golden/losses.json, which scripts/goldens/gen_goldens.py writes
// with PyTorch autograd (see testdata/golden/README.md), so they run in any
// clone, without ../shared.

import (
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// travelCase is one loss evaluation of losses.json.
type travelCase struct {
	Config struct {
		LossType       string  `json:"loss_type"`
		Beta           float64 `json:"beta"`
		Gamma          float64 `json:"gamma"` // relupo's Gamma (see Config)
		LabelSmoothing float64 `json:"label_smoothing"`
		SFTWeight      float64 `json:"sft_weight"`
	} `json:"config"`
	Loss      float64            `json:"loss"`
	PerPair   []float64          `json:"per_pair"`
	DChosen   []float64          `json:"d_chosen"`
	DRejected []float64          `json:"d_rejected"`
	Active    []bool             `json:"active"` // RePO family: the ReLU argument is positive
	Metrics   map[string]float64 `json:"metrics"`
}

type travelFile struct {
	Inputs struct {
		PC []float64 `json:"chosen_logps"`
		PR []float64 `json:"rejected_logps"`
		NC []float64 `json:"chosen_tokens"`
		NR []float64 `json:"rejected_tokens"`
		RC []float64 `json:"ref_chosen_logps"`
		RR []float64 `json:"ref_rejected_logps"`
	} `json:"inputs"`
	Cases    map[string]travelCase `json:"cases"`
	SFTCases map[string]travelCase `json:"sft_cases"` // with sft_weight; see sft_travel_test.go
}

func loadTravel(t *testing.T) (travelFile, Inputs) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", "golden", "losses.json"))
	if err != nil {
		t.Fatal(err)
	}
	var f travelFile
	if err := json.Unmarshal(raw, &f); err != nil {
		t.Fatalf("parse losses.json: %v", err)
	}
	in := f.Inputs
	return f, Inputs{ChosenLogps: in.PC, RejectedLogps: in.PR, ChosenTokens: in.NC, RejectedTokens: in.NR,
		RefChosenLogps: in.RC, RefRejectedLogps: in.RR}
}

// Both sides compute in float64 from the same exact inputs, PyTorch by
// autograd through logsigmoid/relu and relupo with its closed forms, so only
// rounding order differs: 1e-12 relative, with a 1e-15 floor for values that
// are zero on one side (filtered pairs, whose derivative PyTorch writes as
// -0). These are not the float32 tolerances of the model's log-probs: no
// float32 value enters here.
const travelRtol, travelAtol = 1e-12, 1e-15

// checkTravelCase compares one Compute result with PyTorch's values; the
// metric key sets must be equal.
func checkTravelCase(t *testing.T, res Result, want travelCase) {
	t.Helper()
	if !close(res.Loss, want.Loss, travelRtol, travelAtol) {
		t.Errorf("loss = %.17g, PyTorch %.17g", res.Loss, want.Loss)
	}
	checkSlice(t, "per_pair", res.PerPair, want.PerPair, travelRtol, travelAtol)
	checkSlice(t, "d_chosen", res.DChosen, want.DChosen, travelRtol, travelAtol)
	checkSlice(t, "d_rejected", res.DRejected, want.DRejected, travelRtol, travelAtol)
	checkMetrics(t, res.Metrics, want.Metrics, true, travelRtol, travelAtol)
}

// TestTravelLosses checks every loss type (RePO with two γ, RePO++, SimPO
// with and without label smoothing and in TRL's raw-γ form, DPO with and
// without label smoothing, IPO, hinge, DPO w. RePO and DPO w. RePO++) on a
// batch of six pairs that mixes active and filtered pairs, one of them
// exactly on RePO's threshold: the batch loss, the per-pair losses,
// dLoss/dS for the chosen and rejected sums (PyTorch autograd), and every
// metric. Filtered pairs must get exactly zero gradient.
func TestTravelLosses(t *testing.T) {
	f, in := loadTravel(t)
	seen := map[string]bool{}
	for _, name := range slices.Sorted(maps.Keys(f.Cases)) {
		want := f.Cases[name]
		t.Run(name, func(t *testing.T) {
			wc := want.Config
			if wc.SFTWeight != 0 {
				t.Fatalf("case %s has sft_weight %v; those belong in sft_cases", name, wc.SFTWeight)
			}
			c := Config{LossType: wc.LossType, Beta: wc.Beta, Gamma: wc.Gamma, LabelSmoothing: wc.LabelSmoothing}
			seen[c.LossType] = true
			res, err := Compute(c, in)
			if err != nil {
				t.Fatal(err)
			}
			checkTravelCase(t, res, want)
			if want.Active != nil {
				var on, off int
				for i, a := range want.Active {
					if a {
						on++
						continue
					}
					off++
					if res.DChosen[i] != 0 || res.DRejected[i] != 0 {
						t.Errorf("filtered pair %d has gradient (%g, %g), want 0", i, res.DChosen[i], res.DRejected[i])
					}
				}
				if on == 0 || off == 0 {
					t.Errorf("the golden batch has %d active and %d filtered pairs; it must have both", on, off)
				}
			}
		})
	}
	for _, lt := range LossTypes() {
		if !seen[lt] {
			t.Errorf("no golden case for loss type %q", lt)
		}
	}
	for _, lt := range []string{LossSimPO, LossDPO} {
		smoothed := false
		for _, c := range f.Cases {
			smoothed = smoothed || (c.Config.LossType == lt && c.Config.LabelSmoothing > 0)
		}
		if !smoothed {
			t.Errorf("no golden case for %s with label smoothing", lt)
		}
	}
}
