// Package quickstart is relupo's self-contained demonstration: it builds a
// small Llama and a synthetic preference task in memory, measures held-out
// preference accuracy, trains with RePO and measures it again.
//
// The task ("remember the prompt"): a prompt is a set of 4 to 8 distinct
// symbols out of 61, in random order. The chosen response lists those same
// symbols in ascending order; the rejected response lists as many symbols
// that do not occur in the prompt, also in ascending order. Both responses
// are sorted, so their order says nothing; the only way to prefer the chosen
// one is to attend to the prompt. A randomly initialized model prefers
// either about half of the time; RePO training drives held-out accuracy up.
package quickstart

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/relupo/relupo/data"
	"github.com/relupo/relupo/model"
	"github.com/relupo/relupo/train"
)

// Vocabulary layout: 0 pad, 1 BOS, 2 EOS, 3.. symbols.
const (
	vocab    = 64
	firstSym = 3
)

// Config is the small Llama the quickstart trains.
func Config() model.Config {
	return model.Config{
		ModelType: "llama", VocabSize: vocab, HiddenSize: 64, IntermediateSize: 160, NumLayers: 2,
		NumHeads: 4, NumKVHeads: 2, HeadDim: 16, RMSNormEps: 1e-6, RopeTheta: 10000, MaxPositionEmbeddings: 64,
		BOSTokenID: 1, EOSTokenIDs: []int{2}, PadTokenID: 0, DType: "float32",
		Raw: map[string]any{
			"architectures": []any{"LlamaForCausalLM"}, "model_type": "llama", "vocab_size": vocab, "hidden_size": 64,
			"intermediate_size": 160, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
			"head_dim": 16, "rms_norm_eps": 1e-6, "rope_theta": 10000.0, "max_position_embeddings": 64,
			"hidden_act": "silu", "tie_word_embeddings": false, "bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 0,
			"torch_dtype": "float32",
		},
	}
}

// Task returns n pairs of the task, drawn from seed.
func Task(n int, seed uint64) []data.Example {
	r := rand.New(rand.NewPCG(seed, 7))
	syms := vocab - firstSym
	out := make([]data.Example, n)
	for i := range out {
		k := 4 + r.IntN(5)
		perm := r.Perm(syms)
		prompt := make([]int32, 0, k+1)
		prompt = append(prompt, 1) // BOS
		for _, s := range perm[:k] {
			prompt = append(prompt, int32(firstSym+s))
		}
		chosen := sortedSyms(perm[:k])
		rejected := sortedSyms(perm[k : 2*k])
		out[i] = data.Example{Prompt: prompt, Chosen: chosen, Rejected: rejected, Source: "quickstart"}
	}
	return out
}

func sortedSyms(s []int) []int32 {
	out := make([]int32, 0, len(s)+1)
	for _, v := range s {
		out = append(out, int32(firstSym+v))
	}
	slices.Sort(out)
	return append(out, 2) // EOS
}

// Result is the quickstart's summary.
type Result struct {
	AccuracyBefore float64 `json:"accuracy_before"`
	AccuracyAfter  float64 `json:"accuracy_after"`
	OutputDir      string  `json:"output_dir"`
	Seconds        float64 `json:"seconds"`
	Steps          int     `json:"steps"`
}

// Options size the run.
type Options struct {
	OutputDir  string
	Epochs     float64
	TrainPairs int
	EvalPairs  int
	Threads    int
	Progress   train.Progress
	// ComputeDType is the precision of the matrix products: float32 (or
	// empty) or bf16.
	ComputeDType string
}

// Run trains the quickstart model and reports accuracy before and after.
func Run(ctx context.Context, o Options) (Result, error) {
	start := time.Now()
	to := train.DefaultOptions()
	to.Model = "quickstart (built in memory)"
	to.Data, to.EvalData = []string{"quickstart task (built in memory)"}, []string{"quickstart held-out pairs (built in memory)"}
	to.OutputDir, to.Overwrite = o.OutputDir, true // a demonstration: each run starts the folder anew
	to.LossType, to.GammaBetaRatio, to.Beta = "repo", 0.5, 2
	to.LearningRate, to.LRSchedulerType, to.WarmupRatio = 3e-3, "cosine", 0.1
	to.PerDeviceTrainBatchSize, to.PerDeviceEvalBatchSize = 8, 32
	to.NumTrainEpochs = o.Epochs
	to.LoggingSteps = 10
	to.EvalSteps = 50
	to.Threads, to.ComputeDType = o.Threads, o.ComputeDType
	cfg, err := to.Config()
	if err != nil {
		return Result{}, fmt.Errorf("quickstart: %w", err)
	}

	m := model.New(Config())
	m.Params.Init(1, 0.02)
	tr := &train.Trainer{Config: cfg, Policy: m, Train: Task(o.TrainPairs, 1), Eval: Task(o.EvalPairs, 2), Progress: o.Progress}
	e := train.NewEngine(m, cfg.Compute)
	before, err := e.Evaluate(tr.Eval, cfg.Loss.Config, cfg.Loop.EvalBatchSize)
	e.Close()
	if err != nil {
		return Result{}, err
	}
	sum, err := tr.Run(ctx)
	if err != nil {
		return Result{}, err
	}
	return Result{
		AccuracyBefore: before["rewards/accuracies"],
		AccuracyAfter:  sum.Eval["eval_rewards/accuracies"],
		OutputDir:      o.OutputDir,
		Seconds:        time.Since(start).Seconds(),
		Steps:          sum.Steps,
	}, nil
}
