package train

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/relupo/relupo/kernels"
	"github.com/relupo/relupo/model"
	"github.com/relupo/relupo/peft"
	"github.com/relupo/relupo/safetensors"
)

// The LoRA tests read testdata/lora, written by
// scripts/goldens/gen_lora_train_goldens.py: a PyTorch reference with LoRA
// written out (PEFT's semantics, no peft library), three HF Trainer steps
// per setting, log-prob sums with and without the adapter, and merged
// weights.
var loraDir = filepath.Join("testdata", "lora")

type loraGolden struct {
	Steps            int
	R                int
	LogpsInitAdapter struct{ Chosen, Rejected, ChosenTokens, RejectedTokens []float64 } `json:"logps_init_adapter"`
	LogpsAdaptersOff struct{ Chosen, Rejected []float64 }                               `json:"logps_adapters_off"`
	Settings         map[string]struct {
		Options map[string]any
		Steps   []struct {
			Loss         float64 `json:"loss"`
			GradNorm     float64 `json:"grad_norm"`
			LearningRate float64 `json:"learning_rate"`
			Clipped      bool    `json:"clipped"`
		}
	}
}

func readLoRAGolden(t *testing.T) loraGolden {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(loraDir, "expected.json"))
	if err != nil {
		t.Fatal(err)
	}
	var g loraGolden
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatal(err)
	}
	return g
}

// loraOptions are the options of a golden setting.
func loraOptions(t *testing.T, s map[string]any, steps int) Options {
	o := DefaultOptions()
	o.Model = filepath.Join(loraDir, "base")
	o.Data = []string{filepath.Join(loraDir, "pairs.jsonl")}
	o.OutputDir = t.TempDir()
	o.MaxSteps, o.LoggingSteps, o.Threads = steps, 1, 2
	o.UsePEFT = true
	o.LoraInit = filepath.Join(loraDir, s["lora_init"].(string))
	o.LossType = s["loss_type"].(string)
	o.Beta = s["beta"].(float64)
	if g, ok := s["gamma_beta_ratio"].(float64); ok {
		o.GammaBetaRatio = g
	}
	o.LearningRate = s["learning_rate"].(float64)
	o.WeightDecay = s["weight_decay"].(float64)
	o.MaxGradNorm = s["max_grad_norm"].(float64)
	o.PerDeviceTrainBatchSize = int(s["per_device_train_batch_size"].(float64))
	o.GradientAccumulationSteps = int(s["gradient_accumulation_steps"].(float64))
	o.LRSchedulerType = s["lr_scheduler_type"].(string)
	o.WarmupSteps, o.WarmupRatio = int(s["warmup_steps"].(float64)), 0
	return o
}

func readMetrics(t *testing.T, dir string) []map[string]float64 {
	t.Helper()
	f, err := os.Open(filepath.Join(dir, "metrics.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var rows []map[string]float64
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var r map[string]float64
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatal(err)
		}
		if _, ok := r["loss"]; ok {
			rows = append(rows, r)
		}
	}
	return rows
}

