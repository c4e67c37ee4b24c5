package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/relupo/relupo/data"
	"github.com/relupo/relupo/kernels"
	"github.com/relupo/relupo/model"
	"github.com/relupo/relupo/train"
)

// The shapes of issue 15's big-model benchmarks, with random weights:
// meta-llama/Llama-3.2-1B (1.24B parameters, tied embeddings) and
// meta-llama/Meta-Llama-3-8B (8.03B, untied). Llama-3.2's rope_scaling is
// left out, here and in bench/lora_bench.py: it changes the rotation's
// frequencies, not the work.
var (
	llama32_1B = model.Config{ModelType: "llama", VocabSize: 128256, HiddenSize: 2048, IntermediateSize: 8192,
		NumLayers: 16, NumHeads: 32, NumKVHeads: 8, HeadDim: 64, RMSNormEps: 1e-5, RopeTheta: 500000,
		MaxPositionEmbeddings: 131072, TieWordEmbeddings: true}
	llama3_8B = model.Config{ModelType: "llama", VocabSize: 128256, HiddenSize: 4096, IntermediateSize: 14336,
		NumLayers: 32, NumHeads: 32, NumKVHeads: 8, HeadDim: 128, RMSNormEps: 1e-5, RopeTheta: 500000,
		MaxPositionEmbeddings: 8192}
)

// LoRARow is one row of the fine-tuning benchmark: full fine-tuning (every
// weight float32, trained with AdamW) or LoRA (the base frozen, adapters
// trained), with or without gradient checkpointing.
type LoRARow struct {
	LoRA bool
	// Checkpointing recomputes each layer inside backward
	// (model.Workspace.Checkpoint; torch.utils.checkpoint on the PyTorch
	// side).
	Checkpointing bool
	// BaseF32 holds a LoRA row's frozen base in float32 instead of
	// bfloat16 (2 bytes a weight, as relupo holds a bf16 checkpoint).
	BaseF32 bool
}

// String names the row as ParseLoRARows reads it: full, full+ckpt, lora,
// lora+ckpt, lora-f32, lora-f32+ckpt.
func (r LoRARow) String() string {
	s := "full"
	if r.LoRA {
		s = "lora"
		if r.BaseF32 {
			s += "-f32"
		}
	}
	if r.Checkpointing {
		s += "+ckpt"
	}
	return s
}

// BaseDType is the dtype the row holds its frozen base in: "bf16" or
// "float32" (full fine-tuning: "float32").
func (r LoRARow) BaseDType() string {
	if r.LoRA && !r.BaseF32 {
		return "bf16"
	}
	return "float32"
}

// LoRARowNames are the rows ParseLoRARows knows.
var LoRARowNames = []string{"full", "full+ckpt", "lora", "lora+ckpt", "lora-f32", "lora-f32+ckpt"}

// ParseLoRARows reads a comma-separated list of row names (LoRARowNames).
func ParseLoRARows(s string) ([]LoRARow, error) {
	var rows []LoRARow
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		base, ckpt := strings.CutSuffix(f, "+ckpt")
		r := LoRARow{Checkpointing: ckpt}
		switch base {
		case "full":
		case "lora":
			r.LoRA = true
		case "lora-f32":
			r.LoRA, r.BaseF32 = true, true
		default:
			return nil, fmt.Errorf("bench: unknown row %q (rows: %s)", f, strings.Join(LoRARowNames, ", "))
		}
		rows = append(rows, r)
	}
	if len(rows) == 0 {
		return nil, fmt.Errorf("bench: %q names no row (rows: %s)", s, strings.Join(LoRARowNames, ", "))
	}
	return rows, nil
}

