package peft

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/relupo/relupo/model"
	"github.com/relupo/relupo/safetensors"
)

// tinyConfig is a small Llama: hidden 8, intermediate 12, 2 layers, 4
// heads of 2, 2 kv heads.
func tinyConfig(t *testing.T) model.Config {
	t.Helper()
	c, err := model.ParseConfig([]byte(`{"architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": 16,
		"hidden_size": 8, "intermediate_size": 12, "num_hidden_layers": 2, "num_attention_heads": 4,
		"num_key_value_heads": 2, "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "tie_word_embeddings": false,
		"torch_dtype": "float32"}`))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// randomAdapter is an adapter with every value drawn (B too, so merges
// change the weights).
func randomAdapter(t *testing.T, c model.Config, lc model.LoRAConfig, seed uint64) *model.Adapter {
	t.Helper()
	a, err := model.NewAdapter(c, lc)
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(seed, 1))
	for i := range a.Mem {
		a.Mem[i] = float32(r.NormFloat64())
	}
	return a
}

func TestWriteLoadRoundTrip(t *testing.T) {
	c := tinyConfig(t)
	for _, tc := range []struct {
		name string
		lc   model.LoRAConfig
	}{
		{"q_v", model.LoRAConfig{R: 4, Alpha: 8, Dropout: 0.05, Targets: []string{"q_proj", "v_proj"}}},
		{"all-linear rslora", model.LoRAConfig{R: 2, Alpha: 16, Targets: slices.Clone(model.LoRAModules), RSLoRA: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := randomAdapter(t, c, tc.lc, 3)
			dir := t.TempDir()
			if err := Write(dir, a, "org/base-model", safetensors.F32); err != nil {
				t.Fatal(err)
			}
			b, pc, err := Load(dir, c)
			if err != nil {
				t.Fatal(err)
			}
			if pc.BaseModel != "org/base-model" {
				t.Errorf("base model %q", pc.BaseModel)
			}
			if b.Config.R != tc.lc.R || b.Config.Alpha != tc.lc.Alpha || b.Config.Dropout != tc.lc.Dropout || b.Config.RSLoRA != tc.lc.RSLoRA || !slices.Equal(b.Config.Targets, tc.lc.Targets) {
				t.Errorf("config %+v, want %+v", b.Config, tc.lc)
			}
			if !slices.Equal(a.Mem, b.Mem) {
				t.Error("weights differ after a round trip")
			}
		})
	}
}

// TestConfigFileLayout checks adapter_config.json against the keys and
// values PEFT writes for a LoRA adapter of a causal LM.
func TestConfigFileLayout(t *testing.T) {
	c := tinyConfig(t)
	a := randomAdapter(t, c, model.LoRAConfig{R: 16, Alpha: 32, Dropout: 0.05, Targets: []string{"q_proj", "v_proj"}}, 1)
	dir := t.TempDir()
	if err := Write(dir, a, "base", ""); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, ConfigFile))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"peft_type": "LORA", "task_type": "CAUSAL_LM", "base_model_name_or_path": "base", "r": 16.0,
		"lora_alpha": 32.0, "lora_dropout": 0.05, "use_rslora": false, "bias": "none", "fan_in_fan_out": false,
		"inference_mode": true, "init_lora_weights": true, "modules_to_save": nil, "revision": nil, "use_dora": false}
	for k, v := range want {
		got, ok := m[k]
		if !ok || got != v {
			t.Errorf("%s = %v (present %v), want %v", k, got, ok, v)
		}
	}
	if tm, _ := m["target_modules"].([]any); len(tm) != 2 || tm[0] != "q_proj" || tm[1] != "v_proj" {
		t.Errorf("target_modules %v", m["target_modules"])
	}
	// Sorted keys, two-space indent, as PEFT's json.dumps(indent=2, sort_keys=True).
	if !strings.HasPrefix(string(b), "{\n  \"alora_invocation_tokens\": null,\n  \"alpha_pattern\": {},") {
		t.Errorf("layout:\n%s", b[:min(len(b), 120)])
	}
	f, err := safetensors.Open(filepath.Join(dir, WeightsFile))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	names := f.Names()
	slices.Sort(names)
	wantNames := []string{
		"base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight", "base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight",
		"base_model.model.model.layers.0.self_attn.v_proj.lora_A.weight", "base_model.model.model.layers.0.self_attn.v_proj.lora_B.weight",
		"base_model.model.model.layers.1.self_attn.q_proj.lora_A.weight", "base_model.model.model.layers.1.self_attn.q_proj.lora_B.weight",
		"base_model.model.model.layers.1.self_attn.v_proj.lora_A.weight", "base_model.model.model.layers.1.self_attn.v_proj.lora_B.weight",
	}
	if !slices.Equal(names, wantNames) {
		t.Errorf("tensors %v", names)
	}
	if info, _ := f.Info(wantNames[0]); !slices.Equal(info.Shape, []int{16, 8}) {
		t.Errorf("q_proj lora_A shape %v, want [16 8]", info.Shape)
	}
	if info, _ := f.Info(wantNames[3]); !slices.Equal(info.Shape, []int{4, 16}) {
		t.Errorf("v_proj lora_B shape %v, want [4 16]", info.Shape)
	}
}

