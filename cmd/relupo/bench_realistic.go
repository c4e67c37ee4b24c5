package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"runtime"
	"time"

	"github.com/relupo/relupo/data"
	"github.com/relupo/relupo/internal/atomicfile"
	"github.com/relupo/relupo/kernels"
	"github.com/relupo/relupo/model"
	"github.com/relupo/relupo/optim"
	"github.com/relupo/relupo/pref"
	"github.com/relupo/relupo/train"
	"github.com/spf13/cobra"
)

// pairLength is the token count of a pair's prompt and responses.
type pairLength struct {
	Prompt   int `json:"prompt"`
	Chosen   int `json:"chosen"`
	Rejected int `json:"rejected"`
}

// pairLengths tokenizes a data set as training would and keeps the lengths.
func pairLengths(cmd *cobra.Command, path, modelDir string, maxLen, maxPrompt int) ([]pairLength, error) {
	o := train.DefaultOptions()
	o.Model, o.MaxLength, o.MaxPromptLength = modelDir, maxLen, maxPrompt
	cfg, err := model.LoadConfig(modelDir)
	if err != nil {
		return nil, err
	}
	enc, err := train.NewEncoder(o, cfg)
	if err != nil {
		return nil, err
	}
	srcs, err := data.ParseMixture(path)
	if err != nil {
		return nil, usageError{err}
	}
	exs, err := train.LoadExamples(cmd.Context(), srcs, train.LoadOptions{Encoder: enc, MaxLength: maxLen,
		MaxPromptLength: maxPrompt, TruncationMode: o.TruncationMode, SkipInvalid: true})
	if err != nil {
		return nil, err
	}
	out := make([]pairLength, len(exs))
	for i, e := range exs {
		out[i] = pairLength{len(e.Prompt), len(e.Chosen), len(e.Rejected)}
	}
	return out, nil
}

func writeLengths(path string, lens []pairLength) error {
	return atomicfile.Write(path, func(w io.Writer) error {
		enc := json.NewEncoder(w)
		for _, l := range lens {
			if err := enc.Encode(l); err != nil {
				return err
			}
		}
		return nil
	})
}

// runRealisticBench trains one pass over pairs of the given lengths (random
// ids), in batches of batch pairs packed without padding, and reports pairs/s.
func runRealisticBench(cmd *cobra.Command, cfg model.Config, preset string, lens []pairLength, batch int, share bool, pool *kernels.Pool, jsonOut bool) error {
	if len(lens) == 0 {
		return fmt.Errorf("bench: the data set has no usable pairs")
	}
	m := model.New(cfg)
	m.Params.Init(0, 0.02)
	r := rand.New(rand.NewPCG(0, 0))
	ids := func(n int) []int32 {
		s := make([]int32, n)
		for i := range s {
			s[i] = int32(3 + r.IntN(cfg.VocabSize-3))
		}
		return s
	}
	exs := make([]train.Example, len(lens))
	for i, l := range lens {
		exs[i] = train.Example{Prompt: ids(l.Prompt), Chosen: ids(l.Chosen), Rejected: ids(l.Rejected)}
	}
	ws := &model.Workspace{Pool: pool}
	grads := model.NewParams(cfg)
	opt := optim.NewAdamW()
	var params []optim.Param
	for i, t := range m.Params.Tensors() {
		params = append(params, optim.Param{Name: t.Name, Data: t.Data, Grad: grads.Tensors()[i].Data})
	}
	step := func(mb []train.Example) (int, error) {
		b, ci, ri := train.PackPairs(mb, share)
		sums, counts, err := m.Forward(ws, b)
		if err != nil {
			return 0, err
		}
		var in pref.Inputs
		for i := range mb {
			in.ChosenLogps = append(in.ChosenLogps, sums[ci[i]])
			in.RejectedLogps = append(in.RejectedLogps, sums[ri[i]])
			in.ChosenTokens = append(in.ChosenTokens, float64(counts[ci[i]]))
			in.RejectedTokens = append(in.RejectedTokens, float64(counts[ri[i]]))
		}
		res, err := pref.Compute(pref.Config{LossType: "repo", Beta: 2, Gamma: 10}, in)
		if err != nil {
			return 0, err
		}
		dSums := make([]float64, b.NumSeqs())
		for i := range mb {
			dSums[ci[i]], dSums[ri[i]] = res.DChosen[i], res.DRejected[i]
		}
		grads.Zero()
		if err := m.Backward(ws, b, dSums, grads); err != nil {
			return 0, err
		}
		return len(b.Tokens), opt.Step(params, 1e-5)
	}
	if _, err := step(exs[:min(batch, len(exs))]); err != nil { // warm-up
		return err
	}
	start := time.Now()
	tokens := 0
	for lo := 0; lo < len(exs); lo += batch {
		n, err := step(exs[lo:min(lo+batch, len(exs))])
		if err != nil {
			return err
		}
		tokens += n
	}
	secs := time.Since(start).Seconds()
	res := map[string]any{
		"preset": preset, "mode": "realistic", "share_prompt": share, "pairs": len(exs), "batch_pairs": batch, "seconds": secs,
		"pairs_per_s": float64(len(exs)) / secs, "tokens": tokens, "tokens_per_s": float64(tokens) / secs,
		"peak_rss_GB": peakRSSGB(), "threads": pool.Workers(), "kernels": kernels.Describe(), "go": runtime.Version(),
	}
	if jsonOut {
		return json.NewEncoder(cmd.OutOrStdout()).Encode(res)
	}
	fmt.Fprintf(cmd.OutOrStdout(), "%s realistic (shared prompts: %v): %d pairs in %.1fs: %.2f pairs/s, %d tokens computed, peak RSS %.2f GB\n",
		preset, share, len(exs), secs, res["pairs_per_s"], tokens, res["peak_rss_GB"])
	return nil
}
