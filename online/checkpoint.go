package online

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/relupo/relupo/internal/atomicfile"
	"github.com/relupo/relupo/optim"
	"github.com/relupo/relupo/pairs"
	"github.com/relupo/relupo/safetensors"
	"github.com/relupo/relupo/score"
	"github.com/relupo/relupo/train"
)

// State is a checkpoint's state.json: where the run stands after
// Iteration.
type State struct {
	// Iteration is the last iteration completed.
	Iteration int `json:"iteration"`
	// Iterations is the run's N when the checkpoint was written (a resume
	// may ask for more).
	Iterations int `json:"iterations"`
	// NextSeed is the sampling seed of iteration Iteration+1. Every random
	// draw of an iteration is a function of the run's seed and the
	// iteration (see the package documentation), so this, with Key's
	// seed, is the whole random state.
	NextSeed uint64 `json:"next_sampling_seed"`
	// Key is the run's settings, which a resume must share.
	Key map[string]string `json:"run"`
	// Baseline is iteration 0's mean score per prompt (null where none of
	// its responses was scored), for the win rate.
	Baseline []*float64 `json:"baseline_scores"`
	// Metrics has every iteration's metrics, 0 to Iteration.
	Metrics []Metrics `json:"metrics"`
}

// key is what a resumed run must share with the checkpoint: everything
// that decides the samples and the training, but not the number of
// iterations nor the threads.
func (c Config) key() map[string]string {
	h := sha256.New()
	for _, p := range c.Prompts {
		b, _ := json.Marshal([]any{p.ID, p.Messages, p.IDs, p.Reference})
		h.Write(b)
		h.Write([]byte{'\n'})
	}
	cfg, _ := json.Marshal(c.Policy.Config)
	mc := sha256.Sum256(cfg)
	g, s := c.Generate, c.Generate.Sampling
	stops := slices.Clone(g.StopTokens)
	slices.Sort(stops)
	o := c.Optim
	key := map[string]string{
		"prompts":  fmt.Sprintf("%d prompts, sha256 %s", len(c.Prompts), hex.EncodeToString(h.Sum(nil))[:16]),
		"model":    "config sha256 " + hex.EncodeToString(mc[:])[:16],
		"samples":  strconv.Itoa(c.Samples),
		"seed":     strconv.FormatUint(c.Seed, 10),
		"decoding": fmt.Sprintf("max_new_tokens %d, temperature %v, top_k %d, top_p %v, stop tokens %v, stop strings %q, ignore_eos %v", g.MaxNewTokens, s.Temperature, s.TopK, s.TopP, stops, g.StopStrings, g.IgnoreEOS),
		"loss":     fmt.Sprintf("%s, beta %v, label_smoothing %v, sft_weight %v", c.Loss.Type(), c.Loss.Beta, c.Loss.LabelSmoothing, c.Loss.SFTWeight),
		"gamma":    fmt.Sprintf("%s, value %v, end %v, quantile %v", c.Gamma.strategy(), c.Gamma.Value, c.Gamma.End, c.Gamma.Quantile),
		"optim":    fmt.Sprintf("lr %v, adamw %v/%v/%v, weight_decay %v, max_grad_norm %v, batch %d × %d", o.LearningRate, o.Beta1, o.Beta2, o.Eps, o.WeightDecay, o.MaxGradNorm, o.BatchSize, o.Accumulation),
		"pairs":    fmt.Sprintf("min_score_gap %v", c.Pairs.MinScoreGap),
	}
	if s := o.schedule(); s != optim.ScheduleConstant || o.WarmupSteps != 0 || o.WarmupRatio != 0 { // (absent when constant, as before schedules)
		key["lr_schedule"] = fmt.Sprintf("%s, warmup_steps %d, warmup_ratio %v", s, o.WarmupSteps, o.WarmupRatio)
	}
	if a := c.Policy.LoRA; a != nil { // (absent for full fine-tuning, as before adapters)
		base := "float32"
		if c.Policy.Params.Frozen {
			base = "bf16"
		}
		key["lora"] = fmt.Sprintf("r %d, alpha %v, targets %s, rslora %v, dropout %v, base %s", a.Config.R, a.Config.Alpha,
			strings.Join(a.Config.Targets, ","), a.Config.RSLoRA, a.Config.Dropout, base)
	}
	return key
}