// TestLoRAStepsAgainstPyTorch trains the adapter for three AdamW steps in
// each golden setting (RePO with accumulation, weight decay and clipping;
// the same with rsLoRA; DPO whose reference is the base with the adapters
// off, and again with that base given as --ref-model) and compares the
// adapter, the losses and the gradient norms with PyTorch's.
//
// Tolerances: the adapter's weights to 5e-6 absolute (they are O(0.1-1),
// and three AdamW steps of lr ≤ 2e-2 turn float32 differences in the
// gradients, ~1e-6 relative, into ~1e-7 of the weights, and they agree to
// 1e-6; elements whose gradient is near zero, where AdamW's m/√v amplifies
// rounding, get the rest), the loss and the gradient norm to 1e-5 relative (float32 sums in
// another order).
func TestLoRAStepsAgainstPyTorch(t *testing.T) {
	g := readLoRAGolden(t)
	cases := []struct{ name, setting, refModel string }{
		{"repo", "repo", ""},
		{"repo-rslora", "repo-rslora", ""},
		{"dpo adapters-off reference", "dpo", ""},
		{"dpo ref-model", "dpo", filepath.Join(loraDir, "base")},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := g.Settings[tc.setting]
			o := loraOptions(t, s.Options, g.Steps)
			o.RefModel = tc.refModel
			tr, err := Setup(context.Background(), o, func(msg string) { t.Log(msg) })
			if err != nil {
				t.Fatal(err)
			}
			if _, err := tr.Run(context.Background()); err != nil {
				t.Fatal(err)
			}
			got, _, err := peft.Load(o.OutputDir, tr.Policy.Config)
			if err != nil {
				t.Fatal(err)
			}
			f, err := safetensors.Open(filepath.Join(loraDir, "after-"+tc.setting+".safetensors"))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			worst := 0.0
			for _, tn := range got.Tensors() {
				want, err := f.Float32(tn.Name)
				if err != nil {
					t.Fatal(err)
				}
				for i, w := range want {
					worst = math.Max(worst, math.Abs(float64(tn.Data[i]-w)))
				}
			}
			t.Logf("max |Δw| = %.3g", worst)
			if worst > 5e-6 {
				t.Errorf("adapter after %d steps differs from PyTorch's by up to %.3g", g.Steps, worst)
			}
			rows := readMetrics(t, o.OutputDir)
			if len(rows) != len(s.Steps) {
				t.Fatalf("%d logged steps, want %d", len(rows), len(s.Steps))
			}
			for i, want := range s.Steps {
				for _, m := range []struct {
					name      string
					got, want float64
				}{{"loss", rows[i]["loss"], want.Loss}, {"grad_norm", rows[i]["grad_norm"], want.GradNorm}} {
					if math.Abs(m.got-m.want) > 1e-5*math.Abs(m.want) {
						t.Errorf("step %d %s = %.8g, PyTorch %.8g", i+1, m.name, m.got, m.want)
					}
				}
			}
		})
	}
}

// TestLoRALogps scores the golden pairs with base + adapter (relupo logps
// --adapter) and with the base alone, against PyTorch. Tolerance 1e-5
// relative to the sums (a few tens of float32 log-softmax terms).
func TestLoRALogps(t *testing.T) {
	g := readLoRAGolden(t)
	for _, tc := range []struct {
		name     string
		adapter  string
		chosen   []float64
		rejected []float64
	}{
		{"with adapter", filepath.Join(loraDir, "init"), g.LogpsInitAdapter.Chosen, g.LogpsInitAdapter.Rejected},
		{"base alone", "", g.LogpsAdaptersOff.Chosen, g.LogpsAdaptersOff.Rejected},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := DefaultOptions()
			o.Model, o.Data, o.Adapter, o.Threads = filepath.Join(loraDir, "base"), []string{filepath.Join(loraDir, "pairs.jsonl")}, tc.adapter, 2
			f, err := Logps(context.Background(), o, nil)
			if err != nil {
				t.Fatal(err)
			}
			if f.Provenance.Adapter != tc.adapter {
				t.Errorf("provenance adapter %q", f.Provenance.Adapter)
			}
			for i, l := range f.Lines {
				if math.Abs(l.ChosenLogps-tc.chosen[i]) > 1e-5*math.Abs(tc.chosen[i]) || math.Abs(l.RejectedLogps-tc.rejected[i]) > 1e-5*math.Abs(tc.rejected[i]) {
					t.Errorf("pair %d: %.7g, %.7g; PyTorch %.7g, %.7g", i, l.ChosenLogps, l.RejectedLogps, tc.chosen[i], tc.rejected[i])
				}
			}
		})
	}
	if math.Abs(g.LogpsInitAdapter.Chosen[0]-g.LogpsAdaptersOff.Chosen[0]) < 1e-3 {
		t.Fatal("the golden adapter barely changes the log-probs: the test could not tell them apart")
	}
}

