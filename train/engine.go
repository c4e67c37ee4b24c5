package train

import (
	"github.com/relupo/relupo/model"
	"github.com/relupo/relupo/optim"
	"github.com/relupo/relupo/pref"
)

// PairLogps holds a micro-batch's per-response log-prob sums and label counts.
type PairLogps struct {
	Chosen, Rejected             []float64
	ChosenTokens, RejectedTokens []float64
}

// PackPairs lays out pairs as one packed batch, without padding. With
// share, each pair's prompt is one sequence and both responses continue it
// (model.Batch.AddPrefixed), so the prompt runs once; otherwise the batch
// holds prompt+chosen and prompt+rejected as separate sequences, as TRL's
// concatenated forward does. A pair with an empty prompt is never shared.
// It returns the sequence index of each pair's chosen and rejected response.
func PackPairs(exs []Example, share bool) (b *model.Batch, chosen, rejected []int) {
	b = &model.Batch{}
	chosen, rejected = make([]int, len(exs)), make([]int, len(exs))
	if share {
		for i, e := range exs {
			if len(e.Prompt) == 0 {
				b.Add(nil, e.Chosen)
				chosen[i] = b.NumSeqs() - 1
				b.Add(nil, e.Rejected)
				rejected[i] = b.NumSeqs() - 1
				continue
			}
			b.Add(e.Prompt, nil)
			p := b.NumSeqs() - 1
			chosen[i] = b.AddPrefixed(p, e.Chosen)
			rejected[i] = b.AddPrefixed(p, e.Rejected)
		}
		return b, chosen, rejected
	}
	for i, e := range exs {
		b.Add(e.Prompt, e.Chosen)
		chosen[i] = i
	}
	for i, e := range exs {
		b.Add(e.Prompt, e.Rejected)
		rejected[i] = len(exs) + i
	}
	return b, chosen, rejected
}

// Packed is a micro-batch laid out for the model (see PackPairs), with the
// sequence index of each pair's chosen and rejected response.
type Packed struct {
	Batch            *model.Batch
	Chosen, Rejected []int
}

// DSums spreads per-pair derivatives (dL/dS of the chosen and rejected
// sums, each divided by div) over the batch's sequences, as
// model.Backward takes them; prompt sequences get 0.
func (p Packed) DSums(dChosen, dRejected []float64, div float64) []float64 {
	d := make([]float64, p.Batch.NumSeqs())
	for i := range p.Chosen {
		d[p.Chosen[i]] = dChosen[i] / div
		d[p.Rejected[i]] = dRejected[i] / div
	}
	return d
}

// ForwardPairs runs the model on a micro-batch of pairs, keeping the
// activations in ws for a backward pass, and returns the layout with each
// pair's log-prob sums and label counts.
func ForwardPairs(m *model.Model, ws *model.Workspace, exs []Example, share bool) (Packed, PairLogps, error) {
	b, ci, ri := PackPairs(exs, share)
	sums, counts, err := m.Forward(ws, b)
	if err != nil {
		return Packed{}, PairLogps{}, err
	}
	B := len(exs)
	lp := PairLogps{Chosen: make([]float64, B), Rejected: make([]float64, B), ChosenTokens: make([]float64, B), RejectedTokens: make([]float64, B)}
	for i := 0; i < B; i++ {
		lp.Chosen[i], lp.Rejected[i] = sums[ci[i]], sums[ri[i]]
		lp.ChosenTokens[i], lp.RejectedTokens[i] = float64(counts[ci[i]]), float64(counts[ri[i]])
	}
	return Packed{b, ci, ri}, lp, nil
}

// Logps computes the log-prob sums of every pair, in micro-batches of
// batchSize pairs, each prompt run once for both of its responses. It needs
// no gradient, so it runs the model with ws.NoGrad set (and then restores
// the flag).
func Logps(m *model.Model, ws *model.Workspace, exs []Example, batchSize int, each func(i int, lp PairLogps)) error {
	defer func(noGrad bool) { ws.NoGrad = noGrad }(ws.NoGrad)
	ws.NoGrad = true
	batchSize = max(batchSize, 1)
	for lo := 0; lo < len(exs); lo += batchSize {
		hi := min(lo+batchSize, len(exs))
		_, lp, err := ForwardPairs(m, ws, exs[lo:hi], true)
		if err != nil {
			return err
		}
		each(lo, lp)
	}
	return nil
}

// Inputs assembles pref.Inputs for a micro-batch, with the reference sums
// [chosen, rejected] of each pair when ref is not nil.
func Inputs(lp PairLogps, ref [][2]float64) pref.Inputs {
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

// OptimParams pairs every parameter tensor with its gradient, in the form
// optim.AdamW steps.
func OptimParams(p, grads *model.Params) []optim.Param {
	ps, gs := p.Tensors(), grads.Tensors()
	out := make([]optim.Param, len(ps))
	for i := range ps {
		out[i] = optim.Param{Name: ps[i].Name, Data: ps[i].Data, Grad: gs[i].Data}
	}
	return out
}
