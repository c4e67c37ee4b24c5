// Package generate produces answers with a relupo model: it reads prompts in
// the formats evaluation suites use (pre-tokenized ids, AlpacaEval
// instructions, Arena-Hard questions, chat messages, plain prompts), decodes
// them with the model's KV cache in continuous batches, samples the next
// token (greedy, temperature, top-k, top-p, seeded), stops at end-of-sequence
// tokens, end-of-turn tokens or stop strings, and writes the answers as
// relupo JSONL, an AlpacaEval outputs list or an Arena-Hard answer file.
package generate

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"

	"github.com/relupo/relupo/model"
)

// Sampling chooses how the next token is drawn from the logits, applied in
// the order Hugging Face's generate applies its logits processors:
// temperature, then top-k, then top-p.
type Sampling struct {
	// Temperature divides the logits; 0 means greedy decoding (the most
	// likely token, the first on ties), and TopK and TopP are then unused.
	Temperature float64
	// TopK keeps the K most likely tokens; 0 keeps all.
	TopK int
	// TopP keeps the smallest set of most likely tokens whose probabilities
	// sum to at least TopP (nucleus sampling); 1 (or 0) keeps all. At least
	// one token is always kept.
	TopP float64
}

// Validate reports a setting outside its range.
func (s Sampling) Validate() error {
	switch {
	case s.Temperature < 0 || math.IsNaN(s.Temperature) || math.IsInf(s.Temperature, 0):
		return fmt.Errorf("temperature %v must be ≥ 0", s.Temperature)
	case s.TopK < 0:
		return fmt.Errorf("top-k %d must be ≥ 0", s.TopK)
	case s.TopP < 0 || s.TopP > 1 || math.IsNaN(s.TopP):
		return fmt.Errorf("top-p %v must be in [0, 1]", s.TopP)
	}
	return nil
}

// Greedy reports whether the sampling is deterministic argmax decoding.
func (s Sampling) Greedy() bool { return s.Temperature == 0 }

// Sampler draws tokens for one sequence. Its random stream is its own, so a
// sequence's tokens depend only on the seed and the sequence's index, not on
// which other sequences share its batch. A Sampler is not safe for
// concurrent use.
type Sampler struct {
	cfg  Sampling
	rng  *rand.Rand
	idx  []int
	prob []float64
}

// NewSampler returns a sampler whose random stream is PCG(seed, stream).
func NewSampler(cfg Sampling, seed, stream uint64) *Sampler {
	return &Sampler{cfg: cfg, rng: rand.New(rand.NewPCG(seed, stream))}
}

// Sample returns the next token id drawn from logits.
func (s *Sampler) Sample(logits []float32) int {
	if s.cfg.Greedy() || len(logits) == 1 {
		return model.Argmax(logits)
	}
	V := len(logits)
	if cap(s.idx) < V {
		s.idx, s.prob = make([]int, V), make([]float64, V)
	}
	idx, prob := s.idx[:V], s.prob[:V]
	// Softmax of logits/T in float64, over the whole vocabulary.
	t := s.cfg.Temperature
	mx := math.Inf(-1)
	for _, l := range logits {
		mx = math.Max(mx, float64(l)/t)
	}
	var sum float64
	for i, l := range logits {
		idx[i] = i
		x := float64(l) / t
		if math.IsInf(x, -1) || math.IsNaN(x) {
			prob[i] = 0
			continue
		}
		prob[i] = math.Exp(x - mx)
		sum += prob[i]
	}
	n := V
	if s.cfg.TopK > 0 && s.cfg.TopK < V || s.cfg.TopP > 0 && s.cfg.TopP < 1 {
		// Most likely first; ties keep the lower id first, as a stable sort does.
		slices.SortStableFunc(idx, func(a, b int) int {
			switch {
			case prob[a] > prob[b]:
				return -1
			case prob[a] < prob[b]:
				return 1
			}
			return 0
		})
		if s.cfg.TopK > 0 {
			n = min(n, s.cfg.TopK)
		}
		if p := s.cfg.TopP; p > 0 && p < 1 {
			var kept float64
			for _, i := range idx[:n] {
				kept += prob[i]
			}
			// Keep the smallest prefix whose mass reaches p of what top-k kept.
			var cum float64
			for j, i := range idx[:n] {
				cum += prob[i]
				if cum >= p*kept {
					n = j + 1
					break
				}
			}
		}
		sum = 0
		for _, i := range idx[:n] {
			sum += prob[i]
		}
	}
	if !(sum > 0) {
		return model.Argmax(logits)
	}
	u := s.rng.Float64() * sum
	var cum float64
	for _, i := range idx[:n] {
		cum += prob[i]
		if u < cum {
			return i
		}
	}
	// Rounding left u at the very top: return the last token with mass.
	for j := n - 1; j >= 0; j-- {
		if prob[idx[j]] > 0 {
			return idx[j]
		}
	}
	return model.Argmax(logits)
}
