package model

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/relupo/relupo/kernels"
	"github.com/relupo/relupo/safetensors"
)

// loraExpected is testdata/lora/expected.json, written by
// scripts/goldens/gen_lora_goldens.py (see testdata/lora/README.md).
type loraExpected struct {
	Prompts  [][]int32 `json:"prompts"`
	Chosen   [][]int32 `json:"chosen"`
	Rejected [][]int32 `json:"rejected"`
	DSums    []float64 `json:"dsums"`
	Cases    []struct {
		Name        string    `json:"name"`
		Model       string    `json:"model"`
		R           int       `json:"r"`
		Alpha       float64   `json:"alpha"`
		RSLoRA      bool      `json:"rslora"`
		Dropout     float64   `json:"dropout"`
		DropoutSeed uint64    `json:"dropout_seed"`
		Targets     []string  `json:"targets"`
		BaseGrads   bool      `json:"base_grads"`
		LogpSums    []float64 `json:"logp_sums"`
		Counts      []int     `json:"counts"`
	} `json:"cases"`
}

func loadLoRAExpected(t *testing.T) loraExpected {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", "lora", "expected.json"))
	if err != nil {
		t.Fatal(err)
	}
	var exp loraExpected
	if err := json.Unmarshal(raw, &exp); err != nil {
		t.Fatalf("parse testdata/lora/expected.json: %v", err)
	}
	if len(exp.Cases) != 3 || len(exp.DSums) != 2*len(exp.Prompts) {
		t.Fatalf("testdata/lora/expected.json: %d cases, %d dsums for %d pairs", len(exp.Cases), len(exp.DSums), len(exp.Prompts))
	}
	return exp
}

func (e loraExpected) batch() *Batch {
	b := &Batch{}
	for i, p := range e.Prompts {
		b.Add(p, e.Chosen[i])
	}
	for i, p := range e.Prompts {
		b.Add(p, e.Rejected[i])
	}
	return b
}