// LoRAResult is one side's measurement of one row; relupo's row and
// bench/lora_bench.py print it as one JSON object with these keys.
type LoRAResult struct {
	Side          string `json:"side"` // relupo or pytorch
	Preset        string `json:"preset"`
	Mode          string `json:"mode"` // full or lora
	Checkpointing bool   `json:"checkpointing"`
	BaseDType     string `json:"base_dtype"`
	LoRAR         int    `json:"lora_r"`
	SeqLen        int    `json:"seq_len"`
	Sequences     int    `json:"sequences"`
	TokensPerStep int    `json:"tokens_per_step"`
	// ParamsTrainable counts the weights AdamW updates (all of them, or
	// the adapters'); ParamsBase the model's own.
	ParamsTrainable int64   `json:"params_trainable"`
	ParamsBase      int64   `json:"params_base"`
	StepsMeasured   int     `json:"steps_measured"`
	StepSMedian     float64 `json:"step_s_median"`
	StepSMin        float64 `json:"step_s_min"`
	TokensPerS      float64 `json:"tokens_per_s"`
	// RSSModelGB is the resident memory once the model is built, before
	// the first step; PeakRSSGB the process's high-water mark (VmHWM).
	RSSModelGB float64 `json:"rss_model_GB"`
	PeakRSSGB  float64 `json:"peak_rss_GB"`
	// EstimateGB is relupo's memory pre-flight estimate of the step
	// (relupo's side only).
	EstimateGB float64 `json:"estimate_GB,omitempty"`
	Threads    int     `json:"threads"`
	Kernels    string  `json:"kernels,omitempty"`
	Go         string  `json:"go,omitempty"`
	Torch      string  `json:"torch,omitempty"`
}

// SideBySideConfig sets up [SideBySide]: relupo's rows and the PyTorch
// baseline's, each side of each row in a process of its own (so that each
// peak RSS is the row's own), alternating.
type SideBySideConfig struct {
	// Preset is a Presets name, or Shape an explicit V,D,I,L,H,KV shape
	// (ParseShape); both sides are given the same.
	Preset, Shape string
	Rows          []LoRARow
	// Seq is the tokens of each of the 2·Pairs sequences of a step (0: the
	// preset's).
	Seq, Pairs int
	// Steps are timed after one warm-up step; with Seconds > 0, steps are
	// timed instead until Seconds after the warm-up began (at most
	// MaxSteps).
	Steps   int
	Seconds float64
	// Rounds repeats every row's pair of runs, alternating.
	Rounds int
	// Threads of each side (0: every core).
	Threads int
	// R and Alpha are the LoRA rank and α of the LoRA rows (all linear
	// layers, no dropout).
	R     int
	Alpha float64
	// Relupo is the command line of a relupo binary up to its flags
	// (normally os.Executable()); "bench" and the row's flags are appended.
	Relupo []string
	// Python runs Script (bench/lora_bench.py); NoPyTorch skips its rows.
	Python, Script string
	NoPyTorch      bool
	// CoreType is the OPENBLAS_CORETYPE of the PyTorch runs: "" for
	// OpenBLAS's own choice, "auto" to time each candidate with
	// CoreTypeScript (bench/openblas_coretype.py) and take the fastest.
	CoreType, CoreTypeScript string
	// EpochPairs is the data set size the hours of one epoch are projected
	// for (60,000: UltraFeedback's binarized training pairs).
	EpochPairs int
	// Log receives progress lines and every run's own log; nil discards.
	Log io.Writer
}

// SideBySideRow is one round of one row: both sides' measurements (nil
// with the error that stopped a side) and what follows from them.
type SideBySideRow struct {
	Row   string `json:"row"`
	Round int    `json:"round"`
	// Relupo and PyTorch are the two sides; RelupoError and PyTorchError
	// say why a side has no result (a failed run: out of memory, …).
	Relupo       *LoRAResult `json:"relupo,omitempty"`
	PyTorch      *LoRAResult `json:"pytorch,omitempty"`
	RelupoError  string      `json:"relupo_error,omitempty"`
	PyTorchError string      `json:"pytorch_error,omitempty"`
	// Speedup is relupo's tokens/s over PyTorch's; RSSRatio relupo's peak
	// RSS over PyTorch's (0 without both sides).
	Speedup  float64 `json:"speedup,omitempty"`
	RSSRatio float64 `json:"rss_ratio,omitempty"`
	// EstimateError is relupo's estimate over its measured peak, less 1.
	EstimateError float64 `json:"estimate_error,omitempty"`
	// EpochHours projects relupo's median step onto EpochPairs pairs.
	EpochHours float64 `json:"epoch_hours,omitempty"`
}