// TestMergeAgainstPyTorch merges the golden adapter into the float32 and
// the bfloat16 base (relupo merge) and compares with PyTorch's W + s·B·A:
// float32 to 1e-6 relative (a sum of r = 4 products), bfloat16 exactly
// (the float32 sum rounded once) except where the float32 sums differ in
// their last bit across a rounding boundary (one bfloat16 ulp, counted).
func TestMergeAgainstPyTorch(t *testing.T) {
	for _, tc := range []struct{ base, want string }{{"base", "merged.safetensors"}, {"base-bf16", "merged-bf16.safetensors"}} {
		t.Run(tc.base, func(t *testing.T) {
			out := t.TempDir()
			err := Merge(MergeOptions{Model: filepath.Join(loraDir, tc.base), Adapter: filepath.Join(loraDir, "init"), OutputDir: out, SaveDType: "auto", Threads: 2})
			if err != nil {
				t.Fatal(err)
			}
			got, err := safetensors.Open(filepath.Join(out, "model.safetensors"))
			if err != nil {
				t.Fatal(err)
			}
			defer got.Close()
			want, err := safetensors.Open(filepath.Join(loraDir, tc.want))
			if err != nil {
				t.Fatal(err)
			}
			defer want.Close()
			ulps, changed := 0, 0
			for _, name := range want.Names() {
				gi, ok := got.Info(name)
				wi, _ := want.Info(name)
				if !ok || gi.DType != wi.DType {
					t.Fatalf("%s: dtype %s (present %v), want %s", name, gi.DType, ok, wi.DType)
				}
				gv, _ := got.Float32(name)
				wv, _ := want.Float32(name)
				for i := range wv {
					d := math.Abs(float64(gv[i] - wv[i]))
					switch {
					case wi.DType == safetensors.F32 && d > 1e-6*math.Max(1, math.Abs(float64(wv[i]))):
						t.Fatalf("%s[%d] = %v, want %v", name, i, gv[i], wv[i])
					case wi.DType == safetensors.BF16 && d > 0:
						if d > math.Abs(float64(wv[i]))/128 { // more than one bfloat16 ulp
							t.Fatalf("%s[%d] = %v, want %v", name, i, gv[i], wv[i])
						}
						ulps++
					}
				}
				if strings.Contains(name, "_proj") {
					changed++
				}
			}
			if ulps > 3 {
				t.Errorf("%d bfloat16 weights one ulp off: more than float32 ties explain", ulps)
			}
			if changed != 14 {
				t.Errorf("%d projection weights compared, want 14", changed)
			}
			b, err := os.ReadFile(filepath.Join(out, "config.json"))
			if err != nil || !strings.Contains(string(b), map[string]string{"base": `"float32"`, "base-bf16": `"bfloat16"`}[tc.base]) {
				t.Errorf("config.json does not keep the base's dtype: %s %v", b, err)
			}
		})
	}
}

