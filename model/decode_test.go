package model

import (
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/relupo/relupo/internal/testutil"
	"github.com/relupo/relupo/kernels"
)

// greedy decodes n tokens after each prompt with the KV cache, all prompts
// in one batch, and returns the new tokens.
func greedy(t *testing.T, d *Decoder, prompts [][]int32, n int) [][]int32 {
	t.Helper()
	caches := make([]*KVCache, len(prompts))
	for i := range caches {
		caches[i] = d.NewCache()
	}
	in := slices.Clone(prompts)
	out := make([][]int32, len(prompts))
	for step := 0; step < n; step++ {
		logits, err := d.Forward(caches, in)
		if err != nil {
			t.Fatal(err)
		}
		for s, lg := range logits {
			next := int32(Argmax(lg))
			out[s] = append(out[s], next)
			in[s] = []int32{next}
		}
	}
	for s, c := range caches {
		if want := len(prompts[s]) + n - 1; c.Len != want {
			t.Errorf("sequence %d: cache holds %d positions, want %d", s, c.Len, want)
		}
	}
	return out
}

// The greedy goldens of ../shared/README.md (from ONNX Runtime GenAI's test
// suite): the fp16 tiny-random-llama, the whole id sequence attended.
func TestGreedyGoldens(t *testing.T) {
	dir := testutil.SharedPath(t, "fixtures", "models", "tiny-random-llama")
	m := mustLoad(t, dir)
	pool := kernels.NewPool(2)
	defer pool.Close()
	cases := []struct {
		prompt []int32
		want   []int32
	}{
		{[]int32{0, 0, 0, 52}, []int32{12102, 30463, 4666, 17192, 3266, 18061}},
		{[]int32{0, 0, 195, 731}, []int32{29592, 4877, 18112, 22607, 12936, 997}},
	}
	t.Run("one at a time", func(t *testing.T) {
		for _, tc := range cases {
			got := greedy(t, NewDecoder(m, pool), [][]int32{tc.prompt}, len(tc.want))
			if !slices.Equal(got[0], tc.want) {
				t.Errorf("%v → %v, want %v", tc.prompt, got[0], tc.want)
			}
		}
	})
	t.Run("batched", func(t *testing.T) {
		// a third, shorter prompt makes the batch ragged
		prompts := [][]int32{cases[0].prompt, cases[1].prompt, {0, 52}}
		got := greedy(t, NewDecoder(m, pool), prompts, 6)
		for i, tc := range cases {
			if !slices.Equal(got[i], tc.want) {
				t.Errorf("%v → %v, want %v", tc.prompt, got[i], tc.want)
			}
		}
	})
}

// maxRelDiff is max |a−b| over the vector, relative to max |b| (at least 1).
func maxRelDiff(a, b []float32) float64 {
	var d, scale float64 = 0, 1
	for i := range a {
		d = math.Max(d, math.Abs(float64(a[i]-b[i])))
		scale = math.Max(scale, math.Abs(float64(b[i])))
	}
	return d / scale
}

// The cache must give the logits of a full forward over the growing
// sequence, for every architecture the model supports: GQA with tied
// embeddings, llama3 RoPE scaling, Qwen2 biases, Qwen3 head norms, Mistral.
//
// Tolerance: both paths run the same float32 operations in the same order
// per row (the decoder copies the attention kernel's arithmetic), but the
// GEMM kernel may block and accumulate a product differently with the
// number of rows it is given (a whole sequence against one or a few new
// rows), so results differ by float32 reassociation only: a few ulps per
// dot product, growing through the layers. Measured: at most 1e-6 of the
// largest logit on these models. 1e-5 of the largest logit is
// about 100 ulps at that magnitude, far below any real discrepancy (a wrong
// position or a missing bias moves logits by 1e-2 or more).
func TestDecodeMatchesFullForward(t *testing.T) {
	const tol = 1e-5
	pool := kernels.NewPool(2)
	defer pool.Close()
	dirs, err := filepath.Glob(filepath.Join("testdata", "arch", "*"))
	if err != nil {
		t.Fatal(err)
	}
	for _, dir := range dirs {
		if strings.HasSuffix(dir, ".json") {
			continue
		}
		t.Run(filepath.Base(dir), func(t *testing.T) {
			m := mustLoad(t, dir)
			ws := &Workspace{Pool: pool}
			d := NewDecoder(m, pool)
			r := rand.New(rand.NewPCG(1, 2))
			// Three sequences of 40, 25 and 33 tokens fed in ragged chunks:
			// prompts of 7, 1 and 12 tokens, then steps of 1 to 3 tokens.
			// A sequence leaves the batch when it is complete, so the batch
			// shrinks as well.
			lens := []int{40, 25, 33}
			chunks := [][]int{{7, 1, 2, 3}, {1, 1, 3}, {12, 2, 1}}
			full := make([][]int32, len(lens))
			caches := make([]*KVCache, len(lens))
			for s := range full {
				for range lens[s] {
					full[s] = append(full[s], int32(r.IntN(m.Config.VocabSize)))
				}
				caches[s] = d.NewCache()
			}
			checked := 0
			for step := 0; ; step++ {
				var seqs []int
				var cs []*KVCache
				var in [][]int32
				for s := range full {
					done := caches[s].Len
					if done == lens[s] {
						continue
					}
					n := min(chunks[s][min(step, len(chunks[s])-1)], lens[s]-done)
					seqs, cs, in = append(seqs, s), append(cs, caches[s]), append(in, full[s][done:done+n])
				}
				if len(seqs) == 0 {
					break
				}
				got, err := d.Forward(cs, in)
				if err != nil {
					t.Fatal(err)
				}
				b := &Batch{}
				for _, s := range seqs {
					b.Add(full[s][:caches[s].Len], nil)
				}
				want, err := m.LastLogits(ws, b)
				if err != nil {
					t.Fatal(err)
				}
				for i, s := range seqs {
					if e := maxRelDiff(got[i], want[i]); e > tol {
						t.Fatalf("step %d sequence %d (%d tokens): logits differ from a full forward by %.3g of the largest", step, s, caches[s].Len, e)
					}
					checked++
				}
			}
			if checked < 40 {
				t.Fatalf("only %d logit vectors checked", checked)
			}
		})
	}
}

func TestDecodeErrors(t *testing.T) {
	m := mustLoad(t, filepath.Join("testdata", "arch", "mistral"))
	pool := kernels.NewPool(1)
	defer pool.Close()
	d := NewDecoder(m, pool)
	shared := d.NewCache()
	for _, tc := range []struct {
		name   string
		caches []*KVCache
		tokens [][]int32
		want   string
	}{
		{"count mismatch", []*KVCache{d.NewCache()}, [][]int32{{1}, {2}}, "2 sequences"},
		{"nil cache", []*KVCache{nil}, [][]int32{{1}}, "no cache"},
		{"shared cache", []*KVCache{shared, shared}, [][]int32{{1}, {2}}, "shares"},
		{"empty", []*KVCache{d.NewCache()}, [][]int32{{}}, "no new tokens"},
		{"out of vocabulary", []*KVCache{d.NewCache()}, [][]int32{{1, 96}}, "outside the vocabulary"},
		{"negative", []*KVCache{d.NewCache()}, [][]int32{{-1}}, "outside the vocabulary"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := d.Forward(tc.caches, tc.tokens)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one mentioning %q", err, tc.want)
			}
			for _, c := range tc.caches {
				if c != nil && c.Len != 0 {
					t.Errorf("cache changed to %d positions on error", c.Len)
				}
			}
		})
	}
}
