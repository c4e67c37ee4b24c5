package train

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"

	"github.com/relupo/relupo/dist"
	"github.com/relupo/relupo/optim"
)

// Data-parallel training, as the Hugging Face Trainer runs under DDP: every
// rank holds the whole model, runs its share of each optimizer step's
// micro-batches (see rankOrder), and the gradients are averaged across the
// ranks before clipping, so that every rank applies the same update. With
// ZeRO stage 1 the average is reduce-scattered instead: each rank clips and
// updates its own shard of the parameters, with AdamW moments for that
// shard alone, and the updated shards are all-gathered.

// ranks is the number of ranks of the engine's job.
func (e *Engine) ranks() int {
	if e.Comm == nil {
		return 1
	}
	return e.Comm.Size()
}

// agree makes a non-finite value met on any rank stop the step on all of
// them: *stop is set on every rank when one rank set it.
func (e *Engine) agree(stop **NonfiniteError, records []string) error {
	if e.ranks() == 1 {
		return nil
	}
	flag := []float64{0}
	if *stop != nil {
		flag[0] = 1
	}
	if err := e.Comm.AllReduceSum64(flag); err != nil {
		return err
	}
	if flag[0] > 0 && *stop == nil {
		*stop = &NonfiniteError{What: "value on another rank", Records: records}
	}
	return nil
}

// averageGrads replaces every rank's gradients by their mean over the ranks.
func (e *Engine) averageGrads() error {
	n := e.ranks()
	if n == 1 {
		return nil
	}
	_, _, g, _ := e.trainable()
	if err := e.Comm.AllReduceSum(g); err != nil {
		return err
	}
	scale := 1 / float32(n)
	for i := range g {
		g[i] *= scale
	}
	return nil
}

// zeroShard is this rank's part of the trained weights under ZeRO stage 1
// (the parameters, or under LoRA the adapter's): the elements [off[rank],
// off[rank+1]) of their allocation, cut at tensor boundaries into named
// pieces that AdamW steps like tensors.
type zeroShard struct {
	off    []int
	grad   []float32     // this rank's shard of the averaged gradient
	params []optim.Param // the pieces, Grad pointing into grad
	spans  []zeroSpan    // where each piece lies, parallel to params
}

// zeroSpan places a piece: elements [a, b) of the allocation, within tensor
// number tensor, which starts at start and holds size elements.
type zeroSpan struct {
	tensor, start, size, a, b int
}

// shard returns this rank's shard, made on first use.
func (e *Engine) shard() *zeroShard {
	if e.zero != nil {
		return e.zero
	}
	mem, tensors, _, _ := e.trainable()
	rank := e.Comm.Rank()
	z := &zeroShard{off: dist.Shards(len(mem), e.ranks())}
	lo, hi := z.off[rank], z.off[rank+1]
	z.grad = make([]float32, hi-lo)
	start := 0
	for i, t := range tensors {
		end := start + len(t.Data)
		if a, b := max(start, lo), min(end, hi); a < b {
			z.params = append(z.params, optim.Param{Name: t.Name, Data: mem[a:b], Grad: z.grad[a-lo : b-lo]})
			z.spans = append(z.spans, zeroSpan{tensor: i, start: start, size: len(t.Data), a: a, b: b})
		}
		start = end
	}
	e.zero = z
	return z
}

// zeroUpdate is the end of a ZeRO stage 1 step: reduce-scatter the
// gradient sum, average and clip this rank's shard by the global norm,
// update it with AdamW, and all-gather the parameters. It returns the
// gradient norm.
func (e *Engine) zeroUpdate(lr, maxGradNorm float64, records []string) (float64, error) {
	z := e.shard()
	w, _, g, _ := e.trainable()
	if err := e.Comm.ReduceScatterSum(g, z.off, z.grad); err != nil {
		return 0, err
	}
	scale := 1 / float32(e.ranks())
	for i := range z.grad {
		z.grad[i] *= scale
	}
	var norm float64
	if maxGradNorm >= 0 {
		sq := []float64{optim.SumSquares([][]float32{z.grad})}
		if err := e.Comm.AllReduceSum64(sq); err != nil {
			return 0, err
		}
		norm = math.Sqrt(sq[0])
		if math.IsNaN(norm) || math.IsInf(norm, 0) {
			return norm, &NonfiniteError{What: fmt.Sprintf("gradient norm (%v)", norm), Records: records}
		}
		// The coefficient of optim.ClipGradNorm, applied to the shard.
		if coef := maxGradNorm / (norm + 1e-6); maxGradNorm > 0 && coef < 1 {
			c := float32(coef)
			for i := range z.grad {
				z.grad[i] *= c
			}
		}
	}
	if err := e.Optimizer.Step(z.params, lr); err != nil {
		return norm, err
	}
	return norm, e.Comm.AllGather(w, z.off)
}

