package generate

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/relupo/relupo/kernels"
	"github.com/relupo/relupo/model"
)

// tinyModel is a randomly initialized Llama small enough for unit tests.
func tinyModel(t *testing.T) (*model.Decoder, func()) {
	t.Helper()
	cfg := model.Config{ModelType: "llama", VocabSize: 64, HiddenSize: 32, IntermediateSize: 48, NumLayers: 2,
		NumHeads: 4, NumKVHeads: 2, HeadDim: 8, RMSNormEps: 1e-6, RopeTheta: 10000}
	m := model.New(cfg)
	m.Params.Init(3, 0.5) // large weights: peaked, varied distributions
	pool := kernels.NewPool(2)
	return model.NewDecoder(m, pool), pool.Close
}

// idText detokenizes id i as "<i>"; special tokens do not exist.
type idText struct{}

func (idText) Decode(ids []int, _ bool) string {
	var b strings.Builder
	for _, id := range ids {
		fmt.Fprintf(&b, "<%d>", id)
	}
	return b.String()
}

var testPrompts = [][]int32{{1, 5, 9}, {1, 2}, {1, 40, 41, 42, 43, 7}, {3}, {1, 5, 9}}

// referenceGreedy decodes one prompt with a full forward per token.
func referenceGreedy(t *testing.T, m *model.Model, prompt []int32, n int) []int {
	t.Helper()
	pool := kernels.NewPool(1)
	defer pool.Close()
	ws := &model.Workspace{Pool: pool}
	seq := slices.Clone(prompt)
	var out []int
	for range n {
		b := &model.Batch{}
		b.Add(seq, nil)
		lg, err := m.LastLogits(ws, b)
		if err != nil {
			t.Fatal(err)
		}
		next := model.Argmax(lg[0])
		out = append(out, next)
		seq = append(seq, int32(next))
	}
	return out
}

