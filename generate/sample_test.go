package generate

import (
	"math"
	"slices"
	"testing"
)

func TestSamplingValidate(t *testing.T) {
	for _, tc := range []struct {
		s  Sampling
		ok bool
	}{
		{Sampling{}, true},
		{Sampling{Temperature: 0.7, TopK: 50, TopP: 0.9}, true},
		{Sampling{Temperature: -1}, false},
		{Sampling{Temperature: math.NaN()}, false},
		{Sampling{TopK: -1}, false},
		{Sampling{TopP: 1.5}, false},
	} {
		if err := tc.s.Validate(); (err == nil) != tc.ok {
			t.Errorf("%+v: error %v, want ok=%v", tc.s, err, tc.ok)
		}
	}
}

// counts draws n tokens from logits and returns how often each came up.
func counts(s *Sampler, logits []float32, n int) []int {
	c := make([]int, len(logits))
	for range n {
		c[s.Sample(logits)]++
	}
	return c
}

func TestSampler(t *testing.T) {
	// probabilities ∝ exp(logit): 0.5, 0.25, 0.125, 0.0625, 0.0625
	ln2 := float32(math.Ln2)
	logits := []float32{4 * ln2, 3 * ln2, 2 * ln2, ln2, ln2}
	const n = 20000
	for _, tc := range []struct {
		name    string
		s       Sampling
		allowed []int     // tokens that may appear
		want    []float64 // expected frequencies, nil to skip
	}{
		{"greedy", Sampling{}, []int{0}, []float64{1, 0, 0, 0, 0}},
		{"temperature 1", Sampling{Temperature: 1}, []int{0, 1, 2, 3, 4}, []float64{0.5, 0.25, 0.125, 0.0625, 0.0625}},
		{"top-k 2", Sampling{Temperature: 1, TopK: 2}, []int{0, 1}, []float64{2.0 / 3, 1.0 / 3, 0, 0, 0}},
		// nucleus: 0.5 < 0.7 ≤ 0.75, so the two most likely tokens
		{"top-p 0.7", Sampling{Temperature: 1, TopP: 0.7}, []int{0, 1}, []float64{2.0 / 3, 1.0 / 3, 0, 0, 0}},
		// exactly reaching p keeps the set: 0.5+0.25 = 0.75
		{"top-p 0.75", Sampling{Temperature: 1, TopP: 0.75}, []int{0, 1}, nil},
		{"top-p keeps at least one", Sampling{Temperature: 1, TopP: 0.01}, []int{0}, nil},
		// top-p after top-k renormalizes over the k kept: 0.5/0.875 ≥ 0.5
		{"top-k 3 then top-p 0.5", Sampling{Temperature: 1, TopK: 3, TopP: 0.5}, []int{0}, nil},
		{"high temperature flattens", Sampling{Temperature: 1e6}, []int{0, 1, 2, 3, 4}, []float64{0.2, 0.2, 0.2, 0.2, 0.2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := counts(NewSampler(tc.s, 7, 0), logits, n)
			for tok, k := range c {
				if k > 0 && !slices.Contains(tc.allowed, tok) {
					t.Errorf("token %d drawn %d times, only %v allowed", tok, k, tc.allowed)
				}
				if tc.want != nil {
					// 5 standard deviations of a binomial frequency
					sd := math.Sqrt(tc.want[tok]*(1-tc.want[tok])/n) + 1e-9
					if f := float64(k) / n; math.Abs(f-tc.want[tok]) > 5*sd {
						t.Errorf("token %d frequency %.4f, want %.4f", tok, f, tc.want[tok])
					}
				}
			}
		})
	}
}

func TestSamplerReproducible(t *testing.T) {
	logits := make([]float32, 1000)
	for i := range logits {
		logits[i] = float32(math.Sin(float64(i)))
	}
	cfg := Sampling{Temperature: 0.8, TopK: 100, TopP: 0.95}
	draw := func(seed, stream uint64) []int {
		s := NewSampler(cfg, seed, stream)
		var out []int
		for range 50 {
			out = append(out, s.Sample(logits))
		}
		return out
	}
	a, b := draw(42, 3), draw(42, 3)
	if !slices.Equal(a, b) {
		t.Fatalf("same seed and stream gave different tokens:\n%v\n%v", a, b)
	}
	if slices.Equal(a, draw(43, 3)) || slices.Equal(a, draw(42, 4)) {
		t.Errorf("a different seed or stream gave the same 50 tokens")
	}
}

func TestSamplerMaskedLogits(t *testing.T) {
	inf := float32(math.Inf(-1))
	s := NewSampler(Sampling{Temperature: 1, TopP: 0.9}, 1, 1)
	for range 100 {
		if tok := s.Sample([]float32{inf, 0, inf}); tok != 1 {
			t.Fatalf("drew masked token %d", tok)
		}
	}
}