// TestTargetModules reads the forms of target_modules PEFT versions write.
func TestTargetModules(t *testing.T) {
	c := tinyConfig(t)
	for _, tc := range []struct {
		name, targets string
		want          []string
		err           string
	}{
		{"list", `["v_proj", "q_proj"]`, []string{"q_proj", "v_proj"}, ""},
		{"dotted suffix", `["self_attn.q_proj", "mlp.down_proj"]`, []string{"q_proj", "down_proj"}, ""},
		{"all-linear", `"all-linear"`, model.LoRAModules, ""},
		{"regex", `".*\\.(q_proj|k_proj)"`, []string{"q_proj", "k_proj"}, ""},
		{"regex of some layers", `".*layers\\.0\\.self_attn\\.q_proj"`, nil, "some layers only"},
		{"lm_head", `["q_proj", "lm_head"]`, nil, "lm_head"},
		{"unknown module", `["q_proj", "c_attn"]`, nil, `"c_attn", which this model lacks`},
		{"bad regex", `"(q_proj"`, nil, "regular expression"},
		{"matches nothing", `"foo"`, nil, "matches none"},
		{"not a list", `7`, nil, "want a list"},
		{"missing", `null`, nil, "target_modules is missing"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			js := `{"peft_type": "LORA", "task_type": "CAUSAL_LM", "r": 4, "lora_alpha": 8, "bias": "none", "target_modules": ` + tc.targets + `}`
			pc, err := parseConfig([]byte(js), c)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want one with %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(pc.LoRA.Targets, tc.want) {
				t.Errorf("targets %v, want %v", pc.LoRA.Targets, tc.want)
			}
		})
	}
}

// TestUnsupportedConfig checks that PEFT features relupo cannot apply are
// refused by name.
func TestUnsupportedConfig(t *testing.T) {
	c := tinyConfig(t)
	for _, tc := range []struct{ extra, err string }{
		{`"bias": "all"`, `bias "all"`},
		{`"modules_to_save": ["lm_head"]`, "modules_to_save"},
		{`"use_dora": true`, "DoRA"},
		{`"rank_pattern": {"q_proj": 8}`, "rank_pattern"},
		{`"layers_to_transform": [0]`, "layers_to_transform"},
		{`"fan_in_fan_out": true`, "fan_in_fan_out"},
		{`"peft_type": "IA3"`, `peft_type "IA3"`},
		{`"task_type": "SEQ_CLS"`, "task_type"},
		{`"r": 0`, "r 0"},
		{`"r": 2.5`, "r 2.5"},
		{`"lora_dropout": 1`, "dropout"},
		{`"lora_alpha": "x"`, "lora_alpha"},
	} {
		t.Run(tc.err, func(t *testing.T) {
			base := map[string]any{"peft_type": "LORA", "task_type": "CAUSAL_LM", "r": 4, "lora_alpha": 8, "bias": "none", "target_modules": []string{"q_proj"}}
			b, _ := json.Marshal(base)
			js := strings.TrimSuffix(string(b), "}") + ", " + tc.extra + "}" // a later duplicate key wins in encoding/json
			_, err := parseConfig([]byte(js), c)
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("error %v, want one with %q", err, tc.err)
			}
		})
	}
}

