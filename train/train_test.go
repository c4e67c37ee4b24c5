package train

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/relupo/relupo/data"
	"github.com/relupo/relupo/model"
	"github.com/relupo/relupo/pref"
)

func tinyConfig() model.Config {
	return model.Config{ModelType: "llama", VocabSize: 40, HiddenSize: 16, IntermediateSize: 24, NumLayers: 2,
		NumHeads: 4, NumKVHeads: 2, HeadDim: 4, RMSNormEps: 1e-6, RopeTheta: 10000, BOSTokenID: 1, EOSTokenIDs: []int{2}, PadTokenID: 0,
		Raw: map[string]any{"model_type": "llama"}}
}

func tinyModel(seed uint64) *model.Model {
	m := model.New(tinyConfig())
	m.Params.Init(seed, 0.2)
	return m
}

func tinyExamples(n int, seed uint64) []data.Example {
	r := rand.New(rand.NewPCG(seed, 1))
	seq := func(k int) []int32 {
		s := make([]int32, k)
		for i := range s {
			s[i] = int32(3 + r.IntN(37))
		}
		return s
	}
	out := make([]data.Example, n)
	for i := range out {
		out[i] = data.Example{Prompt: seq(1 + r.IntN(5)), Chosen: seq(1 + r.IntN(6)), Rejected: seq(1 + r.IntN(6)), Source: "test:" + string(rune('a'+i))}
	}
	return out
}

func testOptions(t *testing.T) Options {
	o := DefaultOptions()
	o.Model, o.Data = "tiny model (in memory)", []string{"tiny pairs (in memory)"}
	o.OutputDir = t.TempDir()
	o.LearningRate = 1e-2
	o.LoggingSteps = 1
	o.GammaBetaRatio = 2 // every pair stays active
	o.Threads = 2        // results are bitwise reproducible for a given number of workers
	return o
}