// CoreTypeCandidates are the OpenBLAS core types "auto" times ("" is
// OpenBLAS's own choice).
var CoreTypeCandidates = []string{"", "SkylakeX", "Cooperlake", "Haswell", "Zen"}

// SideBySide runs every row's relupo and PyTorch sides one after the
// other, Rounds times, and returns a row per round and row. A side that
// fails (out of memory, say) is recorded with its error and the run goes
// on; only a cancelled context or a configuration error stops it.
func SideBySide(ctx context.Context, c SideBySideConfig) ([]SideBySideRow, error) {
	if len(c.Rows) == 0 {
		return nil, errors.New("bench: no rows to run")
	}
	if len(c.Relupo) == 0 {
		return nil, errors.New("bench: no relupo command to run")
	}
	if c.Steps < 1 || c.Pairs < 1 || c.Seq < 0 || c.Seq == 1 || c.R < 1 || !(c.Alpha > 0) || c.Seconds < 0 {
		return nil, errors.New("bench: steps, pairs and the LoRA rank must be ≥ 1, seq ≥ 2 (or 0: the preset's), alpha > 0 and seconds ≥ 0")
	}
	log := c.Log
	if log == nil {
		log = io.Discard
	}
	rounds := max(c.Rounds, 1)
	coreType := c.CoreType
	if !c.NoPyTorch {
		if _, err := os.Stat(c.Script); err != nil {
			return nil, fmt.Errorf("bench: the PyTorch baseline script: %w (run from the repository root, or pass its path)", err)
		}
		if coreType == "auto" {
			var err error
			if coreType, err = FastestCoreType(ctx, c.Python, c.CoreTypeScript, c.Threads, log); err != nil {
				return nil, err
			}
		}
	}
	fmt.Fprintf(log, "CPU: %s, %d cores\n", CPUName(), runtime.NumCPU())
	var out []SideBySideRow
	for round := 1; round <= rounds; round++ {
		for _, r := range c.Rows {
			res := SideBySideRow{Row: r.String(), Round: round}
			fmt.Fprintf(log, "round %d, %s: relupo\n", round, r)
			rel, err := runJSON(ctx, c.Relupo[0], append(slices.Clone(c.Relupo[1:]), relupoArgs(c, r)...), nil, log)
			if err != nil {
				if ctx.Err() != nil {
					return out, ctx.Err()
				}
				res.RelupoError = err.Error()
			} else {
				res.Relupo = rel
			}
			if !c.NoPyTorch {
				fmt.Fprintf(log, "round %d, %s: pytorch (OPENBLAS_CORETYPE %s)\n", round, r, coreTypeName(coreType))
				pt, err := runJSON(ctx, c.Python, append([]string{c.Script}, pytorchArgs(c, r)...), TorchEnv(c.Threads, coreType), log)
				if err != nil {
					if ctx.Err() != nil {
						return out, ctx.Err()
					}
					res.PyTorchError = err.Error()
				} else {
					res.PyTorch = pt
				}
			}
			res.derive(c.EpochPairs, c.Pairs)
			out = append(out, res)
		}
	}
	return out, nil
}

// derive fills the row's ratios from its sides.
func (r *SideBySideRow) derive(epochPairs, pairs int) {
	if rel := r.Relupo; rel != nil {
		if rel.EstimateGB > 0 && rel.PeakRSSGB > 0 {
			r.EstimateError = rel.EstimateGB/rel.PeakRSSGB - 1
		}
		if epochPairs > 0 && pairs > 0 && rel.StepSMedian > 0 {
			r.EpochHours = float64(epochPairs) / float64(pairs) * rel.StepSMedian / 3600
		}
		if pt := r.PyTorch; pt != nil && pt.TokensPerS > 0 && pt.PeakRSSGB > 0 {
			r.Speedup = rel.TokensPerS / pt.TokensPerS
			r.RSSRatio = rel.PeakRSSGB / pt.PeakRSSGB
		}
	}
}