// OptimizerState returns the whole optimizer state, as one process would
// hold it. Under ZeRO stage 1 it is a collective: the moments of every
// shard are gathered on every rank.
func (e *Engine) OptimizerState() ([]optim.StateTensor, error) {
	if !e.ZeRO1 || e.ranks() == 1 {
		return e.Optimizer.State(), nil
	}
	z := e.shard()
	mem, tensors, _, _ := e.trainable()
	n := len(mem)
	m, v := make([]float32, n), make([]float32, n)
	local := map[string][]float32{}
	for _, st := range e.Optimizer.State() {
		local[st.Name] = st.Data
	}
	steps := make([]float64, len(tensors)) // each tensor's count, from the rank whose shard holds its first element
	for i, s := range z.spans {
		name := z.params[i].Name
		copy(m[s.a:s.b], local[optim.StateExpAvgPrefix+name])
		copy(v[s.a:s.b], local[optim.StateExpAvgSqPrefix+name])
		if c := local[optim.StateStepPrefix+name]; s.a == s.start && len(c) == 1 {
			steps[s.tensor] = float64(c[0])
		}
	}
	for _, err := range []error{e.Comm.AllGather(m, z.off), e.Comm.AllGather(v, z.off), e.Comm.AllReduceSum64(steps)} {
		if err != nil {
			return nil, err
		}
	}
	var out []optim.StateTensor
	start := 0
	for i, t := range tensors {
		end := start + len(t.Data)
		if steps[i] > 0 {
			out = append(out,
				optim.StateTensor{Name: optim.StateExpAvgPrefix + t.Name, Data: m[start:end]},
				optim.StateTensor{Name: optim.StateExpAvgSqPrefix + t.Name, Data: v[start:end]},
				optim.StateTensor{Name: optim.StateStepPrefix + t.Name, Data: []float32{float32(steps[i])}})
		}
		start = end
	}
	return out, nil
}

// LoadOptimizerState restores a whole optimizer state (as OptimizerState
// returns it, or a checkpoint of any number of ranks holds it); under ZeRO
// stage 1 each rank keeps its shard's part.
func (e *Engine) LoadOptimizerState(tensors []optim.StateTensor) error {
	if !e.ZeRO1 || e.ranks() == 1 {
		return e.Optimizer.LoadState(e.params(), tensors)
	}
	z := e.shard()
	byName := map[string][]float32{}
	for _, t := range tensors {
		byName[t.Name] = t.Data
	}
	var pieces []optim.StateTensor
	for i, s := range z.spans {
		name := z.params[i].Name
		for _, prefix := range []string{optim.StateExpAvgPrefix, optim.StateExpAvgSqPrefix} {
			d, ok := byName[prefix+name]
			if !ok {
				continue
			}
			if len(d) != s.size {
				return fmt.Errorf("optim state: %s has %d values, the parameter %d", prefix+name, len(d), s.size)
			}
			pieces = append(pieces, optim.StateTensor{Name: prefix + name, Data: d[s.a-s.start : s.b-s.start]})
		}
		if d, ok := byName[optim.StateStepPrefix+name]; ok {
			pieces = append(pieces, optim.StateTensor{Name: optim.StateStepPrefix + name, Data: d})
		}
	}
	for name := range byName {
		if !strings.HasPrefix(name, optim.StateExpAvgPrefix) && !strings.HasPrefix(name, optim.StateExpAvgSqPrefix) && !strings.HasPrefix(name, optim.StateStepPrefix) {
			return fmt.Errorf("optim state: unexpected tensor %q", name)
		}
	}
	return e.Optimizer.LoadState(z.params, pieces)
}

// anyRank reports whether cond holds on any rank (a collective).
func (t *Trainer) anyRank(cond bool) (bool, error) {
	if t.ranks() == 1 {
		return cond, nil
	}
	flag := []float64{0}
	if cond {
		flag[0] = 1
	}
	err := t.Comm.AllReduceSum64(flag)
	return flag[0] > 0, err
}

// globalResult turns a rank's step result into the job's, as TRL gathers
// metrics across processes: the loss and every micro-batch metric are
// means over the ranks, the token counts sums. The ranks run the same
// number of micro-batches with the same metric names. A skipped step
// contributes nothing (its ranks stopped at different micro-batches).
func (t *Trainer) globalResult(r StepResult, skipped bool) (StepResult, error) {
	if skipped {
		return StepResult{GradNorm: r.GradNorm}, nil
	}
	var keys []string
	if len(r.Metrics) > 0 {
		keys = slices.Sorted(maps.Keys(r.Metrics[0]))
	}
	v := []float64{r.Loss, float64(r.Tokens), float64(r.TokensSaved)}
	for _, m := range r.Metrics {
		for _, k := range keys {
			v = append(v, m[k])
		}
	}
	if err := t.Comm.AllReduceSum64(v); err != nil {
		return r, err
	}
	n := float64(t.ranks())
	out := StepResult{Loss: v[0] / n, Tokens: int64(v[1]), TokensSaved: int64(v[2]), GradNorm: r.GradNorm}
	v = v[3:]
	for range r.Metrics {
		m := make(map[string]float64, len(keys))
		for i, k := range keys {
			m[k] = v[i] / n
		}
		out.Metrics = append(out.Metrics, m)
		v = v[len(keys):]
	}
	return out, nil
}