// TestLoRAResumeExact stops a LoRA run with dropout (a fresh adapter, so
// the initialization is exercised too) after its second step, resumes it,
// and requires the adapter and every logged loss to equal, bit for bit,
// those of the run that was not interrupted. The checkpoint holds the
// adapter and its optimizer state only.
func TestLoRAResumeExact(t *testing.T) {
	base := func(t *testing.T, out string) Options {
		o := DefaultOptions()
		o.Model, o.Data, o.OutputDir = filepath.Join(loraDir, "base"), []string{filepath.Join(loraDir, "pairs.jsonl")}, out
		o.UsePEFT, o.LoraR, o.LoraDropout, o.LoraTargetModules = true, 2, 0.25, []string{"all-linear"}
		o.MaxSteps, o.LoggingSteps, o.SaveSteps, o.Threads = 4, 1, 2, 2
		o.PerDeviceTrainBatchSize, o.GradientAccumulationSteps = 1, 2
		o.LearningRate, o.WeightDecay, o.GammaBetaRatio = 2e-2, 0.1, 6
		return o
	}
	run := func(t *testing.T, o Options, stopAfter int) error {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		tr, err := Setup(ctx, o, nil)
		if err != nil {
			t.Fatal(err)
		}
		if stopAfter > 0 {
			tr.Progress = cancelAt{n: stopAfter, cancel: cancel}
		}
		_, err = tr.Run(ctx)
		return err
	}
	whole := t.TempDir()
	if err := run(t, base(t, whole), 0); err != nil {
		t.Fatal(err)
	}
	split := t.TempDir()
	if err := run(t, base(t, split), 2); !errors.Is(err, ErrInterrupted) {
		t.Fatalf("interrupted run: %v", err)
	}
	ck := checkpointDir(split, 2)
	for _, name := range []string{peft.ConfigFile, peft.WeightsFile, "optimizer.safetensors", stateFile} {
		if _, err := os.Stat(filepath.Join(ck, name)); err != nil {
			t.Errorf("checkpoint: %v", err)
		}
	}
	if _, err := os.Stat(filepath.Join(ck, "model.safetensors")); err == nil {
		t.Error("a LoRA checkpoint holds the base model's weights")
	}
	f, err := safetensors.Open(filepath.Join(ck, "optimizer.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range f.Names() {
		if !strings.Contains(n, ".lora_A.weight") && !strings.Contains(n, ".lora_B.weight") {
			t.Errorf("optimizer state for %s, which LoRA does not train", n)
		}
	}
	f.Close()
	o := base(t, split)
	o.ResumeFrom = "latest"
	if err := run(t, o, 0); err != nil {
		t.Fatal(err)
	}
	mc, err := model.LoadConfig(filepath.Join(loraDir, "base"))
	if err != nil {
		t.Fatal(err)
	}
	a, _, err := peft.Load(whole, mc)
	if err != nil {
		t.Fatal(err)
	}
	b, _, err := peft.Load(split, mc)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(a.Mem, b.Mem) {
		t.Error("the resumed adapter differs from the uninterrupted run's")
	}
	ra, rb := readMetrics(t, whole), readMetrics(t, split)
	if len(ra) != 4 || len(rb) != 4 {
		t.Fatalf("%d and %d logged steps, want 4", len(ra), len(rb))
	}
	for i := range ra {
		if ra[i]["loss"] != rb[i]["loss"] || ra[i]["grad_norm"] != rb[i]["grad_norm"] {
			t.Errorf("step %d: loss %v / %v, grad norm %v / %v", i+1, ra[i]["loss"], rb[i]["loss"], ra[i]["grad_norm"], rb[i]["grad_norm"])
		}
	}
	// Dropout acts: the same run without it ends elsewhere.
	o = base(t, t.TempDir())
	o.LoraDropout = 0
	if err := run(t, o, 0); err != nil {
		t.Fatal(err)
	}
	c, _, err := peft.Load(o.OutputDir, mc)
	if err != nil {
		t.Fatal(err)
	}
	if slices.Equal(a.Mem, c.Mem) {
		t.Error("lora_dropout 0.25 and 0 train the same adapter")
	}
}

// TestGradientCheckpointingIdentical trains two steps with and without
// gradient checkpointing, full fine-tuning and LoRA with dropout, and
// requires bit-identical weights.
func TestGradientCheckpointingIdentical(t *testing.T) {
	for _, lora := range []bool{false, true} {
		var results [][]float32
		for _, ckpt := range []bool{false, true} {
			o := DefaultOptions()
			o.Model, o.Data, o.OutputDir = filepath.Join(loraDir, "base"), []string{filepath.Join(loraDir, "pairs.jsonl")}, t.TempDir()
			o.MaxSteps, o.Threads, o.LearningRate, o.GammaBetaRatio = 2, 2, 1e-2, 6
			o.GradientCheckpointing = ckpt
			if lora {
				o.UsePEFT, o.LoraDropout, o.LoraTargetModules = true, 0.1, []string{"all-linear"}
			}
			tr, err := Setup(context.Background(), o, nil)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := tr.Run(context.Background()); err != nil {
				t.Fatal(err)
			}
			if tr.engine.Workspace.Checkpoint != ckpt {
				t.Fatalf("gradient_checkpointing %v: the workspace has Checkpoint %v", ckpt, tr.engine.Workspace.Checkpoint)
			}
			if lora {
				results = append(results, slices.Clone(tr.Policy.LoRA.Mem))
			} else {
				results = append(results, slices.Clone(tr.Policy.Params.Mem))
			}
		}
		if !slices.Equal(results[0], results[1]) {
			t.Errorf("lora %v: gradient checkpointing changes the trained weights", lora)
		}
	}
}

// TestMergeAdapterOutput checks the final folder of a LoRA run with
// merge_adapter: the adapter in PEFT's format, and beside it the merged
// model in the base's dtype, equal to the base with the saved adapter
// merged in.
func TestMergeAdapterOutput(t *testing.T) {
	o := DefaultOptions()
	o.Model, o.Data, o.OutputDir = filepath.Join(loraDir, "base-bf16"), []string{filepath.Join(loraDir, "pairs.jsonl")}, t.TempDir()
	o.MaxSteps, o.Threads, o.LearningRate, o.GammaBetaRatio = 2, 2, 1e-2, 6
	o.UsePEFT, o.MergeAdapter, o.LoraR = true, true, 4
	tr, err := Setup(context.Background(), o, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"config.json", "model.safetensors", peft.ConfigFile, peft.WeightsFile, "README.md"} {
		if _, err := os.Stat(filepath.Join(o.OutputDir, name)); err != nil {
			t.Error(err)
		}
	}
	card, _ := os.ReadFile(filepath.Join(o.OutputDir, "README.md"))
	if !strings.Contains(string(card), "library_name: peft") || !strings.Contains(string(card), "| lora_r | 4 |") {
		t.Errorf("model card:\n%s", card)
	}
	merged, dtype, err := model.Load(o.OutputDir)
	if err != nil {
		t.Fatal(err)
	}
	if dtype != safetensors.BF16 {
		t.Errorf("merged model saved as %s, the base is BF16", dtype)
	}
	want, _, err := model.Load(o.Model)
	if err != nil {
		t.Fatal(err)
	}
	a, pc, err := peft.Load(o.OutputDir, want.Config)
	if err != nil {
		t.Fatal(err)
	}
	if pc.BaseModel != o.Model || a.Config.R != 4 || !slices.Equal(a.Config.Targets, DefaultLoRATargets) {
		t.Errorf("adapter config: base %q, %+v", pc.BaseModel, a.Config)
	}
	if err := peft.Merge(want, a, nil); err != nil {
		t.Fatal(err)
	}
	diff := 0
	for i, w := range want.Params.Mem {
		if safetensors.F32ToBF16(w) != safetensors.F32ToBF16(merged.Params.Mem[i]) {
			diff++
		}
	}
	if diff > 3 {
		t.Errorf("%d merged weights differ from base + saved adapter", diff)
	}
	if slices.Equal(a.Mem[:0], a.Mem) || allZero(a.Layers[0].Q.B) {
		t.Error("training left lora_B at zero")
	}
}

func allZero(x []float32) bool {
	for _, v := range x {
		if v != 0 {
			return false
		}
	}
	return true
}

// TestLoRAOptionErrors checks that options that make no sense with (or
// without) use_peft are refused, each by name.
func TestLoRAOptionErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		set  func(o *Options)
		err  string
	}{
		{"lora_r without use_peft", func(o *Options) { o.LoraR = 8 }, "lora_r only apply to LoRA training"},
		{"base_dtype without use_peft", func(o *Options) { o.BaseDType = "bf16" }, "base_dtype only apply"},
		{"several without use_peft", func(o *Options) { o.LoraAlpha, o.MergeAdapter = 16, true }, "lora_alpha, merge_adapter only apply"},
		{"bad base_dtype", func(o *Options) { o.UsePEFT, o.BaseDType = true, "int8" }, `base_dtype "int8"`},
		{"bad target", func(o *Options) { o.UsePEFT, o.LoraTargetModules = true, []string{"q_proj", "c_attn"} }, `"c_attn"`},
		{"bad dropout", func(o *Options) { o.UsePEFT, o.LoraDropout = true, 1 }, "dropout"},
		{"lora_init with another r", func(o *Options) {
			o.UsePEFT, o.LoraInit, o.LoraR = true, filepath.Join(loraDir, "init"), 8
		}, "lora_r 8 (the adapter's r is 4)"},
		{"lora_init with other targets", func(o *Options) {
			o.UsePEFT, o.LoraInit, o.LoraTargetModules = true, filepath.Join(loraDir, "init"), []string{"q_proj"}
		}, "lora_target_modules q_proj"},
		{"lora_init not an adapter", func(o *Options) { o.UsePEFT, o.LoraInit = true, loraDir }, "not an adapter folder"},
		{"adapter in train", func(o *Options) { o.Adapter = filepath.Join(loraDir, "init") }, "lora_init"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := DefaultOptions()
			o.Model, o.Data, o.OutputDir = filepath.Join(loraDir, "base"), []string{filepath.Join(loraDir, "pairs.jsonl")}, t.TempDir()
			tc.set(&o)
			_, err := o.Config()
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("error %v, want one with %q", err, tc.err)
			}
		})
	}
	// A consistent lora_init takes the adapter's shape; lora_dropout may change.
	o := DefaultOptions()
	o.Model, o.Data, o.OutputDir = filepath.Join(loraDir, "base"), []string{filepath.Join(loraDir, "pairs.jsonl")}, t.TempDir()
	o.UsePEFT, o.LoraInit, o.LoraR, o.LoraDropout = true, filepath.Join(loraDir, "init-rslora"), 4, 0.1
	c, err := o.Config()
	if err != nil {
		t.Fatal(err)
	}
	if l := c.PEFT.LoRA; l.R != 4 || l.Alpha != 8 || !l.RSLoRA || l.Dropout != 0.1 || len(l.Targets) != 7 {
		t.Errorf("lora_init config %+v", l)
	}
	// The defaults are TRL's, with PEFT's Llama targets.
	o.LoraInit, o.LoraR, o.LoraDropout = "", 0, math.NaN()
	if c, err = o.Config(); err != nil {
		t.Fatal(err)
	}
	if l := c.PEFT.LoRA; l.R != 16 || l.Alpha != 32 || l.Dropout != 0.05 || l.RSLoRA || !slices.Equal(l.Targets, []string{"q_proj", "v_proj"}) {
		t.Errorf("default LoRA config %+v", l)
	}
}