func TestRunGreedyMatchesFullForward(t *testing.T) {
	d, done := tinyModel(t)
	defer done()
	res, err := Run(context.Background(), d, idText{}, testPrompts, Options{MaxNewTokens: 8, BatchSize: 2}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range testPrompts {
		want := referenceGreedy(t, d.Model, p, 8)
		if !slices.Equal(res[i].OutputIDs, want) {
			t.Errorf("prompt %d: %v, want %v", i, res[i].OutputIDs, want)
		}
		if res[i].FinishReason != "length" || res[i].Text != (idText{}).Decode(want, true) || res[i].PromptTokens != len(p) {
			t.Errorf("prompt %d: result %+v", i, res[i])
		}
	}
}

// Sampled answers depend on the seed and the prompt's index only: not on
// the batch size, nor on which prompts decode alongside.
func TestRunReproducible(t *testing.T) {
	d, done := tinyModel(t)
	defer done()
	run := func(batch int, seed uint64) [][]int {
		res, err := Run(context.Background(), d, idText{}, testPrompts,
			Options{MaxNewTokens: 12, BatchSize: batch, Seed: seed, Sampling: Sampling{Temperature: 1, TopK: 20, TopP: 0.95}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		var ids [][]int
		for _, r := range res {
			ids = append(ids, r.OutputIDs)
		}
		return ids
	}
	a := run(1, 5)
	for _, batch := range []int{1, 2, 8} {
		if b := run(batch, 5); !slices.EqualFunc(a, b, slices.Equal) {
			t.Errorf("batch %d: %v, want %v", batch, b, a)
		}
	}
	if slices.EqualFunc(a, run(2, 6), slices.Equal) {
		t.Errorf("seeds 5 and 6 gave the same answers")
	}
	// prompts 0 and 4 are equal but draw from different streams
	if slices.Equal(a[0], a[4]) {
		t.Errorf("equal prompts at different indices gave the same sampled answer %v", a[0])
	}
}

func TestRunStops(t *testing.T) {
	d, done := tinyModel(t)
	defer done()
	prompt := [][]int32{testPrompts[2]}
	full := referenceGreedy(t, d.Model, prompt[0], 10)
	stopTok := full[3]
	firstAt := slices.Index(full, stopTok) // the stop token may come up earlier
	for _, tc := range []struct {
		name       string
		opt        Options
		wantIDs    []int
		wantText   string
		wantReason string
	}{
		{"stop token", Options{MaxNewTokens: 10, StopTokens: []int{stopTok}},
			full[:firstAt+1], idText{}.Decode(full[:firstAt], true), "stop"},
		{"ignore eos", Options{MaxNewTokens: 10, StopTokens: []int{stopTok}, IgnoreEOS: true},
			full, idText{}.Decode(full, true), "length"},
		{"stop string", Options{MaxNewTokens: 10, StopStrings: []string{"", fmt.Sprintf("<%d>", full[2])}},
			full[:slices.Index(full, full[2])+1], idText{}.Decode(full[:slices.Index(full, full[2])], true), "stop"},
		{"max new tokens", Options{MaxNewTokens: 4}, full[:4], idText{}.Decode(full[:4], true), "length"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := Run(context.Background(), d, idText{}, prompt, tc.opt, nil)
			if err != nil {
				t.Fatal(err)
			}
			r := res[0]
			if !slices.Equal(r.OutputIDs, tc.wantIDs) || r.Text != tc.wantText || r.FinishReason != tc.wantReason {
				t.Errorf("got ids %v text %q reason %s; want %v %q %s", r.OutputIDs, r.Text, r.FinishReason, tc.wantIDs, tc.wantText, tc.wantReason)
			}
		})
	}
}

func TestRunProgressAndErrors(t *testing.T) {
	d, done := tinyModel(t)
	defer done()
	var seen []Progress
	_, err := Run(context.Background(), d, idText{}, testPrompts, Options{MaxNewTokens: 3, BatchSize: 2}, func(p Progress) { seen = append(seen, p) })
	if err != nil {
		t.Fatal(err)
	}
	if len(seen) != len(testPrompts) || seen[len(seen)-1].Done != len(testPrompts) || seen[len(seen)-1].GeneratedTokens != 3*len(testPrompts) {
		t.Errorf("progress %+v", seen)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Run(ctx, d, idText{}, testPrompts, Options{MaxNewTokens: 3}, nil); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled run: error %v", err)
	}
	for _, tc := range []struct {
		name    string
		prompts [][]int32
		opt     Options
		want    string
	}{
		{"no new tokens", testPrompts, Options{}, "max new tokens"},
		{"bad sampling", testPrompts, Options{MaxNewTokens: 1, Sampling: Sampling{TopP: 2}}, "top-p"},
		{"empty prompt", [][]int32{{1}, {}}, Options{MaxNewTokens: 1}, "prompt 2 is empty"},
		{"out of vocabulary", [][]int32{{1}, {64}}, Options{MaxNewTokens: 1}, "prompt 2: token id 64 outside the vocabulary"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Run(context.Background(), d, idText{}, tc.prompts, tc.opt, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one mentioning %q", err, tc.want)
			}
		})
	}
}

// Sample j of prompt i draws from a stream of (seed, i, j) alone: the
// answers do not depend on the batch size, the threads, nor on how many
// samples are drawn per prompt, and sample 0 is the answer a single-sample
// run gives.
func TestRunReturnSequences(t *testing.T) {
	cfg := model.Config{ModelType: "llama", VocabSize: 64, HiddenSize: 32, IntermediateSize: 48, NumLayers: 2,
		NumHeads: 4, NumKVHeads: 2, HeadDim: 8, RMSNormEps: 1e-6, RopeTheta: 10000}
	m := model.New(cfg)
	m.Params.Init(3, 0.5)
	sampling := Sampling{Temperature: 1, TopK: 20, TopP: 0.95}
	run := func(k, batch, threads int) [][]int {
		pool := kernels.NewPool(threads)
		defer pool.Close()
		var progress []int
		res, err := Run(context.Background(), model.NewDecoder(m, pool), idText{}, testPrompts,
			Options{MaxNewTokens: 10, BatchSize: batch, Seed: 11, Sampling: sampling, NumReturnSequences: k, StopTokens: []int{7}},
			func(p Progress) { progress = append(progress, p.Done) })
		if err != nil {
			t.Fatal(err)
		}
		if len(res) != len(testPrompts)*max(k, 1) || len(progress) != len(res) || progress[len(progress)-1] != len(res) {
			t.Fatalf("K %d: %d results, progress %v", k, len(res), progress)
		}
		var ids [][]int
		for _, r := range res {
			ids = append(ids, r.OutputIDs)
		}
		return ids
	}
	want := run(4, 1, 1)
	for _, tc := range []struct{ k, batch, threads int }{{4, 3, 2}, {4, 8, 1}, {4, 16, 2}, {2, 2, 2}, {1, 5, 1}, {0, 8, 2}} {
		t.Run(fmt.Sprintf("K%d_batch%d_threads%d", tc.k, tc.batch, tc.threads), func(t *testing.T) {
			got := run(tc.k, tc.batch, tc.threads)
			k := max(tc.k, 1)
			for i := range testPrompts {
				for j := range k {
					if g, w := got[i*k+j], want[i*4+j]; !slices.Equal(g, w) {
						t.Errorf("prompt %d sample %d: %v, want %v", i, j, g, w)
					}
				}
			}
		})
	}
	// A prompt's samples differ from one another: each has its own stream.
	for i := range testPrompts {
		if slices.Equal(want[i*4], want[i*4+1]) && slices.Equal(want[i*4+1], want[i*4+2]) {
			t.Errorf("prompt %d: samples 0-2 are all %v", i, want[i*4])
		}
	}
	// Sample 0 is the single answer of the one-sample layout (stream i).
	pool := kernels.NewPool(1)
	defer pool.Close()
	single, err := Run(context.Background(), model.NewDecoder(m, pool), idText{}, testPrompts,
		Options{MaxNewTokens: 10, BatchSize: 8, Seed: 11, Sampling: sampling, StopTokens: []int{7}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range single {
		if !slices.Equal(r.OutputIDs, want[i*4]) {
			t.Errorf("prompt %d: single answer %v, want sample 0 %v", i, r.OutputIDs, want[i*4])
		}
	}
}
