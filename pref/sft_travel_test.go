package pref

import (
	"maps"
	"slices"
	"testing"
)

// TestTravelSFT checks the SimPO/RePO sft_weight term against PyTorch
// autograd (testdata/golden/losses.json, sft_cases): the batch loss gains
// SFTWeight·(−ΣS_chosen/Σn_chosen), the token-mean cross-entropy of the
// chosen responses, DChosen gains its derivative −SFTWeight/Σn_chosen, the
// per-pair losses stay the preference losses, and the metric sft_loss is
// −ΣS_chosen/Σn_chosen. Tolerances as in TestTravelLosses (float64 on both
// sides).
func TestTravelSFT(t *testing.T) {
	f, in := loadTravel(t)
	if len(f.SFTCases) == 0 {
		t.Fatal("losses.json has no sft_cases")
	}
	for _, name := range slices.Sorted(maps.Keys(f.SFTCases)) {
		want := f.SFTCases[name]
		t.Run(name, func(t *testing.T) {
			wc := want.Config
			if wc.SFTWeight == 0 {
				t.Fatalf("sft case %s has no sft_weight", name)
			}
			c := Config{LossType: wc.LossType, Beta: wc.Beta, Gamma: wc.Gamma, LabelSmoothing: wc.LabelSmoothing,
				SFTWeight: wc.SFTWeight}
			res, err := Compute(c, in)
			if err != nil {
				t.Fatal(err)
			}
			checkTravelCase(t, res, want)
			if _, ok := want.Metrics["sft_loss"]; !ok {
				t.Error("the golden case has no sft_loss metric")
			}
		})
	}
}
