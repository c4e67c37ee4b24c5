package online

import (
	"bytes"
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/relupo/relupo/kernels"
	"github.com/relupo/relupo/model"
	"github.com/relupo/relupo/peft"
	"github.com/relupo/relupo/pref"
	"github.com/relupo/relupo/safetensors"
	"github.com/relupo/relupo/score"
	"github.com/relupo/relupo/train"
)

// smallDemo is a quick version of the demonstration.
func smallDemo(t *testing.T, out string, iterations int) Config {
	t.Helper()
	o := DefaultDemoOptions()
	o.OutputDir, o.Iterations, o.Prompts, o.Samples, o.Threads = out, iterations, 32, 4, 2
	c, err := DemoConfig(o)
	if err != nil {
		t.Fatal(err)
	}
	c.Overwrite = false
	return c
}

// cancelAt cancels the run when it reaches a phase of an iteration.
type cancelAt struct {
	iteration int
	phase     string
	cancel    func()
	hit       bool
}

func (c *cancelAt) Phase(i int, phase string, done, total int) {
	if i == c.iteration && phase == c.phase && !c.hit {
		c.hit = true
		c.cancel()
	}
}
func (c *cancelAt) Iteration(Metrics) {}

// A run interrupted anywhere and resumed ends with bitwise the same
// weights and metrics as an uninterrupted run.
func TestResumeExact(t *testing.T) {
	ref := t.TempDir()
	c := smallDemo(t, ref, 2)
	if _, err := Run(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	wantWeights := c.Policy.Params.Mem
	wantMetrics, err := os.ReadFile(filepath.Join(ref, "metrics.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		iteration int
		phase     string
		resumeAt  int // the checkpoint the resume starts from
	}{
		{2, "training", 1},
		{2, "sampling", 1},
		{2, "scoring", 1},
		{2, "margins", 1},
		{1, "training", 0},
	} {
		t.Run(tc.phase+"-"+string(rune('0'+tc.iteration)), func(t *testing.T) {
			out := t.TempDir()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			c := smallDemo(t, out, 2)
			stop := &cancelAt{iteration: tc.iteration, phase: tc.phase, cancel: cancel}
			c.Progress = stop
			_, err := Run(ctx, c)
			if !stop.hit || !errors.Is(err, train.ErrInterrupted) {
				t.Fatalf("reached %v, error %v; want an interruption", stop.hit, err)
			}
			c = smallDemo(t, out, 2) // a fresh process: the initial model again
			c.Resume = true
			sum, err := Run(context.Background(), c)
			if err != nil {
				t.Fatal(err)
			}
			if sum.Resumed != tc.resumeAt {
				t.Errorf("resumed from iteration %d, want %d", sum.Resumed, tc.resumeAt)
			}
			for i, v := range c.Policy.Params.Mem {
				if math.Float32bits(v) != math.Float32bits(wantWeights[i]) {
					t.Fatalf("weight %d: %v, want %v (and maybe more)", i, v, wantWeights[i])
				}
			}
			got, err := os.ReadFile(filepath.Join(out, "metrics.jsonl"))
			if err != nil || !bytes.Equal(got, wantMetrics) {
				t.Errorf("metrics.jsonl (%v):\n%s\nwant\n%s", err, got, wantMetrics)
			}
		})
	}
}

// The demonstration's point: the mean verified reward rises over the
// iterations, and does not with a learning rate of 0 (so the rise is the
// training's, not the sampling's).
func TestDemoRewardRises(t *testing.T) {
	run := func(lr float64) []Metrics {
		o := DefaultDemoOptions()
		o.OutputDir, o.Iterations, o.Prompts, o.LearningRate, o.Threads = t.TempDir(), 4, 128, lr, 2
		c, err := DemoConfig(o)
		if err != nil {
			t.Fatal(err)
		}
		sum, err := Run(context.Background(), c)
		if err != nil {
			t.Fatal(err)
		}
		if len(sum.Metrics) != 5 {
			t.Fatalf("%d metrics lines", len(sum.Metrics))
		}
		return sum.Metrics
	}
	trained, frozen := run(3e-3), run(0)
	first, last := *trained[0].ScoreMean, *trained[4].ScoreMean
	// About 1 answer in 16 is right at random (0.065 here); 4 iterations
	// of RePO reach about 0.24. 0.1 leaves room for other CPUs' rounding.
	if last-first < 0.1 || *trained[4].WinRate < 0.65 {
		t.Errorf("trained: mean reward %.3f → %.3f, win rate %.3f; want a rise of at least 0.1 and a win rate ≥ 0.65", first, last, *trained[4].WinRate)
	}
	for _, m := range frozen[1:] {
		if d := *m.ScoreMean - *frozen[0].ScoreMean; math.Abs(d) > 0.05 || math.Abs(*m.WinRate-0.5) > 0.1 {
			t.Errorf("learning rate 0, iteration %d: mean reward moved by %.3f, win rate %.3f", m.Iteration, d, *m.WinRate)
		}
	}
	if *frozen[0].ScoreMean != first {
		t.Errorf("iteration 0 differs between the runs: %v and %v", *frozen[0].ScoreMean, first)
	}
}

func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(c *Config)
		want   string
	}{
		{"no prompts", func(c *Config) { c.Prompts = nil }, "no prompts"},
		{"one sample", func(c *Config) { c.Samples = 1 }, "samples per prompt must be ≥ 2"},
		{"greedy", func(c *Config) { c.Generate.Sampling.Temperature = 0 }, "sampling is greedy"},
		{"no iterations", func(c *Config) { c.Iterations = 0 }, "iterations must be ≥ 1"},
		{"bad strategy", func(c *Config) { c.Gamma.Strategy = "cosine" }, `gamma strategy "cosine" is not one of`},
		{"bad quantile", func(c *Config) { c.Gamma = Gamma{Strategy: GammaAdaptive, Quantile: 1.5} }, "quantile must be in [0, 1]"},
		{"adaptive with dpo", func(c *Config) {
			c.Gamma, c.Loss = Gamma{Strategy: GammaAdaptive, Quantile: 0.5}, pref.Config{LossType: pref.LossDPO, Beta: 0.1}
		}, "loss dpo does not threshold"},
		{"empty prompt", func(c *Config) { c.Prompts[3].IDs = nil }, `prompt 4 (id "4") has no tokens`},
		{"no scorer", func(c *Config) { c.Scorer = nil }, "no scorer"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := smallDemo(t, t.TempDir(), 1)
			tc.change(&c)
			if _, err := Run(context.Background(), c); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one mentioning %q", err, tc.want)
			}
		})
	}
}

