package score

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// armormDir holds a tiny LlamaForRewardModelWithGating and the scores
// PyTorch gives it (scripts/goldens/gen_armorm_goldens.py).
var armormDir = filepath.Join("testdata", "armorm")

type armormGolden struct {
	Pattern        []int32
	Prompt         []int32
	Responses      [][]int32
	Sequences      [][]int32
	ReadPosition   []int `json:"read_position"`
	GatePosition   []int `json:"gate_position"`
	Scores         []float64
	F64Scores      []float64 `json:"f64_scores"`
	F32VsF64MaxRel float64   `json:"f32_vs_f64_max_rel"`
}

// armormTol is an absolute tolerance on scores of magnitude 0.005 to 3. A
// score is a gated sum of objectives of magnitude about 1 that partly
// cancel, so a relative bound would be meaningless near 0; PyTorch's own
// float32 scores differ from its float64 ones by up to 7e-5 relative to
// max(|score|, 1e-3) here, and a wrong position or layer moves a score by
// 1e-2 or more.
const armormTol = 2e-5

func TestArmoRMMatchesPyTorch(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(armormDir, "expected.json"))
	if err != nil {
		t.Fatal(err)
	}
	var g armormGolden
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatal(err)
	}
	rm, err := loadRewardWeights(armormDir, RewardOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer rm.Close()
	if rm.Gating == nil || rm.Head != nil || rm.Gating.K != 5 || len(rm.Gating.Layers) != 3 || rm.Gating.Temperature != 7 || rm.Gating.LogitScale != 1.7 {
		t.Fatalf("gating head %+v, score head %v", rm.Gating, rm.Head)
	}
	if !slices.Equal(rm.Gating.Pattern, ArmoRMPattern) {
		t.Errorf("default pattern %v, want ArmoRM's %v", rm.Gating.Pattern, ArmoRMPattern)
	}
	rm.Gating.Pattern = g.Pattern // the tiny vocabulary has no Llama-3 ids
	for i, s := range g.Sequences {
		if p, gp := rm.readPosition(s), rm.Gating.gatePosition(s); p != g.ReadPosition[i] || gp != g.GatePosition[i] {
			t.Errorf("sequence %d %v: read at %d, gated at %d; ArmoRM reads at %d, gates at %d", i, s, p, gp, g.ReadPosition[i], g.GatePosition[i])
		}
	}
	check := func(what string, got []float64) {
		t.Helper()
		for i := range g.Scores {
			if d := math.Abs(got[i] - g.F64Scores[i]); !(d <= armormTol) {
				t.Errorf("%s: sequence %d score %.7g, PyTorch float64 %.7g, float32 %.7g", what, i, got[i], g.F64Scores[i], g.Scores[i])
			}
		}
	}
	ctx := context.Background()
	got, err := rm.ScoreTokens(ctx, g.Sequences)
	if err != nil {
		t.Fatal(err)
	}
	check("one packed pass", got)

	// The responses to one prompt share its tokens (run once), and the
	// gating input lies in that shared prefix.
	n := len(g.Responses)
	out := make([]float64, n)
	if err := rm.runAll(ctx, []*group{makeGroup(g.Sequences[:n], out)}, nil); err != nil {
		t.Fatal(err)
	}
	check("shared prompt", append(out, got[n:]...))

	// No pattern, no score: the gating input is missing.
	_, err = rm.ScoreTokens(ctx, [][]int32{{1, 9, 10, 11}})
	if err == nil || !strings.Contains(err.Error(), "sequence 0: the tokens hold no [5 6 7] (ArmoRM reads its gating input") {
		t.Errorf("got %v, want a missing-pattern error", err)
	}
}

func TestArmoRMLoadErrors(t *testing.T) {
	files := []string{"config.json", "model.safetensors"}
	for _, tc := range []struct {
		name string
		edit func(c map[string]any)
		want string
	}{
		{"more objectives than the heads", func(c map[string]any) { c["num_objectives"] = 6 }, "regression_layer.weight has shape [5 16], config.json implies [6 16]"},
		{"fewer hidden layers", func(c map[string]any) { c["gating_n_hidden"] = 1 }, "gating.layers.1.weight has shape [8 8], config.json implies [5 8]"},
		{"wider gating", func(c map[string]any) { c["gating_hidden_dim"] = 9 }, "gating.layers.0.weight has shape [8 16], config.json implies [9 16]"},
		{"zero temperature", func(c map[string]any) { c["gating_temperature"] = 0 }, "not a gating network relupo can read"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for _, f := range files {
				b, err := os.ReadFile(filepath.Join(armormDir, f))
				if err != nil {
					t.Fatal(err)
				}
				if f == "config.json" {
					var c map[string]any
					if err := json.Unmarshal(b, &c); err != nil {
						t.Fatal(err)
					}
					tc.edit(c)
					b, _ = json.Marshal(c)
				}
				if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			_, err := loadRewardWeights(dir, RewardOptions{})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}