// TestPreflightLoRA checks that the memory pre-flight counts LoRA,
// gradient checkpointing and the frozen base: the same data needs less
// with them, and the refusal says what to turn on.
func TestPreflightLoRA(t *testing.T) {
	need := func(o Options) (string, float64) {
		tr, err := Setup(context.Background(), o, nil)
		if err != nil {
			t.Fatal(err)
		}
		tr.unlockOutput()
		err = tr.preflight(1) // one byte available: always refused
		if err == nil {
			t.Fatal("pre-flight accepted a run with 1 byte available")
		}
		n, _, _ := tr.memoryNeed()
		return err.Error(), float64(n)
	}
	o := DefaultOptions()
	o.Model, o.Data = filepath.Join(loraDir, "base-bf16"), []string{filepath.Join(loraDir, "pairs.jsonl")}
	o.OutputDir = t.TempDir()
	full, fullGB := need(o)
	if !strings.Contains(full, "--use-peft") {
		t.Errorf("full fine-tuning refusal does not suggest LoRA: %s", full)
	}
	o.OutputDir, o.UsePEFT, o.GradientCheckpointing = t.TempDir(), true, true
	lora, loraGB := need(o)
	if strings.Contains(lora, "--use-peft") || strings.Contains(lora, "--gradient-checkpointing") {
		t.Errorf("LoRA run with checkpointing told to turn them on: %s", lora)
	}
	if !(loraGB > 0 && loraGB < fullGB) {
		t.Errorf("estimates: full fine-tuning %v bytes, LoRA + checkpointing on a bf16 base %v bytes", fullGB, loraGB)
	}
}