func TestResumeErrors(t *testing.T) {
	out := t.TempDir()
	c := smallDemo(t, out, 1)
	c.Resume = true
	if _, err := Run(context.Background(), c); err == nil || !strings.Contains(err.Error(), "holds no iteration-N checkpoint") {
		t.Errorf("resume of an empty folder: %v", err)
	}
	if _, err := Run(context.Background(), smallDemo(t, out, 1)); err != nil {
		t.Fatal(err)
	}
	if _, err := Run(context.Background(), smallDemo(t, out, 1)); err == nil || !strings.Contains(err.Error(), "holds the checkpoints of an online run (iteration-1 is the newest)") {
		t.Errorf("a second run into the folder: %v", err)
	}
	c = smallDemo(t, out, 2)
	c.Resume, c.Samples, c.Seed = true, 5, 9
	if _, err := Run(context.Background(), c); err == nil || !strings.Contains(err.Error(), "belongs to another run: samples: 4 there, 5 here; seed: 1 there, 9 here") {
		t.Errorf("resume with other settings: %v", err)
	}
	// More iterations than the checkpoint's run: it goes on from there.
	c = smallDemo(t, out, 2)
	c.Resume = true
	sum, err := Run(context.Background(), c)
	if err != nil || sum.Resumed != 1 || len(sum.Metrics) != 3 {
		t.Errorf("extending the run: %+v, %v", sum, err)
	}
	// A run over with overwrite starts anew.
	c = smallDemo(t, out, 1)
	c.Overwrite = true
	if sum, err := Run(context.Background(), c); err != nil || sum.Resumed != -1 || len(sum.Metrics) != 2 {
		t.Errorf("overwrite: %+v, %v", sum, err)
	}
	if _, err := os.Stat(filepath.Join(out, "iteration-2")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("overwrite left iteration-2: %v", err)
	}
}

// flaky scores like the verifier but fails (NaN) on every third response.
type flaky struct{ v *score.Verifier }

