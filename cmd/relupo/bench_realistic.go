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
	st := newBenchStepper(cfg, pool)
	r := rand.New(rand.NewPCG(0, 0))
	exs := make([]train.Example, len(lens))
	for i, l := range lens {
		exs[i] = train.Example{Prompt: randomIDs(r, cfg, l.Prompt), Chosen: randomIDs(r, cfg, l.Chosen), Rejected: randomIDs(r, cfg, l.Rejected)}
	}
	step := func(mb []train.Example) (int, error) { return st.step(mb, share, true) }
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

// benchStepper runs the steps of a benchmark on a randomly initialized
// model, through the trainer's own forward, loss, backward and AdamW.
type benchStepper struct {
	m     *model.Model
	ws    *model.Workspace
	grads *model.Params
	opt   *optim.AdamW
}

func newBenchStepper(cfg model.Config, pool *kernels.Pool) *benchStepper {
	m := model.New(cfg)
	m.Params.Init(0, 0.02)
	return &benchStepper{m: m, ws: &model.Workspace{Pool: pool}, grads: model.NewParams(cfg), opt: optim.NewAdamW()}
}

// step runs forward on a micro-batch of pairs and, with training, the RePO
// loss (γ large enough that every pair is active), backward and AdamW. It
// returns the tokens computed.
func (b *benchStepper) step(mb []train.Example, share, training bool) (int, error) {
	b.ws.KeepLogits, b.ws.NoGrad = training, !training
	pk, lp, err := train.ForwardPairs(b.m, b.ws, mb, share)
	if err != nil || !training {
		return len(pk.Batch.Tokens), err
	}
	res, err := pref.Compute(pref.Config{LossType: "repo", Beta: 2, Gamma: 10}, train.Inputs(lp, nil))
	if err != nil {
		return 0, err
	}
	b.grads.Zero()
	if err := b.m.Backward(b.ws, pk.Batch, pk.DSums(res.DChosen, res.DRejected, 1), b.grads); err != nil {
		return 0, err
	}
	return len(pk.Batch.Tokens), b.opt.Step(train.OptimParams(b.m.Params, b.grads), 1e-5)
}

// randomIDs draws n token ids, avoiding the first three (special) ids.
func randomIDs(r *rand.Rand, cfg model.Config, n int) []int32 {
	s := make([]int32, n)
	for i := range s {
		s[i] = int32(3 + r.IntN(cfg.VocabSize-3))
	}
	return s
}