// relupoArgs are the flags of relupo's run of row r.
func relupoArgs(c SideBySideConfig, r LoRARow) []string {
	a := []string{"bench", "--json", "--threads", strconv.Itoa(c.Threads)}
	a = append(a, commonArgs(c)...)
	if r.LoRA {
		a = append(a, "--use-peft", "--base-dtype", r.BaseDType(), "--lora-r", strconv.Itoa(c.R),
			"--lora-alpha", strconv.FormatFloat(c.Alpha, 'g', -1, 64))
	} else {
		a = append(a, "--use-peft=false") // the full fine-tuning row
	}
	if r.Checkpointing {
		a = append(a, "--gradient-checkpointing")
	}
	return a
}

// pytorchArgs are bench/lora_bench.py's arguments for row r.
func pytorchArgs(c SideBySideConfig, r LoRARow) []string {
	a := commonArgs(c)
	if r.LoRA {
		a = append(a, "--mode", "lora", "--base-dtype", r.BaseDType(), "--lora-r", strconv.Itoa(c.R),
			"--lora-alpha", strconv.FormatFloat(c.Alpha, 'g', -1, 64))
	} else {
		a = append(a, "--mode", "full")
	}
	if r.Checkpointing {
		a = append(a, "--checkpointing")
	}
	return append(a, "--threads", strconv.Itoa(threadsOr(c.Threads)))
}

// commonArgs are the flags both sides spell alike.
func commonArgs(c SideBySideConfig) []string {
	var a []string
	if c.Shape != "" {
		a = append(a, "--shape", c.Shape)
	} else {
		a = append(a, "--preset", c.Preset)
	}
	if c.Seq > 0 {
		a = append(a, "--seq", strconv.Itoa(c.Seq))
	}
	a = append(a, "--pairs", strconv.Itoa(c.Pairs), "--steps", strconv.Itoa(c.Steps))
	if c.Seconds > 0 {
		a = append(a, "--seconds", strconv.FormatFloat(c.Seconds, 'g', -1, 64))
	}
	return a
}

func threadsOr(n int) int {
	if n > 0 {
		return n
	}
	return runtime.NumCPU()
}

func coreTypeName(c string) string {
	if c == "" {
		return "OpenBLAS's own choice"
	}
	return c
}

// TorchEnv is the environment of a PyTorch baseline run: this process's,
// less any OpenBLAS core type or cache size it sets, with the thread
// settings every baseline in BENCHMARKS.md runs under (threads, 0 for
// every core) and the given core type ("" for OpenBLAS's own choice).
func TorchEnv(threads int, coreType string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OMP_WAIT_POLICY", "OPENBLAS_THREAD_TIMEOUT", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS":
			continue
		}
		env = append(env, kv)
	}
	n := strconv.Itoa(threadsOr(threads))
	env = append(env, "OMP_WAIT_POLICY=PASSIVE", "OPENBLAS_THREAD_TIMEOUT=4", "OMP_NUM_THREADS="+n, "OPENBLAS_NUM_THREADS="+n)
	if coreType != "" {
		env = append(env, "OPENBLAS_CORETYPE="+coreType)
	}
	return env
}

// FastestCoreType runs script (bench/openblas_coretype.py, which times
// PyTorch's float32 products) with python under every one of
// CoreTypeCandidates, twice (a busy machine slows single runs), says on log
// what each reached and returns the fastest ("" for OpenBLAS's own choice).
func FastestCoreType(ctx context.Context, python, script string, threads int, log io.Writer) (string, error) {
	best, bestG := "", -1.0
	var seen []string
	for pass := 0; pass < 2; pass++ {
		for _, ct := range CoreTypeCandidates {
			var r struct {
				CoreType string  `json:"coretype"`
				GFlops   float64 `json:"gflops"`
			}
			n := strconv.Itoa(threadsOr(threads))
			if err := runJSONInto(ctx, python, []string{script, n, "3"}, TorchEnv(threads, ct), io.Discard, &r); err != nil {
				if ctx.Err() != nil {
					return "", ctx.Err()
				}
				fmt.Fprintf(log, "OpenBLAS core type %s: %v\n", coreTypeName(ct), err)
				continue
			}
			seen = append(seen, fmt.Sprintf("%s (%s) %.0f", coreTypeName(ct), r.CoreType, r.GFlops))
			if r.GFlops > bestG {
				best, bestG = ct, r.GFlops
			}
		}
	}
	if bestG < 0 {
		return "", fmt.Errorf("bench: %s could not run %s under any OpenBLAS core type (is torch installed?)", python, script)
	}
	fmt.Fprintf(log, "PyTorch's OpenBLAS core type: %s, the fastest float32 products (GFLOP/s, two 3 s runs each: %s)\n",
		coreTypeName(best), strings.Join(seen, ", "))
	return best, nil
}