// strategy is the strategy's name, the default filled in.
func (g Gamma) strategy() string {
	if g.Strategy == "" {
		return GammaFixed
	}
	return g.Strategy
}

// differences lists the settings in which a and b differ.
func differences(a, b map[string]string) []string {
	keys := make([]string, 0, len(a))
	for k := range a {
		keys = append(keys, k)
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	var out []string
	for _, k := range keys {
		if a[k] != b[k] {
			out = append(out, fmt.Sprintf("%s: %s there, %s here", k, orNone(a[k]), orNone(b[k])))
		}
	}
	return out
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

const (
	stateFile     = "state.json"
	samplesFile   = "samples.jsonl"
	pairsFile     = "pairs.jsonl"
	optimizerFile = "optimizer.safetensors"
)

// saveCheckpoint writes iteration i's checkpoint folder (see Run) under a
// temporary name and renames it into place.
func (r *runner) saveCheckpoint(i int, ps []pairs.Pair) error {
	out := r.c.OutputDir
	dir := checkpointDir(out, i)
	tmp := dir + ".tmp"
	if err := os.RemoveAll(tmp); err != nil {
		return err
	}
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return err
	}
	err := r.writeCheckpoint(tmp, i, ps)
	if err == nil {
		err = atomicfile.RemoveDir(dir) // a checkpoint of the same iteration from an earlier attempt
	}
	if err == nil {
		err = os.Rename(tmp, dir)
	}
	if err == nil {
		err = atomicfile.SyncDir(out)
	}
	if err != nil {
		os.RemoveAll(tmp)
	}
	return err
}

func (r *runner) writeCheckpoint(dir string, i int, ps []pairs.Pair) error {
	if i > 0 {
		if err := r.saveModel(dir, false); err != nil {
			return err
		}
		var ts []safetensors.Tensor
		for _, st := range r.engine.Optimizer.State() {
			ts = append(ts, safetensors.Tensor{Name: st.Name, DType: safetensors.F32, Shape: []int{len(st.Data)}, Data: st.Data})
		}
		if err := safetensors.Write(filepath.Join(dir, optimizerFile), ts, nil); err != nil {
			return err
		}
		if err := atomicfile.Write(filepath.Join(dir, pairsFile), func(w io.Writer) error { return pairs.Write(w, ps) }); err != nil {
			return err
		}
	}
	if err := atomicfile.Write(filepath.Join(dir, samplesFile), func(w io.Writer) error { return score.WriteRows(w, r.rows) }); err != nil {
		return err
	}
	r.state.Baseline = make([]*float64, len(r.baseline))
	for p, b := range r.baseline {
		r.state.Baseline[p] = num(b)
	}
	b, err := json.MarshalIndent(r.state, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(filepath.Join(dir, stateFile), append(b, '\n'))
}

// writeMetrics writes one line per iteration.
func writeMetrics(path string, ms []Metrics) error {
	return atomicfile.Write(path, func(w io.Writer) error {
		enc := json.NewEncoder(w)
		for _, m := range ms {
			if err := enc.Encode(m); err != nil {
				return err
			}
		}
		return nil
	})
}

// checkpoints lists the iterations of out's complete checkpoints, in
// order.
func checkpoints(out string) ([]int, error) {
	entries, err := os.ReadDir(out)
	if err != nil {
		return nil, err
	}
	var its []int
	for _, e := range entries {
		s, ok := strings.CutPrefix(e.Name(), "iteration-")
		n, err := strconv.Atoi(s)
		if !ok || err != nil || n < 0 || !e.IsDir() {
			continue
		}
		if _, err := os.Stat(filepath.Join(out, e.Name(), stateFile)); err == nil {
			its = append(its, n)
		}
	}
	sort.Ints(its)
	return its, nil
}

// resume loads the newest checkpoint of the output folder and returns its
// iteration.
func (r *runner) resume() (int, error) {
	out := r.c.OutputDir
	its, err := checkpoints(out)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return 0, fmt.Errorf("online: resume: %w", err)
	}
	if len(its) == 0 {
		return 0, fmt.Errorf("online: resume: %s holds no iteration-N checkpoint with a %s", out, stateFile)
	}
	if err := atomicfile.CleanLeftovers(out, "iteration-"); err != nil {
		return 0, fmt.Errorf("online: resume: %w", err)
	}
	it := its[len(its)-1]
	dir := checkpointDir(out, it)
	fail := func(err error) (int, error) { return 0, fmt.Errorf("online: resume: %s: %w", dir, err) }
	b, err := os.ReadFile(filepath.Join(dir, stateFile))
	if err != nil {
		return fail(err)
	}
	var st State
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&st); err != nil {
		return fail(fmt.Errorf("%s: %w", stateFile, err))
	}
	if d := differences(st.Key, r.c.key()); len(d) > 0 {
		return fail(fmt.Errorf("it belongs to another run: %s; resume with that run's settings, or start anew (--overwrite-output-dir)", strings.Join(d, "; ")))
	}
	if st.Iteration != it || len(st.Metrics) != it+1 || len(st.Baseline) != len(r.c.Prompts) {
		return fail(fmt.Errorf("%s: inconsistent state (iteration %d, %d metrics lines, %d baseline scores)", stateFile, st.Iteration, len(st.Metrics), len(st.Baseline)))
	}
	if it > r.c.Iterations {
		return fail(fmt.Errorf("the run is at iteration %d, past the %d asked for", it, r.c.Iterations))
	}
	f, err := os.Open(filepath.Join(dir, samplesFile))
	if err != nil {
		return fail(err)
	}
	rows, err := score.ReadRows(f, filepath.Join(dir, samplesFile))
	f.Close()
	if err != nil {
		return fail(err)
	}
	if r.outIDs, err = r.readSamples(rows); err != nil {
		return fail(err)
	}
	if it > 0 {
		if err := train.LoadTrained(r.c.Policy, dir); err != nil {
			return fail(err)
		}
		if err := r.loadOptimizer(filepath.Join(dir, optimizerFile)); err != nil {
			return fail(err)
		}
	}
	r.rows, r.state = rows, st
	r.baseline = make([]float64, len(st.Baseline))
	for p, b := range st.Baseline {
		r.baseline[p] = math.NaN()
		if b != nil {
			r.baseline[p] = *b
		}
	}
	r.state.Iterations = r.c.Iterations
	return it, nil
}