// readTensors reads every tensor of a safetensors file as float32.
func readTensors(t *testing.T, path string) map[string][]float32 {
	t.Helper()
	f, err := safetensors.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string][]float32{}
	for _, name := range f.Names() {
		if out[name], err = f.Float32(name); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// fillAdapter copies the tensors of a PEFT adapter file into a.
func fillAdapter(t *testing.T, a *Adapter, path string) {
	t.Helper()
	ts := readTensors(t, path)
	if len(ts) != len(a.Tensors()) {
		t.Fatalf("%s holds %d tensors, the adapter %d", path, len(ts), len(a.Tensors()))
	}
	for _, tn := range a.Tensors() {
		v, ok := ts[tn.Name]
		if !ok || len(v) != len(tn.Data) {
			t.Fatalf("%s: tensor %s missing or of %d values (want %d)", path, tn.Name, len(v), len(tn.Data))
		}
		copy(tn.Data, v)
	}
}

// worstTensorErr returns the largest over tensors of max|got − want| /
// max|want|, naming the tensor.
func worstTensorErr(t *testing.T, got []Tensor, want map[string][]float32) (float64, string) {
	t.Helper()
	worst, at := 0.0, ""
	for _, tn := range got {
		w, ok := want[tn.Name]
		if !ok || len(w) != len(tn.Data) {
			t.Fatalf("%s: PyTorch gradient missing or of another size", tn.Name)
		}
		var scale, diff float64
		for i, x := range w {
			scale = math.Max(scale, math.Abs(float64(x)))
			diff = math.Max(diff, math.Abs(float64(tn.Data[i])-float64(x)))
		}
		if e := diff / math.Max(scale, 1e-30); e > worst || at == "" {
			worst, at = e, tn.Name
		}
	}
	return worst, at
}

// TestLoRAAgainstPyTorch checks LoRA log-prob sums and adapter gradients
// against the PyTorch LoRA of gen_lora_goldens.py: the golden Llama with
// adapters on every linear layer (and, through them, the base weights'
// gradients of Backward), on q_proj and v_proj with rsLoRA scaling, and a
// Qwen2-style model (q/k/v biases) with dropout 0.25, whose masks the
// script draws from relupo's stream. Serial and parallel, with and without
// gradient checkpointing.
//
// Tolerances as for the base model (travel_test.go): sums to 1e-5
// relative (floor 1), gradients to 1e-4 of each tensor's largest value.
// PyTorch's own float32 run is within 2e-7 (sums) and 3e-6 (gradients) of
// its float64 run (expected.json, f32_vs_f64), and relupo sums in another
// order; a wrong term (a dropped scale, a missing mask, a wrong transpose)
// moves whole entries by far more than 1e-4.
func TestLoRAAgainstPyTorch(t *testing.T) {
	exp := loadLoRAExpected(t)
	batch := exp.batch()
	for _, tc := range exp.Cases {
		dir := travelDir
		if tc.Model == "qwen2" {
			dir = filepath.Join("testdata", "lora", "qwen2")
		}
		m := mustLoad(t, dir)
		ad, err := NewAdapter(m.Config, LoRAConfig{R: tc.R, Alpha: tc.Alpha, Dropout: tc.Dropout, Targets: tc.Targets, RSLoRA: tc.RSLoRA})
		if err != nil {
			t.Fatal(err)
		}
		fillAdapter(t, ad, filepath.Join("testdata", "lora", tc.Name+".adapter.safetensors"))
		m.LoRA = ad
		want := readTensors(t, filepath.Join("testdata", "lora", tc.Name+".grads.safetensors"))
		for _, run := range []struct {
			name    string
			workers int
			ckpt    bool
		}{{"serial", 1, false}, {"parallel", 2, false}, {"checkpoint", 2, true}} {
			t.Run(tc.Name+"/"+run.name, func(t *testing.T) {
				ws := &Workspace{Pool: kernels.NewPool(run.workers), Checkpoint: run.ckpt, DropoutSeed: tc.DropoutSeed}
				defer ws.Pool.Close()
				sums, counts, err := m.Forward(ws, batch)
				if err != nil {
					t.Fatal(err)
				}
				for k, w := range tc.LogpSums {
					if counts[k] != tc.Counts[k] {
						t.Errorf("sequence %d: %d labels, PyTorch %d", k, counts[k], tc.Counts[k])
					}
					if e := relErr(sums[k], w, 1); e > 1e-5 {
						t.Errorf("sequence %d: log-prob sum %.8g, PyTorch %.8g (rel err %.2g)", k, sums[k], w, e)
					}
				}
				g, _ := NewAdapter(m.Config, ad.Config)
				if err := m.BackwardAdapter(ws, batch, exp.DSums, g); err != nil {
					t.Fatal(err)
				}
				if e, at := worstTensorErr(t, g.Tensors(), want); e > 1e-4 {
					t.Errorf("adapter gradient %s off by %.2g of its largest PyTorch value", at, e)
				}
				if !tc.BaseGrads {
					return
				}
				// Backward: the base's gradients through the adapters
				if _, _, err := m.Forward(ws, batch); err != nil {
					t.Fatal(err)
				}
				gp := NewParams(m.Config)
				if err := m.Backward(ws, batch, exp.DSums, gp); err != nil {
					t.Fatal(err)
				}
				if e, at := worstTensorErr(t, gp.Tensors(), want); e > 1e-4 {
					t.Errorf("base gradient %s off by %.2g of its largest PyTorch value", at, e)
				}
			})
		}
	}
}

// randomAdapter returns an adapter on targets with A from Init and B drawn
// small and nonzero, so that it changes the model's outputs.
func randomAdapter(t *testing.T, c Config, lc LoRAConfig, seed uint64) *Adapter {
	t.Helper()
	a, err := NewAdapter(c, lc)
	if err != nil {
		t.Fatal(err)
	}
	a.Init(seed)
	for l := range a.Layers {
		for i := 0; i < numModules; i++ {
			if lo := a.Layers[l].get(i); lo != nil {
				for j := range lo.B {
					lo.B[j] = 0.05 * float32(math.Sin(float64(j)*0.7+float64(seed)+float64(l)))
				}
			}
		}
	}
	return a
}

// TestLoRAFreshAdapterIsBase checks that a fresh adapter (B = 0) leaves
// Forward, LastLogits and the Decoder bit for bit equal to the base, that
// the adapters-off copy is the base, and that a nonzero B changes the sums
// (so the comparison can fail).
func TestLoRAFreshAdapterIsBase(t *testing.T) {
	exp := loadLoRAExpected(t)
	batch := exp.batch()
	base := mustLoad(t, travelDir)
	pool := kernels.NewPool(2)
	defer pool.Close()
	baseSums, _, err := base.Forward(&Workspace{Pool: pool}, batch)
	if err != nil {
		t.Fatal(err)
	}
	baseLast, err := base.LastLogits(&Workspace{Pool: pool}, batch)
	if err != nil {
		t.Fatal(err)
	}
	lc := LoRAConfig{R: 4, Alpha: 8, Dropout: 0.1, Targets: LoRAModules}
	fresh, err := NewAdapter(base.Config, lc)
	if err != nil {
		t.Fatal(err)
	}
	fresh.Init(1)
	m := *base
	m.LoRA = fresh
	sums, _, err := m.Forward(&Workspace{Pool: pool, DropoutSeed: 3}, batch)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(sums, baseSums) {
		t.Errorf("fresh adapter: sums %v, base %v", sums, baseSums)
	}
	last, err := m.LastLogits(&Workspace{Pool: pool}, batch)
	if err != nil {
		t.Fatal(err)
	}
	for s := range last {
		if !slices.Equal(last[s], baseLast[s]) {
			t.Errorf("fresh adapter: last logits of sequence %d differ from the base's", s)
		}
	}
	off := m
	off.LoRA = nil
	offSums, _, err := off.Forward(&Workspace{Pool: pool}, batch)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(offSums, baseSums) {
		t.Errorf("adapters off: sums %v, base %v", offSums, baseSums)
	}
	m.LoRA = randomAdapter(t, base.Config, lc, 5)
	sums, _, err = m.Forward(&Workspace{Pool: pool}, batch)
	if err != nil {
		t.Fatal(err)
	}
	if slices.Equal(sums, baseSums) {
		t.Error("a nonzero adapter left the sums unchanged")
	}
}

// TestLoRADecoder checks that the Decoder applies the adapter: its logits
// after a prefill and a few single-token steps equal LastLogits of the
// adapted model over the whole sequence, to float32 rounding (as
// TestDecodeMatchesFullForward does for the base), and differ from the
// base's.
func TestLoRADecoder(t *testing.T) {
	base := mustLoad(t, travelDir)
	m := *base
	m.LoRA = randomAdapter(t, base.Config, LoRAConfig{R: 3, Alpha: 6, Targets: LoRAModules}, 9)
	pool := kernels.NewPool(2)
	defer pool.Close()
	seq := []int32{5, 17, 33, 2, 40, 8, 9, 61, 12}
	d := NewDecoder(&m, pool)
	cache := d.NewCache()
	got, err := d.Forward([]*KVCache{cache}, [][]int32{seq[:5]})
	if err != nil {
		t.Fatal(err)
	}
	for i := 5; i < len(seq); i++ {
		if got, err = d.Forward([]*KVCache{cache}, [][]int32{seq[i : i+1]}); err != nil {
			t.Fatal(err)
		}
	}
	b := &Batch{}
	b.Add(seq, nil)
	want, err := m.LastLogits(&Workspace{Pool: pool}, b)
	if err != nil {
		t.Fatal(err)
	}
	if e := maxRelDiff(got[0], want[0]); e > 1e-5 {
		t.Errorf("decoder logits differ from LastLogits by %.2g (relative)", e)
	}
	baseLast, err := base.LastLogits(&Workspace{Pool: pool}, b)
	if err != nil {
		t.Fatal(err)
	}
	if e := maxRelDiff(baseLast[0], want[0]); e < 1e-3 {
		t.Errorf("the adapter moved the logits by only %.2g", e)
	}
}

// TestCheckpointBitIdentical checks that gradient checkpointing changes no
// bit: log-prob sums and every gradient equal those of a run without it,
// for full fine-tuning and for LoRA (with dropout, where the recompute must
// draw the same masks), on Llama, Qwen2, Qwen3 (head norms), Gemma-2 and
// Gemma-3 (extra norms, soft caps, windows), OLMo-2 (post-norms only,
// whole-projection q/k norms), SmolLM3 (NoPE layers) and Granite
// (multipliers), with kept and
// recomputed logits, twice in a row on the same workspaces.
func TestCheckpointBitIdentical(t *testing.T) {
	dirs := []string{travelDir, filepath.Join("testdata", "lora", "qwen2"), filepath.Join("testdata", "arch", "qwen3"),
		filepath.Join("testdata", "gemma", "gemma2"), filepath.Join("testdata", "gemma", "gemma3"),
		filepath.Join("testdata", "arch", "olmo2"), filepath.Join("testdata", "arch", "smollm3"), filepath.Join("testdata", "arch", "granite"),
		filepath.Join("testdata", "gemma", "gemma"), filepath.Join("testdata", "arch", "olmo3")}
	exp := loadLoRAExpected(t)
	batch := exp.batch()
	for _, dir := range dirs {
		base := mustLoad(t, dir)
		b := &Batch{Tokens: slices.Clone(batch.Tokens), Offsets: batch.Offsets, PromptLens: batch.PromptLens}
		for i := range b.Tokens {
			b.Tokens[i] %= int32(base.Config.VocabSize)
		}
		lora := randomAdapter(t, base.Config, LoRAConfig{R: 2, Alpha: 4, Dropout: 0.2, Targets: LoRAModules}, 11)
		for _, mode := range []string{"full", "lora"} {
			for _, keep := range []bool{false, true} {
				name := strings.ReplaceAll(dir, string(filepath.Separator), "_") + "/" + mode
				if keep {
					name += "/keep-logits"
				}
				t.Run(name, func(t *testing.T) {
					m := *base
					if mode == "lora" {
						m.LoRA = lora
					}
					pool := kernels.NewPool(2)
					defer pool.Close()
					plain := &Workspace{Pool: pool, KeepLogits: keep, DropoutSeed: 21}
					ckpt := &Workspace{Pool: pool, KeepLogits: keep, DropoutSeed: 21, Checkpoint: true}
					for round := 0; round < 2; round++ {
						s1, g1 := stepGrads(t, &m, plain, b, exp.DSums)
						s2, g2 := stepGrads(t, &m, ckpt, b, exp.DSums)
						if !slices.Equal(s1, s2) {
							t.Fatalf("round %d: sums %v with checkpointing, %v without", round, s2, s1)
						}
						if !slices.Equal(g1, g2) {
							t.Fatalf("round %d: gradients differ with checkpointing", round)
						}
					}
				})
			}
		}
	}
}

// stepGrads runs Forward and Backward (BackwardAdapter for a model with an
// adapter) and returns the sums and the gradients' values.
func stepGrads(t *testing.T, m *Model, ws *Workspace, b *Batch, dSums []float64) ([]float64, []float32) {
	t.Helper()
	sums, _, err := m.Forward(ws, b)
	if err != nil {
		t.Fatal(err)
	}
	if m.LoRA != nil {
		g, _ := NewAdapter(m.Config, m.LoRA.Config)
		if err := m.BackwardAdapter(ws, b, dSums, g); err != nil {
			t.Fatal(err)
		}
		return sums, g.Mem
	}
	g := NewParams(m.Config)
	if err := m.Backward(ws, b, dSums, g); err != nil {
		t.Fatal(err)
	}
	return sums, g.Mem
}

// TestLoRADropoutMasks checks the dropout stream: about a fraction p of
// entries dropped, the same mask for the same seed, layer and module, and
// different masks otherwise.
func TestLoRADropoutMasks(t *testing.T) {
	const n = 1 << 16
	mask := func(seed uint64, l, mod int, p float64) []bool {
		d := newDropout(p, seed, l)
		k := d.key(mod)
		out := make([]bool, n)
		for i := range out {
			out[i] = d.keep(k, i)
		}
		return out
	}
	for _, p := range []float64{0.05, 0.25, 0.5} {
		m := mask(1, 0, 0, p)
		dropped := 0
		for _, k := range m {
			if !k {
				dropped++
			}
		}
		// binomial: the standard deviation of the fraction is under 0.002
		if f := float64(dropped) / n; math.Abs(f-p) > 0.01 {
			t.Errorf("p %v: dropped a fraction %v", p, f)
		}
		if !slices.Equal(m, mask(1, 0, 0, p)) {
			t.Errorf("p %v: the same stream gave another mask", p)
		}
		for _, other := range [][]bool{mask(2, 0, 0, p), mask(1, 1, 0, p), mask(1, 0, 1, p)} {
			if slices.Equal(m, other) {
				t.Errorf("p %v: another seed, layer or module gave the same mask", p)
			}
		}
	}
}

// TestLoRAErrors checks the refusals: BackwardAdapter without an adapter or
// with gradients of another shape, an adapter made for another model.
func TestLoRAErrors(t *testing.T) {
	m := mustLoad(t, travelDir)
	exp := loadLoRAExpected(t)
	b := exp.batch()
	ws := &Workspace{}
	if _, _, err := m.Forward(ws, b); err != nil {
		t.Fatal(err)
	}
	lc := LoRAConfig{R: 2, Alpha: 4, Targets: []string{"q_proj"}}
	g, _ := NewAdapter(m.Config, lc)
	if err := m.BackwardAdapter(ws, b, exp.DSums, g); err == nil || !strings.Contains(err.Error(), "without a LoRA adapter") {
		t.Errorf("BackwardAdapter without an adapter: %v", err)
	}
	m.LoRA, _ = NewAdapter(m.Config, LoRAConfig{R: 2, Alpha: 4, Targets: []string{"v_proj"}})
	if _, _, err := m.Forward(ws, b); err != nil {
		t.Fatal(err)
	}
	if err := m.BackwardAdapter(ws, b, exp.DSums, g); err == nil || !strings.Contains(err.Error(), "shape") {
		t.Errorf("BackwardAdapter with gradients of another adapter: %v", err)
	}
	other := m.Config
	other.HiddenSize *= 2
	m.LoRA, _ = NewAdapter(other, LoRAConfig{R: 2, Alpha: 4, Targets: []string{"v_proj"}})
	if _, _, err := m.Forward(ws, b); err == nil || !strings.Contains(err.Error(), "v_proj") {
		t.Errorf("Forward with an adapter for another model: %v", err)
	}
}

// Phi-3's fused projections take no adapters (PEFT adapts qkv_proj as one
// module), its unfused ones do.
func TestLoRAFusedRefused(t *testing.T) {
	m := mustLoad(t, filepath.Join("testdata", "arch", "phi3"))
	if _, err := NewAdapter(m.Config, LoRAConfig{R: 2, Alpha: 4, Targets: []string{"q_proj", "o_proj"}}); err == nil ||
		!strings.Contains(err.Error(), "LoRA on q_proj is not supported for phi3, whose checkpoint fuses it into qkv_proj or gate_up_proj") {
		t.Errorf("got %v", err)
	}
	if _, err := NewAdapter(m.Config, LoRAConfig{R: 2, Alpha: 4, Targets: []string{"o_proj", "down_proj"}}); err != nil {
		t.Error(err)
	}
}

// A Phi-3 model saves its fused tensors under Phi-3's names, as loaded.
func TestFusedSaveRoundTrip(t *testing.T) {
	src := filepath.Join("testdata", "arch", "phi3")
	m := mustLoad(t, src)
	dir := t.TempDir()
	if err := m.Save(dir, safetensors.F32, 0); err != nil {
		t.Fatal(err)
	}
	back := mustLoad(t, dir)
	if !slices.Equal(back.Params.Mem, m.Params.Mem) {
		t.Error("the saved model differs from the loaded one")
	}
	ck, err := safetensors.OpenCheckpoint(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	want, _ := safetensors.OpenCheckpoint(src)
	defer want.Close()
	if !slices.Equal(ck.Names(), want.Names()) {
		t.Errorf("saved tensors %v, Phi-3's %v", ck.Names(), want.Names())
	}
}