// mustConfig is o.Config for tests.
func mustConfig(t *testing.T, o Options) Config {
	t.Helper()
	c, err := o.Config()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func runTrainer(t *testing.T, o Options, m *model.Model, exs []data.Example) (Summary, error) {
	t.Helper()
	tr := &Trainer{Config: mustConfig(t, o), Policy: m, Train: exs}
	return tr.Run(context.Background())
}

func maxAbsDiff(a, b []float32) float64 {
	var d float64
	for i := range a {
		d = max(d, float64(abs32(a[i]-b[i])))
	}
	return d
}

func abs32(x float32) float32 {
	if x < 0 {
		return -x
	}
	return x
}

// Micro-batch 2 × accumulation 3 is the same optimizer step as batch 6: the
// mean over 6 pairs equals the sum of three means over 2, each divided by 3.
// Float32 summation order differs, so weights agree to ~1e-6, not bitwise.
func TestAccumulationEqualsLargeBatch(t *testing.T) {
	exs := tinyExamples(12, 3)
	var weights [][]float32
	for _, shape := range [][2]int{{6, 1}, {2, 3}} {
		o := testOptions(t)
		o.PerDeviceTrainBatchSize, o.GradientAccumulationSteps = shape[0], shape[1]
		o.NumTrainEpochs = 2
		o.WeightDecay = 0.1
		m := tinyModel(1)
		sum, err := runTrainer(t, o, m, exs)
		if err != nil {
			t.Fatal(err)
		}
		if sum.Steps != 4 {
			t.Fatalf("batch %v: %d steps, want 4", shape, sum.Steps)
		}
		weights = append(weights, slices.Clone(m.Params.Mem))
	}
	if d := maxAbsDiff(weights[0], weights[1]); d > 2e-6 {
		t.Fatalf("weights differ by %g", d)
	} else if d == 0 {
		t.Log("bitwise equal")
	}
}

// Resuming from a middle checkpoint reaches exactly the weights of the
// uninterrupted run, across epochs, with warmup and a cosine schedule.
func TestResumeIsExact(t *testing.T) {
	exs := tinyExamples(10, 4)
	base := testOptions(t)
	base.NumTrainEpochs = 3
	base.PerDeviceTrainBatchSize, base.GradientAccumulationSteps = 2, 2 // 5 micro-batches: 3 steps per epoch, the last takes 1
	base.LRSchedulerType, base.WarmupSteps = "cosine", 2
	base.WeightDecay, base.MaxGradNorm = 0.05, 0.5

	full := tinyModel(2)
	o := base
	if _, err := runTrainer(t, o, full, exs); err != nil {
		t.Fatal(err)
	}

	o = base
	o.OutputDir = t.TempDir()
	o.SaveSteps = 4
	first := tinyModel(2)
	if _, err := runTrainer(t, o, first, exs); err != nil {
		t.Fatal(err)
	}
	for _, from := range []string{filepath.Join(o.OutputDir, "checkpoint-4"), "latest"} {
		t.Run(filepath.Base(from), func(t *testing.T) {
			r := o
			r.ResumeFrom = from
			resumed := tinyModel(99) // weights come from the checkpoint
			sum, err := runTrainer(t, r, resumed, exs)
			if err != nil {
				t.Fatal(err)
			}
			if sum.Steps != 9 {
				t.Fatalf("resumed run ended at step %d, want 9", sum.Steps)
			}
			if !slices.Equal(resumed.Params.Mem, full.Params.Mem) {
				t.Fatalf("resumed weights differ from the uninterrupted run by %g", maxAbsDiff(resumed.Params.Mem, full.Params.Mem))
			}
		})
	}
}

// Cancelling the context (SIGINT) finishes the step, writes a checkpoint and
// reports how to resume; resuming from it completes the run exactly.
func TestInterruptWritesResumableCheckpoint(t *testing.T) {
	exs := tinyExamples(8, 5)
	o := testOptions(t)
	o.NumTrainEpochs = 2
	o.PerDeviceTrainBatchSize = 2

	full := tinyModel(3)
	oFull := o
	oFull.OutputDir = t.TempDir()
	if _, err := runTrainer(t, oFull, full, exs); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	m := tinyModel(3)
	tr := &Trainer{Config: mustConfig(t, o), Policy: m, Train: exs, Progress: cancelAt{3, cancel}}
	_, err := tr.Run(ctx)
	if !errors.Is(err, ErrInterrupted) {
		t.Fatalf("got %v, want ErrInterrupted", err)
	}
	t.Log(err)
	r := o
	r.ResumeFrom = "latest"
	resumed := tinyModel(7)
	if _, err := runTrainer(t, r, resumed, exs); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(resumed.Params.Mem, full.Params.Mem) {
		t.Fatalf("weights after interrupt+resume differ by %g", maxAbsDiff(resumed.Params.Mem, full.Params.Mem))
	}
}

// cancelAt cancels the run's context when step n completes.
type cancelAt struct {
	n      int
	cancel func()
}

func (c cancelAt) Start(int, int) {}
func (c cancelAt) Step(step int, _ Row) {
	if step == c.n {
		c.cancel()
	}
}
func (c cancelAt) Log(Row) {}
func (c cancelAt) Finish() {}

// The dynamic γ schedule (paper §5.5) moves γ linearly from
// gamma_beta_ratio at the first step to gamma_end at the last, and logs it.
func TestDynamicGamma(t *testing.T) {
	o := testOptions(t)
	o.GammaBetaRatio, o.GammaEnd = 1.0, 0.2
	o.MaxSteps, o.PerDeviceTrainBatchSize = 5, 2
	tr := &Trainer{Config: mustConfig(t, o), Policy: tinyModel(4), Train: tinyExamples(10, 6)}
	if _, err := tr.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(o.OutputDir, "metrics.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	var got []float64
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var r map[string]float64
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatal(err)
		}
		got = append(got, r["gamma"])
	}
	want := []float64{1.0, 0.8, 0.6, 0.4, 0.2}
	if len(got) != len(want) {
		t.Fatalf("logged γ %v, want %v", got, want)
	}
	for i := range want {
		if math.Abs(got[i]-want[i]) > 1e-12 {
			t.Fatalf("logged γ %v, want %v", got, want)
		}
	}
}

