package train

import (
	"github.com/relupo/relupo/model"
	"github.com/relupo/relupo/pref"
)

// PairLogps holds a micro-batch's per-response log-prob sums and label counts.
type PairLogps struct {
	Chosen, Rejected             []float64
	ChosenTokens, RejectedTokens []float64
}

// packPairs lays out B pairs as one packed batch: the chosen sequences
// (prompt + chosen) first, then the rejected ones, as TRL's concatenated
// forward does, but without padding.
func packPairs(exs []Example) *model.Batch {
	b := &model.Batch{}
	for _, e := range exs {
		b.Add(e.Prompt, e.Chosen)
	}
	for _, e := range exs {
		b.Add(e.Prompt, e.Rejected)
	}
	return b
}

// forwardPairs runs the model on a micro-batch of pairs, keeping the
// activations in ws for a backward pass.
func forwardPairs(m *model.Model, ws *model.Workspace, exs []Example) (*model.Batch, PairLogps, error) {
	b := packPairs(exs)
	sums, counts, err := m.Forward(ws, b)
	if err != nil {
		return nil, PairLogps{}, err
	}
	B := len(exs)
	lp := PairLogps{Chosen: sums[:B], Rejected: sums[B:], ChosenTokens: make([]float64, B), RejectedTokens: make([]float64, B)}
	for i := 0; i < B; i++ {
		lp.ChosenTokens[i], lp.RejectedTokens[i] = float64(counts[i]), float64(counts[B+i])
	}
	return b, lp, nil
}

// Logps computes the log-prob sums of every pair, in micro-batches of
// batchSize pairs, without keeping anything for a backward pass.
func Logps(m *model.Model, ws *model.Workspace, exs []Example, batchSize int, each func(i int, lp PairLogps)) error {
	batchSize = max(batchSize, 1)
	for lo := 0; lo < len(exs); lo += batchSize {
		hi := min(lo+batchSize, len(exs))
		_, lp, err := forwardPairs(m, ws, exs[lo:hi])
		if err != nil {
			return err
		}
		each(lo, lp)
	}
	return nil
}

// inputs assembles pref.Inputs for a micro-batch.
func inputs(lp PairLogps, ref [][2]float64) pref.Inputs {
	in := pref.Inputs{ChosenLogps: lp.Chosen, RejectedLogps: lp.Rejected, ChosenTokens: lp.ChosenTokens, RejectedTokens: lp.RejectedTokens}
	if ref != nil {
		in.RefChosenLogps = make([]float64, len(ref))
		in.RefRejectedLogps = make([]float64, len(ref))
		for i, r := range ref {
			in.RefChosenLogps[i], in.RefRejectedLogps[i] = r[0], r[1]
		}
	}
	return in
}
