package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/relupo/relupo/data"
	"github.com/relupo/relupo/dist"
	"github.com/relupo/relupo/internal/atomicfile"
	"github.com/relupo/relupo/kernels"
	"github.com/relupo/relupo/model"
	"github.com/relupo/relupo/pref"
	"github.com/relupo/relupo/train"
)

// Preset is a model shape of ../shared/reference/bench_train.py with its
// sequence length.
type Preset struct {
	Model model.Config
	Seq   int
}

// Presets mirror ../shared/reference/bench_train.py exactly.
var Presets = map[string]Preset{
	"30m": {model.Config{ModelType: "llama", VocabSize: 8192, HiddenSize: 512, IntermediateSize: 1376, NumLayers: 8,
		NumHeads: 8, NumKVHeads: 8, HeadDim: 64, RMSNormEps: 1e-5, RopeTheta: 10000, MaxPositionEmbeddings: 2048}, 512},
	"135m": {model.Config{ModelType: "llama", VocabSize: 49152, HiddenSize: 576, IntermediateSize: 1536, NumLayers: 30,
		NumHeads: 9, NumKVHeads: 3, HeadDim: 64, RMSNormEps: 1e-5, RopeTheta: 10000, MaxPositionEmbeddings: 2048, TieWordEmbeddings: true}, 256},
	// The shapes of google/gemma-3-1b-it (full fine-tuning: 1.0B parameters,
	// about 17 GB in training) and google/gemma-2-2b-it (2.6B; its training
	// needs LoRA, which relupo does not have yet: --mode ref-forward or
	// decode), random weights. bench/gemma_bench.py is the PyTorch side.
	"gemma3-1b": {func() model.Config {
		c, _ := model.ParseConfig([]byte(`{"model_type": "gemma3_text", "vocab_size": 262144, "hidden_size": 1152,
			"intermediate_size": 6912, "num_hidden_layers": 26, "num_attention_heads": 4, "num_key_value_heads": 1,
			"head_dim": 256, "query_pre_attn_scalar": 256, "sliding_window": 512, "sliding_window_pattern": 6,
			"rope_theta": 1000000, "rope_local_base_freq": 10000, "rope_scaling": null, "rms_norm_eps": 1e-6,
			"attn_logit_softcapping": null, "final_logit_softcapping": null, "max_position_embeddings": 32768,
			"tie_word_embeddings": true, "bos_token_id": 2, "eos_token_id": [1, 106], "pad_token_id": 0}`))
		return c
	}(), 256},
	"gemma2-2b": {func() model.Config {
		c, _ := model.ParseConfig([]byte(`{"model_type": "gemma2", "vocab_size": 256000, "hidden_size": 2304,
			"intermediate_size": 9216, "num_hidden_layers": 26, "num_attention_heads": 8, "num_key_value_heads": 4,
			"head_dim": 256, "query_pre_attn_scalar": 256, "sliding_window": 4096, "attn_logit_softcapping": 50.0,
			"final_logit_softcapping": 30.0, "rope_theta": 10000, "rms_norm_eps": 1e-6, "max_position_embeddings": 8192,
			"tie_word_embeddings": true, "bos_token_id": 2, "eos_token_id": [1, 107], "pad_token_id": 0}`))
		return c
	}(), 256},
	// Issue 15's big models (bench/lora.go; bench/lora_bench.py is the
	// PyTorch side): one pair of 2 × 512 tokens.
	"llama3.2-1b": {llama32_1B, 512},
	"llama3-8b":   {llama3_8B, 512},
}

// ParseShape reads an explicit shape "V,D,I,L,H,KV" (vocab, hidden,
// intermediate, layers, heads, kv heads).
func ParseShape(s string) (model.Config, error) {
	parts := strings.Split(s, ",")
	if len(parts) != 6 {
		return model.Config{}, fmt.Errorf("bench: --shape wants V,D,I,L,H,KV, got %q", s)
	}
	v := make([]int, 6)
	for i, p := range parts {
		n, err := strconv.Atoi(strings.TrimSpace(p))
		if err != nil || n < 1 {
			return model.Config{}, fmt.Errorf("bench: --shape: %q is not a positive integer", p)
		}
		v[i] = n
	}
	if v[1]%v[4] != 0 || v[4]%v[5] != 0 {
		return model.Config{}, errors.New("bench: --shape: hidden must be a multiple of heads, and heads of kv heads")
	}
	return model.Config{ModelType: "llama", VocabSize: v[0], HiddenSize: v[1], IntermediateSize: v[2], NumLayers: v[3],
		NumHeads: v[4], NumKVHeads: v[5], HeadDim: v[1] / v[4], RMSNormEps: 1e-5, RopeTheta: 10000}, nil
}