// sft_weight adds w times the token-mean cross-entropy of the chosen
// responses (over all chosen labels of the micro-batch, as the SimPO/RePO
// trainer's CrossEntropyLoss does) to the loss, and logs it as sft_loss;
// evaluation computes the same loss (eval_loss, eval_sft_loss).
func TestSFTWeight(t *testing.T) {
	exs := tinyExamples(4, 8)
	m := tinyModel(6)
	var sum, n float64
	e := NewEngine(m, Compute{Threads: 2})
	lp, _, err := e.ForwardNoGrad(exs, true)
	e.Close()
	if err != nil {
		t.Fatal(err)
	}
	for i := range lp.Chosen {
		sum += lp.Chosen[i]
		n += lp.ChosenTokens[i]
	}
	wantSFT := -sum / n
	base, err := pref.Compute(pref.Config{LossType: "repo", Beta: 2, Gamma: 2}, lp.inputs(exs))
	if err != nil {
		t.Fatal(err)
	}
	o := testOptions(t)
	o.SFTWeight, o.MaxSteps, o.PerDeviceTrainBatchSize, o.PerDeviceEvalBatchSize = 0.5, 1, 4, 4
	o.LearningRate = 0 // the final evaluation sees the same weights
	tr := &Trainer{Config: mustConfig(t, o), Policy: m, Train: exs, Eval: exs}
	s, err := tr.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(filepath.Join(o.OutputDir, "metrics.jsonl"))
	var r map[string]float64
	if err := json.Unmarshal([]byte(strings.SplitN(string(b), "\n", 2)[0]), &r); err != nil {
		t.Fatal(err)
	}
	want := base.Loss + 0.5*wantSFT
	close := func(a, b float64) bool { return math.Abs(a-b) <= 1e-9*math.Max(1, math.Abs(b)) }
	if !close(r["sft_loss"], wantSFT) || !close(r["loss"], want) {
		t.Fatalf("logged sft_loss %v loss %v, want %v and %v", r["sft_loss"], r["loss"], wantSFT, want)
	}
	if !close(s.Eval["eval_sft_loss"], wantSFT) || !close(s.Eval["eval_loss"], want) {
		t.Fatalf("eval_sft_loss %v eval_loss %v, want %v and %v: evaluation must compute the training loss", s.Eval["eval_sft_loss"], s.Eval["eval_loss"], wantSFT, want)
	}
}

// Prompt sharing gives the same log-probs as separate sequences, also for a
// pair with an empty prompt (which is never shared: its first response token
// has no previous position to be scored from).
func TestPackSharedEqualsUnshared(t *testing.T) {
	exs := tinyExamples(5, 11)
	exs[2].Prompt = nil
	e := NewEngine(tinyModel(9), Compute{Threads: 2})
	defer e.Close()
	var got [2]PairLogps
	for i, share := range []bool{false, true} {
		lp, _, err := e.ForwardNoGrad(exs, share)
		if err != nil {
			t.Fatal(err)
		}
		got[i] = lp
	}
	for k := range exs {
		if got[0].ChosenTokens[k] != got[1].ChosenTokens[k] || got[0].RejectedTokens[k] != got[1].RejectedTokens[k] {
			t.Fatalf("pair %d: label counts differ", k)
		}
		for _, pr := range [][2]float64{{got[0].Chosen[k], got[1].Chosen[k]}, {got[0].Rejected[k], got[1].Rejected[k]}} {
			if math.Abs(pr[0]-pr[1]) > 1e-5*math.Max(1, math.Abs(pr[0])) {
				t.Fatalf("pair %d: unshared %v, shared %v", k, pr[0], pr[1])
			}
		}
	}
	if got[0].ChosenTokens[2] != float64(len(exs[2].Chosen)-1) {
		t.Fatalf("empty-prompt pair scored %v chosen tokens, want %d", got[0].ChosenTokens[2], len(exs[2].Chosen)-1)
	}
}
