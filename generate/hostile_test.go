package generate

import (
	"context"
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/relupo/relupo/chat"
	"github.com/relupo/relupo/internal/testutil"
)

// TestNonFiniteWeightsStop: a NaN or infinite weight makes every logit
// NaN; generation must stop with an error naming the prompt instead of
// emitting token 0 as an empty answer.
func TestNonFiniteWeightsStop(t *testing.T) {
	for _, c := range []struct {
		name string
		v    float32
	}{{"NaN", float32(math.NaN())}, {"+Inf", float32(math.Inf(1))}} {
		t.Run(c.name, func(t *testing.T) {
			d, done := tinyModel(t)
			defer done()
			for _, p := range d.Model.Params.Tensors() {
				if strings.Contains(p.Name, "layers.1.mlp.down_proj") {
					p.Data[0] = c.v
				}
			}
			_, err := Run(context.Background(), d, idText{}, [][]int32{{1, 5, 9}}, Options{MaxNewTokens: 4}, nil)
			if err == nil || !strings.Contains(err.Error(), "prompt 1, token 1: the model's logits are not finite") {
				t.Fatalf("got %v, want the non-finite logits named", err)
			}
		})
	}
}

func TestNonFinite(t *testing.T) {
	for _, c := range []struct {
		x    []float32
		want int
	}{
		{[]float32{1, 2, 3}, -1},
		{[]float32{1, float32(math.NaN())}, 1},
		{[]float32{float32(math.Inf(-1)), 0}, 0},
		{[]float32{math.MaxFloat32, -math.MaxFloat32}, -1},
	} {
		if got := nonFinite(c.x); got != c.want {
			t.Errorf("nonFinite(%v) = %d, want %d", c.x, got, c.want)
		}
	}
}

// TestLoadStopsWhenCancelled: preparing the prompts (template and
// tokenizer, for thousands of prompts) stops once ctx is done.
func TestLoadStopsWhenCancelled(t *testing.T) {
	dir := testutil.SharedPath(t, "fixtures", "models", "tiny-random-llama")
	recs := []Record{
		{Where: "p.jsonl:1", Messages: []chat.Message{{Role: "user", Content: "Hi"}}},
		{Where: "p.jsonl:2", Messages: []chat.Message{{Role: "user", Content: "Bye"}}},
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := Job{Model: dir}.load(ctx, recs)
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "p.jsonl:1") {
		t.Fatalf("got %v, want a stop at the first prompt", err)
	}
	if _, err := (Job{Model: dir}).load(context.Background(), recs); err != nil {
		t.Fatalf("uncancelled: %v", err)
	}
}

// TestThreadsBounded: --threads 1000000 would start a million goroutines.
func TestThreadsBounded(t *testing.T) {
	_, err := Job{Model: "m", Input: "p.jsonl", Options: Options{MaxNewTokens: 1}, Threads: 1000000}.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "threads 1000000 is not in [0, ") {
		t.Fatalf("got %v, want the thread count refused", err)
	}
}