// ParsePrecision reads a --compute-dtype value (float32 or bf16).
func ParsePrecision(s string) (kernels.Precision, error) { return kernels.ParsePrecision(s) }

// TrainConfig sets up a training-step benchmark (see [Train]).
type TrainConfig struct {
	Model model.Config
	// Mode is "train" (forward, RePO loss, backward, AdamW) or
	// "ref-forward" (the no-gradient forward a reference model needs).
	Mode string
	// Seq is the tokens of each of the 2·Pairs sequences; the first quarter
	// is prompt.
	Seq, Pairs int
	// Steps is how many steps are timed after one warm-up step; with
	// Seconds > 0, steps are timed instead until Seconds after the warm-up
	// began (at least one, at most MaxSteps), as bench_train.py's
	// max_seconds does.
	Steps   int
	Seconds float64
	Compute train.Compute
	// CPUProfile, when set, receives a CPU profile of the timed steps.
	CPUProfile string
	// Log receives the per-step lines; nil discards them.
	Log io.Writer
	// Comm runs the steps data-parallel over the ranks of an MPI job
	// (train mode): each rank runs Pairs pairs a step and the gradients are
	// all-reduced. Nil is one process.
	Comm dist.Comm
	// Profile splits the timed steps' time into parts (TrainResult.Profile).
	Profile bool
}

// MaxSteps is the most steps TrainConfig.Seconds times, as in bench_train.py.
const MaxSteps = 20

// TrainResult is what [Train] measured; its JSON keys are those the
// side-by-side scripts read.
type TrainResult struct {
	Mode          string  `json:"mode"`
	Ranks         int     `json:"ranks"`
	Threads       int     `json:"threads"`
	SeqLen        int     `json:"seq_len"`
	Sequences     int     `json:"sequences"`
	TokensPerStep int     `json:"tokens_per_step"`
	ParamsTotal   int64   `json:"params_total"`
	FlopsPerStepG float64 `json:"flops_per_step_G"`
	StepsMeasured int     `json:"steps_measured"`
	StepSMedian   float64 `json:"step_s_median"`
	StepSMin      float64 `json:"step_s_min"`
	TokensPerS    float64 `json:"tokens_per_s"`
	GFlops        float64 `json:"gflops"`
	PeakRSSGB     float64 `json:"peak_rss_GB"`
	Kernels       string  `json:"kernels"`
	Go            string  `json:"go"`
	ComputeDType  string  `json:"compute_dtype"`
	BF16Native    bool    `json:"bf16_native"`
	// Profile is the time split of the timed steps (TrainConfig.Profile).
	Profile *StepProfile `json:"profile,omitempty"`
}

// stepper runs benchmark steps on a randomly initialized model through the
// trainer's own Engine.Step.
type stepper struct {
	e     *train.Engine
	train bool
}

func newStepper(cfg model.Config, c train.Compute, training bool, log io.Writer) *stepper {
	if c.Precision == kernels.BF16 && !kernels.NativeBF16() && log != nil {
		fmt.Fprintln(log, "relupo bench: bf16 is emulated here (no AMX-BF16 or AVX512_BF16 on this CPU or kernel path): bf16 numbers, slower than float32")
	}
	m := model.New(cfg)
	m.Params.Init(0, 0.02)
	return &stepper{e: train.NewEngine(m, c), train: training}
}

// benchLoss is RePO with γ large enough that every pair is active.
var benchLoss = pref.Config{LossType: pref.LossRePO, Beta: 2, Gamma: 10}

// step runs one micro-batch: with training, a whole optimizer step without
// clipping (as bench_train.py), else a no-gradient forward. It returns the
// tokens computed.
func (s *stepper) step(mb []data.Example, share bool) (int, error) {
	if !s.train {
		_, n, err := s.e.ForwardNoGrad(mb, share)
		return n, err
	}
	r, err := s.e.Step(train.Batch{Micro: [][]data.Example{mb}, Accumulation: 1, SharePrompt: share}, benchLoss, 1e-5, -1)
	return int(r.Tokens), err
}

// randomIDs draws n token ids, avoiding the first three (special) ids.
func randomIDs(r *rand.Rand, cfg model.Config, n int) []int32 {
	s := make([]int32, n)
	for i := range s {
		s[i] = int32(3 + r.IntN(cfg.VocabSize-3))
	}
	return s
}

