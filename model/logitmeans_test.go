package model

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/relupo/relupo/kernels"
)

// Workspace.LogitMeans gives, per sequence, the sum over its label rows of
// the mean logit over the vocabulary, as PyTorch computes it
// (testdata/gen_logit_means.py), in every Forward mode and with the prompt
// shared by a prefixed sequence; without LogitMeans, Forward leaves
// LogitMeanSums nil and its log-prob sums unchanged. Tolerance: each row's
// mean is of 96 float32 logits of magnitude ~1 whose rounding (1e-7
// relative each, from matrix products of 48 terms) mostly cancels in the
// mean; 1e-5 absolute on sums of ≤ 17 rows leaves a wide margin.
func TestLogitMeans(t *testing.T) {
	var want struct {
		Case  string    `json:"case"`
		Means []float64 `json:"logit_mean_sums"`
	}
	b, err := os.ReadFile(filepath.Join("testdata", "arch", "logit_means.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &want); err != nil {
		t.Fatal(err)
	}
	var exp struct {
		Sequences []struct{ Prompt, Response []int32 }
	}
	if b, err = os.ReadFile(filepath.Join("testdata", "arch", "expected.json")); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &exp); err != nil {
		t.Fatal(err)
	}
	m := mustLoad(t, filepath.Join("testdata", "arch", want.Case))
	pool := kernels.NewPool(2)
	defer pool.Close()
	batch := &Batch{}
	for _, s := range exp.Sequences {
		batch.Add(s.Prompt, s.Response)
	}
	plain, _, err := m.Forward(&Workspace{Pool: pool}, batch)
	if err != nil {
		t.Fatal(err)
	}
	for _, mode := range []struct {
		name         string
		keep, noGrad bool
	}{{"recompute", false, false}, {"keep logits", true, false}, {"no grad", false, true}} {
		t.Run(mode.name, func(t *testing.T) {
			ws := &Workspace{Pool: pool, KeepLogits: mode.keep, NoGrad: mode.noGrad, LogitMeans: true}
			sums, _, err := m.Forward(ws, batch)
			if err != nil {
				t.Fatal(err)
			}
			for s, w := range want.Means {
				if d := ws.LogitMeanSums[s] - w; d > 1e-5 || d < -1e-5 {
					t.Errorf("sequence %d: logit mean sum %.7f, PyTorch %.7f", s, ws.LogitMeanSums[s], w)
				}
				if sums[s] != plain[s] {
					t.Errorf("sequence %d: LogitMeans changed the log-prob sum: %v, without it %v", s, sums[s], plain[s])
				}
			}
		})
	}
	t.Run("shared prompt", func(t *testing.T) {
		s := exp.Sequences[4] // a 20-token prompt
		pb := &Batch{}
		pb.Add(s.Prompt, nil)
		seq := pb.AddPrefixed(0, s.Response)
		ws := &Workspace{Pool: pool, LogitMeans: true}
		if _, _, err := m.Forward(ws, pb); err != nil {
			t.Fatal(err)
		}
		if ws.LogitMeanSums[0] != 0 {
			t.Errorf("the prompt sequence has no labels, but a logit mean sum %v", ws.LogitMeanSums[0])
		}
		if d := ws.LogitMeanSums[seq] - want.Means[4]; d > 1e-5 || d < -1e-5 {
			t.Errorf("prefixed response: %.7f, PyTorch %.7f", ws.LogitMeanSums[seq], want.Means[4])
		}
	})
	t.Run("off", func(t *testing.T) {
		ws := &Workspace{Pool: pool}
		if _, _, err := m.Forward(ws, batch); err != nil {
			t.Fatal(err)
		}
		if ws.LogitMeanSums != nil {
			t.Error("LogitMeanSums filled without LogitMeans")
		}
	})
}