// readSamples checks a checkpoint's scored samples against the run and
// returns their token ids.
func (r *runner) readSamples(rows []score.Row) ([][][]int, error) {
	if len(rows) != len(r.c.Prompts) {
		return nil, fmt.Errorf("%s has %d rows for %d prompts", samplesFile, len(rows), len(r.c.Prompts))
	}
	ids := make([][][]int, len(rows))
	for p, row := range rows {
		if row.ID != r.c.Prompts[p].ID || len(row.Responses) != r.c.Samples || len(row.Scores) != r.c.Samples {
			return nil, fmt.Errorf("%s: not prompt %d's %d scored samples", row.Where, p+1, r.c.Samples)
		}
		if err := json.Unmarshal(row.Extra["output_ids"], &ids[p]); err != nil || len(ids[p]) != r.c.Samples {
			return nil, fmt.Errorf("%s: output_ids: want %d lists of token ids (%v)", row.Where, r.c.Samples, err)
		}
	}
	return ids, nil
}

func (r *runner) loadOptimizer(path string) error {
	f, err := safetensors.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	var sts []optim.StateTensor
	for _, name := range f.Names() {
		d, err := f.Float32(name)
		if err != nil {
			return err
		}
		sts = append(sts, optim.StateTensor{Name: name, Data: d})
	}
	return r.engine.LoadOptimizerState(sts)
}