// runJSON runs a benchmark process and decodes the JSON object on the last
// line of its standard output.
func runJSON(ctx context.Context, prog string, args, env []string, log io.Writer) (*LoRAResult, error) {
	var r LoRAResult
	if err := runJSONInto(ctx, prog, args, env, log, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// runJSONInto runs prog with args (env nil: this process's environment),
// copies its standard error to log and decodes the last line of its
// standard output into v. A failed run's error names the command, how it
// ended (a SIGKILL is most often the kernel's out-of-memory killer) and the
// last lines it wrote to standard error.
func runJSONInto(ctx context.Context, prog string, args, env []string, log io.Writer, v any) error {
	cmd := exec.CommandContext(ctx, prog, args...)
	cmd.Env = env
	var stdout bytes.Buffer
	tail := &tailWriter{n: 5}
	cmd.Stdout, cmd.Stderr = &stdout, io.MultiWriter(log, tail)
	name := prog + " " + strings.Join(args, " ")
	if err := cmd.Run(); err != nil {
		how := err.Error()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL {
				how = "killed by SIGKILL (most likely the kernel's out-of-memory killer)"
			}
		}
		if t := tail.String(); t != "" {
			how += "; it wrote: " + t
		}
		return fmt.Errorf("%s: %s", name, how)
	}
	out := bytes.TrimSpace(stdout.Bytes())
	last := out[bytes.LastIndexByte(out, '\n')+1:]
	if err := json.Unmarshal(last, v); err != nil {
		return fmt.Errorf("%s: its last line of output is not a JSON result (%v): %q", name, err, last)
	}
	return nil
}

// tailWriter keeps the last n lines written to it.
type tailWriter struct {
	n     int
	lines []string
	part  []byte
}

func (t *tailWriter) Write(b []byte) (int, error) {
	t.part = append(t.part, b...)
	for {
		i := bytes.IndexByte(t.part, '\n')
		if i < 0 {
			break
		}
		t.lines = append(t.lines, string(t.part[:i]))
		if len(t.lines) > t.n {
			t.lines = t.lines[1:]
		}
		t.part = t.part[i+1:]
	}
	return len(b), nil
}

// String joins the kept lines (and an unfinished last one) with " | ".
func (t *tailWriter) String() string {
	l := t.lines
	if len(t.part) > 0 {
		l = append(slices.Clone(l), string(t.part))
	}
	return strings.Join(l, " | ")
}

// CPUName is the model name /proc/cpuinfo gives the first CPU ("" where
// it cannot be read).
func CPUName() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// WriteSideBySide writes the rows as a Markdown table, as BENCHMARKS.md
// records them, then a line for every side that failed; epochPairs is the
// data set the last column's hours are projected for
// (SideBySideConfig.EpochPairs).
func WriteSideBySide(w io.Writer, preset string, epochPairs int, rows []SideBySideRow) error {
	var b strings.Builder
	fmt.Fprintf(&b, "| preset, row, round | relupo tokens/s | PyTorch tokens/s | ratio | relupo peak RSS GB | PyTorch peak RSS GB | relupo estimate GB (vs peak) | relupo s/step | hours for %d pairs |\n", epochPairs)
	b.WriteString("|---|---|---|---|---|---|---|---|---|\n")
	cell := func(ok bool, f string, v ...any) string {
		if !ok {
			return "–"
		}
		return fmt.Sprintf(f, v...)
	}
	var none LoRAResult // the figures of a side that has none
	for _, r := range rows {
		rel, pt := r.Relupo, r.PyTorch
		if rel == nil {
			rel = &none
		}
		if pt == nil {
			pt = &none
		}
		fmt.Fprintf(&b, "| %s %s, %d | %s | %s | %s | %s | %s | %s | %s | %s |\n", preset, r.Row, r.Round,
			cell(r.Relupo != nil, "%.1f", rel.TokensPerS), cell(r.PyTorch != nil, "%.1f", pt.TokensPerS),
			cell(r.Speedup > 0, "%.2f×", r.Speedup),
			cell(r.Relupo != nil, "%.2f", rel.PeakRSSGB), cell(r.PyTorch != nil, "%.2f", pt.PeakRSSGB),
			cell(rel.EstimateGB > 0, "%.2f (%+.1f%%)", rel.EstimateGB, 100*r.EstimateError),
			cell(r.Relupo != nil, "%.2f", rel.StepSMedian), cell(r.EpochHours > 0, "%.3g", r.EpochHours))
	}
	for _, r := range rows {
		if r.RelupoError != "" {
			fmt.Fprintf(&b, "\n%s, round %d, relupo failed: %s\n", r.Row, r.Round, r.RelupoError)
		}
		if r.PyTorchError != "" {
			fmt.Fprintf(&b, "\n%s, round %d, PyTorch failed: %s\n", r.Row, r.Round, r.PyTorchError)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// LoRAStepConfig sets up relupo's side of one row (see [LoRAStep]).
type LoRAStepConfig struct {
	// Name is what the result calls the model (a preset's name).
	Name  string
	Model model.Config
	Row   LoRARow
	// R and Alpha are the LoRA rank and α (every linear layer, no dropout).
	R     int
	Alpha float64
	// Seq is the tokens of each of the 2·Pairs sequences; the first
	// quarter is prompt.
	Seq, Pairs int
	// Steps are timed after one warm-up step; with Seconds > 0 steps are
	// timed until Seconds after the warm-up began (at least one, at most
	// MaxSteps).
	Steps   int
	Seconds float64
	// Compute sets the threads and the products' precision; the row sets
	// its Checkpoint.
	Compute train.Compute
	// Log receives the per-step lines; nil discards them.
	Log io.Writer
}

// LoRAStep builds a randomly initialized model of c.Model as the row asks
// (float32 weights for full fine-tuning; for LoRA a frozen base in bf16 or
// float32 and fresh adapters on every linear layer) and times training
// steps through the trainer's own Engine.Step: forward, RePO loss (every
// pair active), backward and AdamW over what the row trains, one pair =
// 2 sequences of Seq tokens each (the prompt is not shared, as in
// bench/lora_bench.py).
func LoRAStep(ctx context.Context, c LoRAStepConfig) (LoRAResult, error) {
	if c.Steps < 1 || c.Pairs < 1 || c.Seq < 2 || c.Seconds < 0 {
		return LoRAResult{}, errors.New("bench: steps and pairs must be ≥ 1, seq ≥ 2 and seconds ≥ 0")
	}
	log := c.Log
	if log == nil {
		log = io.Discard
	}
	t0 := time.Now()
	m, err := loraModel(c)
	if err != nil {
		return LoRAResult{}, err
	}
	comp := c.Compute
	comp.Checkpoint = c.Row.Checkpointing
	st := newStepperFor(m, comp)
	defer st.e.Close()
	base := "float32"
	if m.Params.Frozen {
		base = "bf16"
	}
	// The result reports what the model and workspace are, not what the
	// row asked for.
	res := LoRAResult{
		Side: "relupo", Preset: c.Name, Mode: "full", Checkpointing: st.e.Workspace.Checkpoint, BaseDType: base,
		SeqLen: c.Seq, Sequences: 2 * c.Pairs, TokensPerStep: 2 * c.Pairs * c.Seq, ParamsBase: c.Model.NumParams(),
		ParamsTrainable: c.Model.NumParams(), RSSModelGB: RSSGB(), Threads: st.e.Workspace.Pool.Workers(),
		Kernels: kernels.Describe(), Go: runtime.Version(),
	}
	if m.LoRA != nil {
		res.Mode, res.LoRAR, res.ParamsTrainable = "lora", c.R, int64(len(m.LoRA.Mem))
	}
	fmt.Fprintf(log, "model built in %.1fs: %d trainable, %d base parameters, RSS %.2f GB\n",
		time.Since(t0).Seconds(), res.ParamsTrainable, res.ParamsBase, res.RSSModelGB)
	res.EstimateGB = float64(loraEstimate(c)) / 1e9

	exs := randomPairs(c.Model, c.Pairs, c.Seq)
	times, err := timeSteps(ctx, c.Steps, c.Seconds, log, func() error {
		_, err := st.step(exs, false)
		return err
	})
	if err != nil {
		return LoRAResult{}, err
	}
	res.StepsMeasured, res.StepSMin, res.StepSMedian = len(times), times[0], times[len(times)/2]
	res.TokensPerS = float64(res.TokensPerStep) / res.StepSMedian
	res.PeakRSSGB = PeakRSSGB()
	return res, nil
}

// timeSteps runs one warm-up step, then steps times, or with seconds > 0
// steps until seconds after the warm-up began (at least one, at most
// MaxSteps), as Train does, and returns their times in seconds, sorted.
func timeSteps(ctx context.Context, steps int, seconds float64, log io.Writer, step func() error) ([]float64, error) {
	t0 := time.Now()
	if err := step(); err != nil {
		return nil, err
	}
	fmt.Fprintf(log, "warm-up step %.2fs\n", time.Since(t0).Seconds())
	var times []float64
	for done := 0; ; done++ {
		if seconds > 0 {
			if done > 0 && (time.Since(t0).Seconds() >= seconds || done >= MaxSteps) {
				break
			}
		} else if done >= steps {
			break
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		t := time.Now()
		if err := step(); err != nil {
			return nil, err
		}
		times = append(times, time.Since(t).Seconds())
		fmt.Fprintf(log, "step %d: %.3fs\n", done+1, times[done])
	}
	slices.Sort(times)
	return times, nil
}

// loraConfig is the benchmark's adapter: rank R, α Alpha, every linear
// layer (all-linear), no dropout.
func loraConfig(c LoRAStepConfig) model.LoRAConfig {
	return model.LoRAConfig{R: c.R, Alpha: c.Alpha, Targets: slices.Clone(model.LoRAModules)}
}

// loraModel builds the row's model with random weights (float32 ones
// N(0, 0.02²) as Train's; a bf16 base from model.NewFrozenBF16, uniform of
// the same spread; norms 1) and, for LoRA, a fresh adapter (A as PEFT
// draws it, B zero).
func loraModel(c LoRAStepConfig) (*model.Model, error) {
	if !c.Row.LoRA {
		m := model.New(c.Model)
		m.Params.Init(0, 0.02)
		return m, nil
	}
	var m *model.Model
	if c.Row.BaseF32 {
		m = model.New(c.Model)
		m.Params.Init(0, 0.02)
	} else {
		m = model.NewFrozenBF16(c.Model, 0) // 2 bytes a weight, never a float32 copy
	}
	a, err := model.NewAdapter(c.Model, loraConfig(c))
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	a.Init(0)
	m.LoRA = a
	return m, nil
}

// loraEstimate is relupo's memory estimate of the row's step, in bytes:
// the memory pre-flight's, for the row's LoRA, checkpointing and frozen
// dtype.
func loraEstimate(c LoRAStepConfig) int64 {
	o := model.MemoryOptions{Training: true, Checkpoint: c.Row.Checkpointing}
	if c.Row.LoRA {
		lc := loraConfig(c)
		o.LoRA, o.FrozenBF16 = &lc, !c.Row.BaseF32
	}
	return c.Model.MemoryEstimateFor(2*c.Pairs*c.Seq, o)
}

// newStepperFor runs training steps of m through the trainer's Engine.
func newStepperFor(m *model.Model, c train.Compute) *stepper {
	return &stepper{e: train.NewEngine(m, c), train: true}
}

// randomPairs draws pairs of random ids whose sequences have seq tokens,
// the first quarter prompt.
func randomPairs(cfg model.Config, pairs, seq int) []data.Example {
	r := rand.New(rand.NewPCG(0, 0))
	exs := make([]data.Example, pairs)
	for i := range exs {
		exs[i] = data.Example{Prompt: randomIDs(r, cfg, seq/4), Chosen: randomIDs(r, cfg, seq-seq/4), Rejected: randomIDs(r, cfg, seq-seq/4)}
	}
	return exs
}