// Train times training steps (or reference forwards) the way
// bench_train.py does for PyTorch, so that the two run side by side.
func Train(ctx context.Context, c TrainConfig) (TrainResult, error) {
	if c.Mode != "train" && c.Mode != "ref-forward" {
		return TrainResult{}, fmt.Errorf("bench: unknown mode %q (train or ref-forward)", c.Mode)
	}
	if c.Steps < 1 || c.Pairs < 1 || c.Seq < 2 {
		return TrainResult{}, errors.New("bench: steps and pairs must be ≥ 1 and seq ≥ 2")
	}
	log := c.Log
	if log == nil {
		log = io.Discard
	}
	st := newStepper(c.Model, c.Compute, c.Mode == "train", log)
	defer st.e.Close()
	ranks := 1
	if c.Comm != nil {
		st.e.Comm, ranks = c.Comm, c.Comm.Size()
	}
	T := c.Seq
	r := rand.New(rand.NewPCG(0, 0))
	exs := make([]data.Example, c.Pairs)
	for i := range exs {
		exs[i] = data.Example{Prompt: randomIDs(r, c.Model, T/4), Chosen: randomIDs(r, c.Model, T-T/4), Rejected: randomIDs(r, c.Model, T-T/4)}
	}
	tokens := 2 * c.Pairs * T * ranks // the job's, over all ranks
	flops := Flops(c.Model, T, tokens, c.Mode)
	t0 := time.Now()
	if _, err := st.step(exs, false); err != nil { // warm-up
		return TrainResult{}, err
	}
	fmt.Fprintf(log, "warm-up step %.2fs\n", time.Since(t0).Seconds())
	var prof *kernels.Profile
	if c.Profile {
		prof = st.profile()
		defer st.e.Workspace.Pool.SetProfile(nil)
	}
	stop, err := startCPUProfile(c.CPUProfile)
	if err != nil {
		return TrainResult{}, err
	}
	defer stop()
	more := func(done int) bool {
		if c.Seconds > 0 {
			return done < 1 || (time.Since(t0).Seconds() < c.Seconds && done < MaxSteps)
		}
		return done < c.Steps
	}
	var times []float64
	for i := 0; more(i); i++ {
		if err := ctx.Err(); err != nil {
			return TrainResult{}, err
		}
		t := time.Now()
		if _, err := st.step(exs, false); err != nil {
			return TrainResult{}, err
		}
		times = append(times, time.Since(t).Seconds())
		fmt.Fprintf(log, "step %d: %.3fs\n", i+1, times[i])
	}
	var sp *StepProfile
	if prof != nil {
		sp = newStepProfile(prof, times, c.Compute.Precision, st.e.Workspace.Pool.Workers())
	}
	slices.Sort(times)
	med := times[len(times)/2]
	return TrainResult{
		Profile: sp,
		Mode:    c.Mode, Ranks: ranks, Threads: st.e.Workspace.Pool.Workers(), SeqLen: T, Sequences: 2 * c.Pairs * ranks,
		TokensPerStep: tokens, ParamsTotal: c.Model.NumParams(), FlopsPerStepG: flops / 1e9,
		StepsMeasured: len(times), StepSMedian: med, StepSMin: times[0],
		TokensPerS: float64(tokens) / med, GFlops: flops / med / 1e9, PeakRSSGB: PeakRSSGB(),
		Kernels: kernels.Describe(), Go: runtime.Version(), ComputeDType: c.Compute.Precision.String(),
		BF16Native: c.Compute.Precision == kernels.BF16 && kernels.NativeBF16(),
	}, nil
}

// Flops counts a step's FLOPs as bench_train.py does:
// 6·N_matmul·tokens + 12·L·D·T·tokens, a third of it for a forward only.
func Flops(c model.Config, T, tokens int, mode string) float64 {
	var mm int64
	for _, t := range c.Tensors() {
		if strings.HasSuffix(t.Name, "proj.weight") || t.Name == "lm_head.weight" {
			mm += int64(t.Shape[0] * t.Shape[1])
		}
	}
	if c.TieWordEmbeddings {
		mm += int64(c.VocabSize * c.HiddenSize)
	}
	f := 6*float64(mm)*float64(tokens) + 12*float64(c.NumLayers*c.HiddenSize*T)*float64(tokens)
	if mode == "ref-forward" {
		f /= 3
	}
	return f
}

// PairLength is the token count of a pair's prompt and responses.
type PairLength struct {
	Prompt   int `json:"prompt"`
	Chosen   int `json:"chosen"`
	Rejected int `json:"rejected"`
}