// A float16 checkpoint held as a bfloat16 frozen base gets a note in the
// float32 precision, where the rounding changes the numbers, and none in
// bf16 or for a bf16 or float32 checkpoint.
func TestFrozenBaseNote(t *testing.T) {
	for _, tc := range []struct {
		save safetensors.DType
		base string
		prec kernels.Precision
		note bool
	}{
		{safetensors.F16, "auto", kernels.F32, true},
		{safetensors.F16, "bf16", kernels.F32, true},
		{safetensors.F16, "auto", kernels.BF16, false},
		{safetensors.F16, "float32", kernels.F32, false},
		{safetensors.BF16, "auto", kernels.F32, false},
		{safetensors.F32, "bf16", kernels.F32, false},
	} {
		t.Run(fmt.Sprintf("%s/%s/%s", tc.save, tc.base, tc.prec), func(t *testing.T) {
			src, _, err := model.Load("../model/testdata/arch/llama-gqa-tied")
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			if err := src.Save(dir, tc.save, 0); err != nil {
				t.Fatal(err)
			}
			m, dtype, err := PEFTConfig{Enabled: true, BaseDType: tc.base, LoRA: model.LoRAConfig{R: 2, Alpha: 4, Targets: []string{"q_proj"}}}.LoadPolicy(dir, 1)
			if err != nil {
				t.Fatal(err)
			}
			if note := FrozenBaseNote(m, dtype, tc.prec); (note != "") != tc.note {
				t.Errorf("note %q, want one: %v", note, tc.note)
			}
		})
	}
}