// TestBadTensors checks the one error each kind of wrong weights file
// gets, naming the tensor.
func TestBadTensors(t *testing.T) {
	c := tinyConfig(t)
	lc := model.LoRAConfig{R: 4, Alpha: 8, Targets: []string{"q_proj", "v_proj"}}
	other := c
	other.HiddenSize, other.HeadDim = 12, 3 // another base: hidden 12
	for _, tc := range []struct {
		name  string
		write func(t *testing.T, dir string)
		err   string
	}{
		{"rank disagrees with r", func(t *testing.T, dir string) {
			a := randomAdapter(t, c, model.LoRAConfig{R: 2, Alpha: 8, Targets: lc.Targets}, 1)
			writeWeights(t, dir, a.Tensors())
		}, `"base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight" has shape [2 8]: its rank 2 disagrees with r 4`},
		{"another base", func(t *testing.T, dir string) {
			a := randomAdapter(t, other, lc, 1)
			writeWeights(t, dir, a.Tensors())
		}, `"base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight" has shape [4 12], but the base model's layer has 8 inputs`},
		{"missing tensor", func(t *testing.T, dir string) {
			a := randomAdapter(t, c, lc, 1)
			writeWeights(t, dir, a.Tensors()[1:])
		}, `no tensor "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"`},
		{"untargeted module", func(t *testing.T, dir string) {
			a := randomAdapter(t, c, model.LoRAConfig{R: 4, Alpha: 8, Targets: []string{"q_proj", "k_proj", "v_proj"}}, 1)
			writeWeights(t, dir, a.Tensors())
		}, `"base_model.model.model.layers.0.self_attn.k_proj.lora_A.weight" adapts k_proj, which adapter_config.json's target_modules (q_proj, v_proj) does not name`},
		{"more layers", func(t *testing.T, dir string) {
			deep := c
			deep.NumLayers = 3
			a := randomAdapter(t, deep, lc, 1)
			writeWeights(t, dir, a.Tensors())
		}, `"base_model.model.model.layers.2.self_attn.q_proj.lora_A.weight" is for layer 2, but the base model has 2 layers`},
		{"stray tensor", func(t *testing.T, dir string) {
			a := randomAdapter(t, c, lc, 1)
			writeWeights(t, dir, append(slices.Clone(a.Tensors()), model.Tensor{Name: "lm_head.weight", Shape: []int{1}, Data: []float32{1}}))
		}, `unexpected tensor "lm_head.weight"`},
		{"non-finite", func(t *testing.T, dir string) {
			a := randomAdapter(t, c, lc, 1)
			a.Tensors()[3].Data[2] = float32(math.Inf(1))
			writeWeights(t, dir, a.Tensors())
		}, `"base_model.model.model.layers.0.self_attn.v_proj.lora_B.weight" holds a non-finite value`},
		{"no weights file", func(t *testing.T, dir string) {}, "no adapter_model.safetensors"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			b, err := configJSON(Config{LoRA: lc})
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, ConfigFile), b, 0o644); err != nil {
				t.Fatal(err)
			}
			tc.write(t, dir)
			_, _, err = Load(dir, c)
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("error %v\nwant one with %s", err, tc.err)
			}
		})
	}
	if _, _, err := Load(t.TempDir(), c); err == nil || !strings.Contains(err.Error(), "not an adapter folder") {
		t.Errorf("empty folder: %v", err)
	}
}

func writeWeights(t *testing.T, dir string, ts []model.Tensor) {
	t.Helper()
	var out []safetensors.Tensor
	for _, x := range ts {
		out = append(out, safetensors.Tensor{Name: x.Name, DType: safetensors.F32, Shape: x.Shape, Data: x.Data})
	}
	if err := safetensors.Write(filepath.Join(dir, WeightsFile), out, nil); err != nil {
		t.Fatal(err)
	}
}

