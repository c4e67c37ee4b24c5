package bench

import (
	"context"
	"strings"
	"testing"

	"github.com/relupo/relupo/train"
)

// Train and Realistic run the trainer's own step on a tiny shape and
// account for their work exactly (no timing is asserted).
func TestTrainAndRealistic(t *testing.T) {
	cfg, err := ParseShape("256,32,64,2,4,2")
	if err != nil {
		t.Fatal(err)
	}
	ctx, comp := context.Background(), train.Compute{Threads: 2}
	for _, mode := range []string{"train", "ref-forward"} {
		t.Run(mode, func(t *testing.T) {
			var log strings.Builder
			r, err := Train(ctx, TrainConfig{Model: cfg, Mode: mode, Seq: 32, Pairs: 2, Steps: 2, Compute: comp, Log: &log})
			if err != nil {
				t.Fatal(err)
			}
			if r.StepsMeasured != 2 || r.TokensPerStep != 2*2*32 || r.ParamsTotal != cfg.NumParams() || !(r.StepSMin <= r.StepSMedian) {
				t.Errorf("result %+v", r)
			}
			if !strings.Contains(log.String(), "warm-up step") || strings.Count(log.String(), "\nstep ") != 2 {
				t.Errorf("log %q: want the warm-up and two steps", log.String())
			}
		})
	}
	lens := []PairLength{{Prompt: 5, Chosen: 3, Rejected: 4}, {Prompt: 0, Chosen: 2, Rejected: 6}, {Prompt: 7, Chosen: 1, Rejected: 1}}
	for _, share := range []bool{true, false} {
		r, err := Realistic(ctx, RealisticConfig{Model: cfg, Lengths: lens, Batch: 2, Share: share, Compute: comp})
		if err != nil {
			t.Fatal(err)
		}
		// Shared: each prompt once; unshared: once per response.
		want := (5 + 3 + 4) + (2 + 6) + (7 + 1 + 1)
		if !share {
			want += 5 + 7
		}
		if r.Pairs != 3 || r.Tokens != want {
			t.Errorf("share %v: %d pairs, %d tokens; want 3 and %d", share, r.Pairs, r.Tokens, want)
		}
	}
	if _, err := Train(ctx, TrainConfig{Model: cfg, Mode: "sample", Seq: 32, Pairs: 1, Steps: 1}); err == nil {
		t.Error("an unknown mode was accepted")
	}
}