// PairLengths reads a data set as training would (the model folder's chat
// template and tokenizer, the given truncation; invalid records skipped)
// and returns the pairs' lengths.
func PairLengths(ctx context.Context, mixture, modelDir string, trunc data.Truncation) ([]PairLength, error) {
	srcs, err := data.ParseMixture(mixture)
	if err != nil {
		return nil, err
	}
	cfg, err := model.LoadConfig(modelDir)
	if err != nil {
		return nil, err
	}
	exs, err := data.Load(ctx, data.LoadConfig{Sources: srcs, Tokenizer: modelDir, Truncation: trunc,
		Limits: data.Limits{VocabSize: cfg.VocabSize}, SkipInvalid: true})
	if err != nil {
		return nil, err
	}
	out := make([]PairLength, len(exs))
	for i, e := range exs {
		out[i] = PairLength{len(e.Prompt), len(e.Chosen), len(e.Rejected)}
	}
	return out, nil
}

// WriteLengths writes lengths as JSON lines {prompt, chosen, rejected}, for
// bench/trl_style_bench.py, atomically.
func WriteLengths(path string, lens []PairLength) error {
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

// RealisticConfig sets up a benchmark on real pair lengths (see [Realistic]).
type RealisticConfig struct {
	Model   model.Config
	Lengths []PairLength
	// Batch is pairs per step; Share runs each prompt once.
	Batch   int
	Share   bool
	Compute train.Compute
	Log     io.Writer
	// CPUProfile, when set, receives a CPU profile of the timed pass.
	CPUProfile string
}

// RealisticResult is what [Realistic] measured.
type RealisticResult struct {
	Mode        string  `json:"mode"`
	SharePrompt bool    `json:"share_prompt"`
	Pairs       int     `json:"pairs"`
	BatchPairs  int     `json:"batch_pairs"`
	Seconds     float64 `json:"seconds"`
	PairsPerS   float64 `json:"pairs_per_s"`
	Tokens      int     `json:"tokens"`
	TokensPerS  float64 `json:"tokens_per_s"`
	PeakRSSGB   float64 `json:"peak_rss_GB"`
	Threads     int     `json:"threads"`
	Kernels     string  `json:"kernels"`
	Go          string  `json:"go"`
}

// Realistic trains one pass over pairs of the given lengths (random ids),
// in batches packed without padding, after one warm-up batch.
func Realistic(ctx context.Context, c RealisticConfig) (RealisticResult, error) {
	if len(c.Lengths) == 0 {
		return RealisticResult{}, errors.New("bench: the data set has no usable pairs")
	}
	if c.Batch < 1 {
		return RealisticResult{}, errors.New("bench: the batch must hold at least one pair")
	}
	st := newStepper(c.Model, c.Compute, true, c.Log)
	defer st.e.Close()
	r := rand.New(rand.NewPCG(0, 0))
	exs := make([]data.Example, len(c.Lengths))
	for i, l := range c.Lengths {
		exs[i] = data.Example{Prompt: randomIDs(r, c.Model, l.Prompt), Chosen: randomIDs(r, c.Model, l.Chosen), Rejected: randomIDs(r, c.Model, l.Rejected)}
	}
	if _, err := st.step(exs[:min(c.Batch, len(exs))], c.Share); err != nil { // warm-up
		return RealisticResult{}, err
	}
	stop, err := startCPUProfile(c.CPUProfile)
	if err != nil {
		return RealisticResult{}, err
	}
	defer stop()
	start := time.Now()
	tokens := 0
	for lo := 0; lo < len(exs); lo += c.Batch {
		if err := ctx.Err(); err != nil {
			return RealisticResult{}, err
		}
		n, err := st.step(exs[lo:min(lo+c.Batch, len(exs))], c.Share)
		if err != nil {
			return RealisticResult{}, err
		}
		tokens += n
	}
	secs := time.Since(start).Seconds()
	return RealisticResult{
		Mode: "realistic", SharePrompt: c.Share, Pairs: len(exs), BatchPairs: c.Batch, Seconds: secs,
		PairsPerS: float64(len(exs)) / secs, Tokens: tokens, TokensPerS: float64(tokens) / secs,
		PeakRSSGB: PeakRSSGB(), Threads: st.e.Workspace.Pool.Workers(), Kernels: kernels.Describe(), Go: runtime.Version(),
	}, nil
}

// startCPUProfile starts a CPU profile into the file path (none when path
// is empty); stop ends it and closes the file.
func startCPUProfile(path string) (stop func(), err error) {
	if path == "" {
		return func() {}, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("bench: %w", err)
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}