func (f flaky) Score(ctx context.Context, rows []score.Row, progress func(done, total int)) (int, error) {
	if _, err := f.v.Score(ctx, rows, progress); err != nil {
		return 0, err
	}
	failed, n := 0, 0
	for i := range rows {
		for j := range rows[i].Scores {
			if n%3 == 0 {
				rows[i].Scores[j] = math.NaN()
				failed++
			}
			n++
		}
	}
	return failed, nil
}

// What the metrics say, for each γ strategy and a scorer that fails on
// some responses.
func TestMetricsAndGamma(t *testing.T) {
	v, err := score.NewVerifier(DemoPattern)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		gamma Gamma
		check func(t *testing.T, ms []Metrics)
	}{
		{"fixed", Gamma{Value: 0.3}, func(t *testing.T, ms []Metrics) {
			for _, m := range ms[1:] {
				if *m.Pass.Gamma != 0.3 {
					t.Errorf("iteration %d: γ %v", m.Iteration, *m.Pass.Gamma)
				}
			}
		}},
		{"linear", Gamma{Strategy: GammaLinear, Value: 0.2, End: 0.8}, func(t *testing.T, ms []Metrics) {
			for i, want := range []float64{0.2, 0.5, 0.8} {
				if g := *ms[i+1].Pass.Gamma; math.Abs(g-want) > 1e-12 {
					t.Errorf("iteration %d: γ %v, want %v", i+1, g, want)
				}
			}
		}},
		{"adaptive", Gamma{Strategy: GammaAdaptive, Quantile: 0.25}, func(t *testing.T, ms []Metrics) {
			for _, m := range ms[1:] {
				p := m.Pass
				// γ is the 0.25 quantile of the margins, so a quarter of
				// the pairs (within one pair) is below it.
				if slack := 1 / float64(p.Pairs); math.Abs(*p.ActiveStart-0.25) > slack+1e-12 || !(*p.Gamma >= *p.MarginP10 && *p.Gamma <= *p.MarginP50) {
					t.Errorf("iteration %d: γ %v, active at the start %v, margins p10 %v p50 %v", m.Iteration, *p.Gamma, *p.ActiveStart, *p.MarginP10, *p.MarginP50)
				}
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := smallDemo(t, t.TempDir(), 3)
			c.Gamma, c.Scorer = tc.gamma, flaky{v}
			sum, err := Run(context.Background(), c)
			if err != nil {
				t.Fatal(err)
			}
			ms := sum.Metrics
			for _, m := range ms {
				if m.Responses != 32*4 || m.Unscored != (32*4+2)/3 || m.ScoreMean == nil || m.ScoreStd == nil || m.WinRate == nil || m.WinPrompts == 0 {
					t.Errorf("iteration %d: %+v", m.Iteration, m)
				}
				if (m.Pass == nil) != (m.Iteration == 0) {
					t.Fatalf("iteration %d: pass %+v", m.Iteration, m.Pass)
				}
				if p := m.Pass; p != nil && (p.Pairs+p.Dropped != 32 || p.Pairs == 0 || p.Steps != (p.Pairs+7)/8 || p.Loss == nil || p.ActiveFraction == nil || p.ActiveStart == nil) {
					t.Errorf("iteration %d: pass %+v", m.Iteration, *p)
				}
			}
			if *ms[0].WinRate != 0.5 {
				t.Errorf("iteration 0's win rate against itself: %v", *ms[0].WinRate)
			}
			tc.check(t, ms)
		})
	}
}