// TestMerge checks W + scale·B·A against a float64 computation written
// out here. Tolerance 1e-5 relative to the largest term: the product sums
// r = 4 float32 terms, a few ulps at most.
func TestMerge(t *testing.T) {
	c := tinyConfig(t)
	for _, rs := range []bool{false, true} {
		lc := model.LoRAConfig{R: 4, Alpha: 6, Targets: []string{"q_proj", "o_proj", "down_proj"}, RSLoRA: rs}
		a := randomAdapter(t, c, lc, 5)
		m := model.New(c)
		m.Params.Init(9, 0.5)
		before := slices.Clone(m.Params.Mem)
		if err := Merge(m, a, nil); err != nil {
			t.Fatal(err)
		}
		scale := 6 / 4.0
		if rs {
			scale = 6 / 2.0
		}
		changed := 0
		off := 0
		for _, tn := range m.Params.Tensors() {
			var lo *model.LoRA
			for l := range c.NumLayers {
				la := a.Layers[l]
				switch tn.Name {
				case fmt.Sprintf("model.layers.%d.self_attn.q_proj.weight", l):
					lo = la.Q
				case fmt.Sprintf("model.layers.%d.self_attn.o_proj.weight", l):
					lo = la.O
				case fmt.Sprintf("model.layers.%d.mlp.down_proj.weight", l):
					lo = la.Down
				}
			}
			orig := before[off : off+len(tn.Data)]
			off += len(tn.Data)
			if lo == nil {
				if !slices.Equal(orig, tn.Data) {
					t.Errorf("%s changed, but no adapter targets it", tn.Name)
				}
				continue
			}
			changed++
			for i := range lo.Out {
				for j := range lo.In {
					var s, mag float64
					for k := range lc.R {
						p := float64(lo.B[i*lc.R+k]) * float64(lo.A[k*lo.In+j])
						s += p
						mag += math.Abs(p)
					}
					want := float64(orig[i*lo.In+j]) + scale*s
					if d := math.Abs(float64(tn.Data[i*lo.In+j]) - want); d > 1e-5*(scale*mag+math.Abs(want)) {
						t.Fatalf("rslora %v: %s[%d,%d] = %v, want %v", rs, tn.Name, i, j, tn.Data[i*lo.In+j], want)
					}
				}
			}
		}
		if changed != 3*c.NumLayers {
			t.Errorf("%d weights merged, want %d", changed, 3*c.NumLayers)
		}
	}
	other := c
	other.NumLayers = 3
	if err := Merge(model.New(other), randomAdapter(t, c, model.LoRAConfig{R: 2, Alpha: 2, Targets: []string{"q_proj"}}, 1), nil); err == nil {
		t.Error("merging a 2-layer adapter into a 3-layer model: no error")
	}
}

// TestMergeFolder checks the streamed merge against Merge in memory, bit
// for bit (both compute W + scale·B·A in float32 with the same product),
// unsharded and in shards as save_pretrained writes them, in float32 and
// rounded once to bfloat16.
func TestMergeFolder(t *testing.T) {
	c := tinyConfig(t)
	a := randomAdapter(t, c, model.LoRAConfig{R: 4, Alpha: 8, Targets: []string{"q_proj", "v_proj", "up_proj", "down_proj"}}, 3)
	m := model.New(c)
	m.Params.Init(2, 0.5)
	base := t.TempDir()
	if err := m.Save(base, safetensors.F32, 0); err != nil {
		t.Fatal(err)
	}
	if err := Merge(m, a, nil); err != nil {
		t.Fatal(err)
	}
	// The tiny model's weights are 5,024 bytes in float32, 2,512 in bfloat16.
	for _, tc := range []struct {
		dtype    safetensors.DType
		maxShard int64
		files    []string
		config   string
	}{
		{safetensors.F32, 0, []string{"config.json", safetensors.SingleFileName}, "float32"},
		{safetensors.F32, 2000, []string{"config.json", "model-00001-of-00003.safetensors", "model-00002-of-00003.safetensors",
			"model-00003-of-00003.safetensors", safetensors.IndexFileName}, "float32"},
		{safetensors.BF16, 1000, []string{"config.json", "model-00001-of-00003.safetensors", "model-00002-of-00003.safetensors",
			"model-00003-of-00003.safetensors", safetensors.IndexFileName}, "bfloat16"},
	} {
		t.Run(fmt.Sprint(tc.dtype, " ", tc.maxShard), func(t *testing.T) {
			out := t.TempDir()
			if err := MergeFolder(base, a, out, tc.dtype, tc.maxShard, nil); err != nil {
				t.Fatal(err)
			}
			entries, _ := os.ReadDir(out)
			var files []string
			for _, e := range entries {
				files = append(files, e.Name())
			}
			if !slices.Equal(files, tc.files) {
				t.Errorf("files %q, want %q", files, tc.files)
			}
			got, dtype, err := model.Load(out)
			if err != nil {
				t.Fatal(err)
			}
			if dtype != tc.dtype || got.Config.Raw["torch_dtype"] != tc.config {
				t.Errorf("saved as %s, config torch_dtype %v", dtype, got.Config.Raw["torch_dtype"])
			}
			for i, w := range m.Params.Mem {
				if tc.dtype == safetensors.BF16 {
					w = safetensors.BF16ToF32(safetensors.F32ToBF16(w))
				}
				if got.Params.Mem[i] != w {
					t.Fatalf("weight %d = %v, want %v", i, got.Params.Mem[i], w)
				}
			}
		})
	}
}
