package train

import (
	"context"
	"math"
	"runtime/debug"
	"strings"
	"testing"
)

// A NaN weight in the embedding row of a token makes the step that sees the
// token non-finite (here its gradient: the token ends a response, so its own
// hidden state feeds no label, but NaN·0 is NaN in the weight gradients, as
// in PyTorch). The run must stop naming the step and the records, or with
// skip_nonfinite_steps skip and count those steps and finish.
func TestNonfiniteStepStopsOrSkips(t *testing.T) {
	exs := tinyExamples(6, 9)
	for i := range exs { // token 39 appears only at the end of pair 3's chosen response
		for _, seq := range [][]int32{exs[i].Prompt, exs[i].Chosen, exs[i].Rejected} {
			for j := range seq {
				if seq[j] == 39 {
					seq[j] = 38
				}
			}
		}
	}
	exs[3].Chosen = append(exs[3].Chosen, 39)
	poison := func() *Trainer {
		m := tinyModel(5)
		D := m.Config.HiddenSize
		m.Params.Embed[39*D] = float32(math.NaN())
		o := testOptions(t)
		o.PerDeviceTrainBatchSize, o.NumTrainEpochs = 2, 2
		return &Trainer{Config: mustConfig(t, o), Policy: m, Train: exs}
	}
	t.Run("stop", func(t *testing.T) {
		_, err := poison().Run(context.Background())
		if err == nil || !strings.Contains(err.Error(), "step 2: non-finite") || !strings.Contains(err.Error(), exs[3].Source) {
			t.Fatalf("got %v, want a non-finite error naming %s", err, exs[3].Source)
		}
	})
	t.Run("skip", func(t *testing.T) {
		tr := poison()
		tr.Config.Loop.SkipNonfinite = true
		sum, err := tr.Run(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if sum.NonfiniteSkipped != 2 || sum.Steps != 6 || math.IsNaN(sum.TrainLoss) {
			t.Fatalf("summary %+v: want 2 of 6 steps skipped and a finite loss", sum)
		}
		for _, v := range tr.Policy.Params.Mem[40*16:] { // every weight but the embedding stays finite
			if math.IsNaN(float64(v)) {
				t.Fatal("a skipped step updated the weights")
			}
		}
	})
}

func TestMemoryPreflight(t *testing.T) {
	o := testOptions(t)
	tr := &Trainer{Config: mustConfig(t, o), Policy: tinyModel(1), Train: tinyExamples(4, 1)}
	if err := tr.preflight(1 << 40); err != nil {
		t.Fatalf("plenty of memory: %v", err)
	}
	err := tr.preflight(1 << 10)
	if err == nil || !strings.Contains(err.Error(), "memory pre-flight") || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("got %v, want a pre-flight refusal", err)
	}
	tr.Config.Compute.Force = true
	if err := tr.preflight(1 << 10); err != nil {
		t.Fatalf("--force: %v", err)
	}

	// The collector's headroom counts: at GOGC=20 the estimate alone is
	// not enough, 1.2 times it is.
	tr.Config.Compute.Force = false
	defer debug.SetGCPercent(debug.SetGCPercent(20))
	est := tr.Policy.Config.MemoryEstimate(maxMicroTokens(tr.Train, o.PerDeviceTrainBatchSize), true)
	if err := tr.preflight(est); err == nil {
		t.Errorf("preflight(%d) passed: the GC headroom is not counted", est)
	}
	if err := tr.preflight(est * 12 / 10); err != nil {
		t.Errorf("preflight(1.2 × estimate): %v", err)
	}

	// Evaluation runs without gradients: a large evaluation batch adds
	// its shared activation buffers, not a training step's worth.
	tr.Eval, tr.Config.Loop.EvalBatchSize = tinyExamples(64, 2), 64
	c, trainTokens, evalTokens := tr.Policy.Config, maxMicroTokens(tr.Train, o.PerDeviceTrainBatchSize), maxMicroTokens(tr.Eval, 64)
	withEval := est + c.MemoryEstimate(evalTokens, false) - c.MemoryEstimate(trainTokens, false)
	if withEval <= est || withEval >= c.MemoryEstimate(evalTokens, true) {
		t.Fatalf("estimate with a %d-token evaluation batch: %d, training alone %d, as training %d", evalTokens, withEval, est, c.MemoryEstimate(evalTokens, true))
	}
	if err := tr.preflight(est * 12 / 10); err == nil {
		t.Errorf("preflight(%d) passed: the evaluation batch is not counted", est*12/10)
	}
	if err := tr.preflight(withEval * 12 / 10); err != nil {
		t.Errorf("preflight(1.2 × estimate with evaluation): %v", err)
	}
}