// A loss with a reference model trains against the policy of the start of
// each iteration.
func TestReferenceLoss(t *testing.T) {
	c := smallDemo(t, t.TempDir(), 2)
	c.Loss = pref.Config{LossType: pref.LossDPO, Beta: 0.1}
	sum, err := Run(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range sum.Metrics[1:] {
		if p := m.Pass; p.Loss == nil || p.Steps == 0 || p.ActiveStart != nil || p.ActiveFraction != nil {
			t.Errorf("iteration %d: pass %+v", m.Iteration, *p)
		}
	}
}

// The win rate compares each prompt's mean score with iteration 0's: wins
// count 1, ties half, prompts unscored in either are left out.
func TestWinRate(t *testing.T) {
	nan := math.NaN()
	rows := func(scores ...[]float64) []score.Row {
		out := make([]score.Row, len(scores))
		for i, s := range scores {
			out[i] = score.Row{Scores: s, Responses: make([]string, len(s))}
		}
		return out
	}
	r := &runner{}
	r.outIDs = [][][]int{{{1}, {1, 2}}, {{1}, {1}}, {{1}, {1}}, {{1}, {1}}}
	r.rows = rows([]float64{0, 1}, []float64{1, 1}, []float64{nan, nan}, []float64{0, 0})
	m0 := r.sampleMetrics(0)
	if *m0.WinRate != 0.5 || m0.WinPrompts != 3 || m0.Unscored != 2 || *m0.ScoreMean != 0.5 || *m0.ScoreStd != 0.5 || m0.ResponseTokens != 9.0/8 {
		t.Errorf("iteration 0: %+v", m0)
	}
	// prompt 1: 0.5 → 1 (win), 2: 1 → 0.5 (loss), 3: unscored, 4: 0 → 0 (tie)
	r.rows = rows([]float64{1, 1}, []float64{1, 0}, []float64{1, 1}, []float64{nan, 0})
	m := r.sampleMetrics(1)
	if *m.WinRate != 1.5/3 || m.WinPrompts != 3 {
		t.Errorf("iteration 1: win rate %v over %d prompts", *m.WinRate, m.WinPrompts)
	}
	r.rows = rows([]float64{nan, nan}, []float64{nan, nan}, []float64{nan, nan}, []float64{nan, nan})
	if m := r.sampleMetrics(2); m.ScoreMean != nil || m.WinRate != nil || m.Unscored != 8 {
		t.Errorf("all unscored: %+v", m)
	}
}

// loraDemo is smallDemo training a LoRA adapter (r 4 on every linear
// layer, dropout 0.1) on its policy, whose base is saved in base.
func loraDemo(t *testing.T, out, base string, iterations, r int) Config {
	t.Helper()
	c := smallDemo(t, out, iterations)
	c.Optim.LearningRate = 1e-2
	targets, err := model.ParseLoRATargets("all-linear")
	if err != nil {
		t.Fatal(err)
	}
	a, err := model.NewAdapter(c.Policy.Config, model.LoRAConfig{R: r, Alpha: 8, Dropout: 0.1, Targets: targets})
	if err != nil {
		t.Fatal(err)
	}
	a.Init(7)
	c.Policy.LoRA = a
	if _, err := os.Stat(filepath.Join(base, "config.json")); err != nil {
		if err := c.Policy.Save(base, safetensors.F32, 0); err != nil {
			t.Fatal(err)
		}
	}
	c.Base = base
	return c
}

// Online training of a LoRA adapter: the base stays as it was, the adapter
// moves, every checkpoint and the final folder hold the adapter in PEFT's
// format (and the final folder the merged model with MergeAdapter), and an
// interrupted run resumes to bitwise the same adapter and metrics. A resume
// with another adapter shape is refused.
func TestLoRA(t *testing.T) {
	base := t.TempDir()
	ref := t.TempDir()
	c := loraDemo(t, ref, base, 2, 4)
	c.MergeAdapter = true
	frozen := slices.Clone(c.Policy.Params.Mem)
	sum, err := Run(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	if len(sum.Metrics) != 3 || sum.Metrics[2].Pass == nil || sum.Metrics[2].Pass.Steps == 0 {
		t.Fatalf("metrics: %+v", sum.Metrics)
	}
	if !slices.Equal(frozen, c.Policy.Params.Mem) {
		t.Error("the base weights changed")
	}
	want := c.Policy.LoRA
	moved := 0.0
	for _, l := range want.Layers {
		for _, m := range []*model.LoRA{l.Q, l.Down} {
			for _, v := range m.B {
				moved = math.Max(moved, math.Abs(float64(v)))
			}
		}
	}
	if moved == 0 {
		t.Fatal("the adapter's B matrices are still zero")
	}
	for _, dir := range []string{ref, filepath.Join(ref, "iteration-1"), filepath.Join(ref, "iteration-2")} {
		got, _, err := peft.Load(dir, c.Policy.Config)
		if err != nil {
			t.Fatalf("%s: %v", dir, err)
		}
		if dir != filepath.Join(ref, "iteration-1") && !slices.Equal(got.Mem, want.Mem) {
			t.Errorf("%s: the adapter written is not the trained one", dir)
		}
		if _, err := os.Stat(filepath.Join(dir, "model.safetensors")); (err == nil) != (dir == ref) {
			t.Errorf("%s: model.safetensors present: %v (only the final folder has the merged model)", dir, err == nil)
		}
	}
	// The merged model is W + scale·B·A.
	merged, _, err := model.Load(ref)
	if err != nil {
		t.Fatal(err)
	}
	expect, _, err := model.Load(base)
	if err != nil {
		t.Fatal(err)
	}
	pool := kernels.NewPool(1)
	defer pool.Close()
	if err := peft.Merge(expect, want, pool); err != nil {
		t.Fatal(err)
	}
	for i, v := range merged.Params.Mem {
		if math.Abs(float64(v-expect.Params.Mem[i])) > 1e-6 {
			t.Fatalf("merged weight %d: %v, want %v", i, v, expect.Params.Mem[i])
		}
	}
	wantMetrics, err := os.ReadFile(filepath.Join(ref, "metrics.jsonl"))
	if err != nil {
		t.Fatal(err)
	}

	out := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c = loraDemo(t, out, base, 2, 4)
	stop := &cancelAt{iteration: 2, phase: "training", cancel: cancel}
	c.Progress = stop
	if _, err := Run(ctx, c); !stop.hit || !errors.Is(err, train.ErrInterrupted) {
		t.Fatalf("reached %v, error %v; want an interruption", stop.hit, err)
	}
	bad := loraDemo(t, out, base, 2, 8)
	bad.Resume = true
	if _, err := Run(context.Background(), bad); err == nil || !strings.Contains(err.Error(), "lora: r 4") {
		t.Errorf("resuming with r 8 a run of r 4: %v", err)
	}
	c = loraDemo(t, out, base, 2, 4)
	c.Resume = true
	if sum, err := Run(context.Background(), c); err != nil || sum.Resumed != 1 {
		t.Fatalf("resume: %v (from iteration %d)", err, sum.Resumed)
	}
	if !slices.Equal(c.Policy.LoRA.Mem, want.Mem) {
		t.Error("the resumed run's adapter differs from the uninterrupted run's")
	}
	if got, err := os.ReadFile(filepath.Join(out, "metrics.jsonl")); err != nil || !bytes.Equal(got, wantMetrics) {
		t.Errorf("metrics.jsonl (%v):\n%s\nwant\n%s", err, got, wantMetrics)
	}
}

// Each pass runs the learning-rate schedule over its own steps; the
// metrics carry the rate of the pass's last step.
func TestSchedule(t *testing.T) {
	for _, tc := range []struct {
		schedule string
		warmup   int
		last     func(lr float64, steps int) float64
	}{
		{"", 0, func(lr float64, _ int) float64 { return lr }},
		{"linear", 0, func(lr float64, steps int) float64 { return lr / float64(steps) }},
		{"constant_with_warmup", 1000, func(lr float64, steps int) float64 { return lr * float64(steps-1) / 1000 }},
	} {
		t.Run(tc.schedule, func(t *testing.T) {
			c := smallDemo(t, t.TempDir(), 2)
			c.Optim.Schedule, c.Optim.WarmupSteps = tc.schedule, tc.warmup
			sum, err := Run(context.Background(), c)
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range sum.Metrics[1:] {
				p := m.Pass
				if p.Steps == 0 || p.LearningRate == nil {
					t.Fatalf("iteration %d: %d steps, learning rate %v", m.Iteration, p.Steps, p.LearningRate)
				}
				if want := tc.last(c.Optim.LearningRate, p.Steps); math.Abs(*p.LearningRate-want) > 1e-12*want {
					t.Errorf("iteration %d: last learning rate %v, want %v over %d steps", m.Iteration, *p.LearningRate, want, p.Steps)
				}
			}
		})
	}
	c := smallDemo(t, t.TempDir(), 1)
	c.Optim.Schedule = "polynomial"
	if _, err := Run(context.Background(), c); err == nil || !strings.Contains(err.Error(), `unknown learning-rate schedule "polynomial"`) {
		t.Errorf("an unknown schedule: %v", err)
	}
}
