package model

import (
	"fmt"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/relupo/relupo/internal/testutil"
)

func TestParseConfigErrors(t *testing.T) {
	const base = `"vocab_size": 10, "hidden_size": 8, "intermediate_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2`
	for _, tc := range []struct{ name, json, want string }{
		{"not json", `{`, "invalid JSON"},
		{"not object", `[1]`, "invalid JSON"},
		{"no model_type", `{` + base + `}`, `missing "model_type"`},
		{"gpt2", `{"model_type": "gpt2", ` + base + `}`, `unsupported model_type "gpt2"`},
		{"missing field", `{"model_type": "llama", "vocab_size": 10}`, "missing hidden_size"},
		{"bad int", `{"model_type": "llama", ` + strings.Replace(base, `"hidden_size": 8`, `"hidden_size": 8.5`, 1) + `}`, "hidden_size: want a positive integer"},
		{"rope type", `{"model_type": "llama", ` + base + `, "rope_scaling": {"rope_type": "dynamic", "factor": 4}}`, `rope type "dynamic" is not supported (supported: default, linear, llama3, yarn, longrope)`},
		{"yarn factor disagrees", `{"model_type": "qwen2", ` + base + `, "max_position_embeddings": 32768, "rope_scaling": {"type": "yarn", "factor": 4, "original_max_position_embeddings": 32768}}`,
			"yarn factor 4 disagrees with max_position_embeddings / original_max_position_embeddings = 32768 / 32768: transformers scales by that ratio and vLLM by factor, so relupo does not pick one; set max_position_embeddings to 131072"},
		{"yarn without lengths", `{"model_type": "llama", ` + base + `, "rope_scaling": {"rope_type": "yarn", "factor": 4}}`, "yarn scaling needs"},
		{"linear rope without factor", `{"model_type": "llama", ` + base + `, "rope_scaling": {"type": "linear"}}`, "linear scaling needs factor"},
		{"gemma3 multimodal", `{"model_type": "gemma3", ` + base + `}`, `"gemma3_text"`},
		{"gemma act", `{"model_type": "gemma2", ` + base + `, "hidden_activation": "gelu"}`, `hidden_activation "gelu"`},
		{"gemma bidirectional", `{"model_type": "gemma3_text", ` + base + `, "use_bidirectional_attention": true}`, "use_bidirectional_attention"},
		{"gemma layer types", `{"model_type": "gemma2", ` + base + `, "layer_types": ["sliding_attention", "full_attention"]}`, "layer_types has 2 entries for 1 layers"},
		{"gemma layer type", `{"model_type": "gemma2", ` + base + `, "layer_types": ["chunked_attention"]}`, "not sliding_attention or full_attention"},
		{"llama3 incomplete", `{"model_type": "llama", ` + base + `, "rope_scaling": {"rope_type": "llama3", "factor": 8}}`, "llama3 scaling needs"},
		{"qwen window", `{"model_type": "qwen2", ` + base + `, "use_sliding_window": true}`, "use_sliding_window true is not supported"},
		{"act", `{"model_type": "llama", ` + base + `, "hidden_act": "gelu"}`, `hidden_act "gelu"`},
		{"mlp bias", `{"model_type": "llama", ` + base + `, "mlp_bias": true}`, "mlp_bias"},
		{"gqa", `{"model_type": "llama", ` + base + `, "num_key_value_heads": 3}`, "not a multiple"},
		{"phi3 partial rotary", `{"model_type": "phi3", ` + base + `, "partial_rotary_factor": 0.75}`, "partial_rotary_factor 0.75 gives 3 rotated values per head of 4; want an even number from 2"},
		{"phi3 longrope", `{"model_type": "phi3", ` + base + `, "rope_scaling": {"type": "longrope", "long_factor": [1], "short_factor": [1]}}`, "longrope needs short_factor, a list of 2 numbers"},
		{"granite multiplier", `{"model_type": "granite", ` + base + `, "residual_multiplier": 0}`, "residual_multiplier must be a positive number"},
		{"granite scaling", `{"model_type": "granite", ` + base + `, "logits_scaling": "8"}`, `logits_scaling: want a number, got the string "8"`},
		{"smollm3 short no_rope_layers", `{"model_type": "smollm3", ` + strings.Replace(base, `"num_hidden_layers": 1`, `"num_hidden_layers": 3`, 1) + `, "num_key_value_heads": 2, "no_rope_layers": [1, 0]}`, "no_rope_layers: want a list of 0s and 1s with an entry per layer (3), got a list"},
		{"smollm3 no_rope_layers entry", `{"model_type": "smollm3", ` + base + `, "num_key_value_heads": 2, "no_rope_layers": [2]}`, "no_rope_layers[0]: want 0 (no RoPE) or 1 (RoPE), got 2"},
		{"smollm3 no_rope_layers string", `{"model_type": "smollm3", ` + base + `, "num_key_value_heads": 2, "no_rope_layers": "1,0"}`, `got the string "1,0"`},
		{"smollm3 interval", `{"model_type": "smollm3", ` + base + `, "num_key_value_heads": 2, "no_rope_layer_interval": 0}`, "no_rope_layer_interval: want a positive integer"},
		{"smollm3 layer types", `{"model_type": "smollm3", ` + base + `, "num_key_value_heads": 2, "use_sliding_window": true, "sliding_window": 8, "layer_types": ["full_attention", "full_attention"]}`, "layer_types has 2 entries for 1 layers"},
		{"smollm3 act", `{"model_type": "smollm3", ` + base + `, "num_key_value_heads": 2, "hidden_act": "gelu"}`, `hidden_act "gelu"`},
		{"huge", `{"model_type": "llama", "vocab_size": 2000000000, "hidden_size": 2000000000, "intermediate_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2}`, "beyond what relupo can hold"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseConfig([]byte(tc.json))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestParseConfigArchitectures(t *testing.T) {
	const base = `"vocab_size": 10, "hidden_size": 8, "intermediate_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2`
	for _, tc := range []struct {
		name, json                   string
		qkvBias, oBias, qkNorm       bool
		window, headDim, kv, eosLast int
	}{
		{"llama", `{"model_type": "llama", ` + base + `, "eos_token_id": [128001, 128009]}`, false, false, false, 0, 4, 2, 128009},
		{"llama bias", `{"model_type": "llama", ` + base + `, "attention_bias": true, "eos_token_id": 2}`, true, true, false, 0, 4, 2, 2},
		{"qwen2", `{"model_type": "qwen2", ` + base + `, "use_sliding_window": false, "sliding_window": 4096, "eos_token_id": 5}`, true, false, false, 0, 4, 2, 5},
		{"qwen3", `{"model_type": "qwen3", ` + base + `, "head_dim": 16, "num_key_value_heads": 1, "eos_token_id": 5}`, false, false, true, 0, 16, 1, 5},
		{"mistral", `{"model_type": "mistral", ` + base + `, "sliding_window": 4096, "eos_token_id": 2}`, false, false, false, 4096, 4, 2, 2},
		{"mistral null window", `{"model_type": "mistral", ` + base + `, "sliding_window": null, "eos_token_id": 2}`, false, false, false, 0, 4, 2, 2},
		{"smollm3", `{"model_type": "smollm3", ` + base + `, "num_key_value_heads": 2, "attention_bias": true, "use_sliding_window": false, "sliding_window": 64, "eos_token_id": 128012}`, true, true, false, 0, 4, 2, 128012},
		// Llama's attention has no window: a sliding_window key is ignored, as transformers ignores it.
		{"llama window ignored", `{"model_type": "llama", ` + base + `, "sliding_window": 4096, "eos_token_id": 2}`, false, false, false, 0, 4, 2, 2},
		{"olmo2", `{"model_type": "olmo2", ` + base + `, "eos_token_id": 100257}`, false, false, true, 0, 4, 2, 100257},
		{"olmo3", `{"model_type": "olmo3", ` + base + `, "eos_token_id": 100257}`, false, false, true, 4096, 4, 2, 100257},
		{"phi3", `{"model_type": "phi3", ` + base + `, "sliding_window": 2047, "eos_token_id": 32000}`, false, false, false, 2047, 4, 2, 32000},
		{"llama nulls", `{"model_type": "llama", ` + base + `, "head_dim": null, "num_key_value_heads": null, "eos_token_id": 2}`, false, false, false, 0, 4, 2, 2},
		{"olmo3 no window", `{"model_type": "olmo3", ` + base + `, "sliding_window": null, "eos_token_id": 100257}`, false, false, true, 0, 4, 2, 100257},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ParseConfig([]byte(tc.json))
			if err != nil {
				t.Fatal(err)
			}
			if c.QKVBias != tc.qkvBias || c.OBias != tc.oBias || c.QKNorm != tc.qkNorm || c.SlidingWindow != tc.window || c.HeadDim != tc.headDim || c.NumKVHeads != tc.kv || c.EOSTokenIDs[len(c.EOSTokenIDs)-1] != tc.eosLast {
				t.Fatalf("parsed %+v", c)
			}
		})
	}
}

// The fp16 tiny-random-llama loads and its greedy next tokens match the
// ONNX Runtime GenAI goldens listed in ../shared/README.md.
func TestTinyRandomLlamaFP16(t *testing.T) {
	dir := testutil.SharedPath(t, "fixtures", "models", "tiny-random-llama")
	m, dtype, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if dtype != "F16" {
		t.Errorf("checkpoint dtype %s, want F16", dtype)
	}
	b := &Batch{}
	b.Add([]int32{0, 0, 0, 52}, nil)
	b.Add([]int32{0, 0, 195, 731}, nil)
	logits, err := m.LastLogits(&Workspace{}, b)
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []int{12102, 29592} {
		if got := Argmax(logits[i]); got != want {
			t.Errorf("sequence %d: argmax %d, want %d", i, got, want)
		}
	}
}

func TestBatchValidation(t *testing.T) {
	dir := filepath.Join("testdata", "arch", "mistral")
	m := mustLoad(t, dir)
	for _, tc := range []struct {
		name string
		b    *Batch
		want string
	}{
		{"token out of vocab", func() *Batch { b := &Batch{}; b.Add([]int32{1, 2}, []int32{96}); return b }(), "id 96 outside the vocabulary"},
		{"negative token", func() *Batch { b := &Batch{}; b.Add([]int32{-1}, []int32{3}); return b }(), "id -1 outside"},
		{"empty", func() *Batch { b := &Batch{}; b.Add(nil, nil); return b }(), "sequence 0 is empty"},
		{"no sequences", &Batch{}, "malformed batch"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := m.Forward(&Workspace{}, tc.b)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

// SmolLM3's NoPE layers and windows as SmolLM3Config derives them, and its
// defaults (tied embeddings, 4 KV heads, rope_theta 2e6).
func TestParseSmolLM3Config(t *testing.T) {
	const base = `"model_type": "smollm3", "vocab_size": 10, "hidden_size": 16, "intermediate_size": 16, "num_hidden_layers": 8, "num_attention_heads": 4`
	for _, tc := range []struct {
		name, extra    string
		noRope, slides string // per layer: 1 where NoRope / SlidingLayers is set
		window         int
	}{
		{"defaults", ``, "00010001", "", 0},
		{"interval", `, "no_rope_layer_interval": 3`, "00100100", "", 0},
		{"list", `, "no_rope_layers": [1, 0, 1, 1, 0, 1, 1, 1, 0]`, "01001000", "", 0},
		{"booleans", `, "no_rope_layers": [true, false, true, true, true, true, true, true]`, "01000000", "", 0},
		{"window on NoPE layers", `, "use_sliding_window": true, "sliding_window": 32`, "00010001", "00010001", 32},
		{"window by layer_types", `, "use_sliding_window": true, "sliding_window": 32, "layer_types": ["sliding_attention", "full_attention", "full_attention", "full_attention", "full_attention", "full_attention", "full_attention", "full_attention"]`, "00010001", "10000000", 32},
		{"window off", `, "use_sliding_window": false, "sliding_window": 32`, "00010001", "", 0},
		{"null window", `, "use_sliding_window": true, "sliding_window": null`, "00010001", "", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ParseConfig([]byte(`{` + base + tc.extra + `}`))
			if err != nil {
				t.Fatal(err)
			}
			if !c.TieWordEmbeddings || c.NumKVHeads != 4 || c.RopeTheta != 2e6 {
				t.Errorf("defaults: tied %v, kv heads %d, rope_theta %g; want tied, 4, 2e6", c.TieWordEmbeddings, c.NumKVHeads, c.RopeTheta)
			}
			bits := func(b []bool) string {
				s := ""
				for _, x := range b {
					s += map[bool]string{false: "0", true: "1"}[x]
				}
				return s
			}
			if got := bits(c.NoRope); got != tc.noRope {
				t.Errorf("NoRope %s, want %s", got, tc.noRope)
			}
			if got := bits(c.SlidingLayers); got != tc.slides || c.SlidingWindow != tc.window {
				t.Errorf("SlidingLayers %s window %d, want %s window %d", got, c.SlidingWindow, tc.slides, tc.window)
			}
		})
	}
}

// OLMo-2's layout: no input norms, post-norms on both blocks, q/k norms over
// the whole projection.
func TestParseOLMo2Config(t *testing.T) {
	c, err := ParseConfig([]byte(`{"model_type": "olmo2", "vocab_size": 10, "hidden_size": 16, "intermediate_size": 16, "num_hidden_layers": 1, "num_attention_heads": 4, "num_key_value_heads": 2}`))
	if err != nil {
		t.Fatal(err)
	}
	if !c.PostNorms || !c.NoPreNorms || !c.QKNorm || !c.QKNormFull || c.Gemma || c.TieWordEmbeddings {
		t.Errorf("parsed %+v", c)
	}
	var names []string
	for _, s := range c.tensorSpecs() {
		names = append(names, s.name+fmt.Sprint(s.shape))
	}
	got := strings.Join(names, " ")
	for _, want := range []string{"model.layers.0.self_attn.q_norm.weight[16]", "model.layers.0.self_attn.k_norm.weight[8]",
		"model.layers.0.post_attention_layernorm.weight[16]", "model.layers.0.post_feedforward_layernorm.weight[16]"} {
		if !strings.Contains(got, want) {
			t.Errorf("tensors %s lack %s", got, want)
		}
	}
	if strings.Contains(got, "input_layernorm") || strings.Contains(got, "pre_feedforward_layernorm") {
		t.Errorf("tensors %s have an input norm", got)
	}
}

// Granite's multipliers: 1 by default, attention_multiplier replacing
// 1/√head_dim outright, untied embeddings by default.
func TestParseGraniteConfig(t *testing.T) {
	const base = `"model_type": "granite", "vocab_size": 10, "hidden_size": 16, "intermediate_size": 16, "num_hidden_layers": 1, "num_attention_heads": 4`
	c, err := ParseConfig([]byte(`{` + base + `}`))
	if err != nil {
		t.Fatal(err)
	}
	if c.EmbeddingMultiplier != 1 || c.QueryScale != 1 || c.ResidualMultiplier != 1 || c.LogitsScaling != 1 || c.TieWordEmbeddings {
		t.Errorf("defaults %+v", c)
	}
	c, err = ParseConfig([]byte(`{` + base + `, "embedding_multiplier": 12, "attention_multiplier": 0.0078125, "residual_multiplier": 0.22, "logits_scaling": 8, "tie_word_embeddings": true}`))
	if err != nil {
		t.Fatal(err)
	}
	if c.embedScale() != 12 || c.QueryScale != 0.0078125 || c.residualScale() != 0.22 || c.LogitsScaling != 8 {
		t.Errorf("parsed %+v", c)
	}
}

// YaRN's settings as transformers' current code and vLLM read them.
func TestParseYaRN(t *testing.T) {
	const base = `"model_type": "llama", "vocab_size": 10, "hidden_size": 16, "intermediate_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2`
	for _, tc := range []struct {
		name, extra      string
		orig, fast, slow float64
		truncate         bool
		attention        float64
	}{
		{"qwen", `, "max_position_embeddings": 131072, "rope_scaling": {"type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32768}`,
			32768, 32, 1, true, 0.1*math.Log(4) + 1},
		{"from max_position_embeddings", `, "max_position_embeddings": 4096, "rope_scaling": {"rope_type": "yarn", "factor": 2, "beta_fast": 0, "truncate": false}`,
			4096, 32, 1, false, 0.1*math.Log(2) + 1},
		{"mscale", `, "max_position_embeddings": 4096, "rope_scaling": {"rope_type": "yarn", "factor": 40, "mscale": 1, "mscale_all_dim": 0.5, "beta_fast": 16, "beta_slow": 2}`,
			4096, 16, 2, true, (0.1*math.Log(40) + 1) / (0.05*math.Log(40) + 1)},
		{"attention factor", `, "max_position_embeddings": 8192, "rope_parameters": {"rope_type": "yarn", "rope_theta": 1e6, "factor": 8, "original_max_position_embeddings": 1024, "attention_factor": 1.25}`,
			1024, 32, 1, true, 1.25},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ParseConfig([]byte(`{` + base + tc.extra + `}`))
			if err != nil {
				t.Fatal(err)
			}
			rs := c.RopeScaling
			if rs == nil || rs.Type != "yarn" || rs.OriginalMaxPositionEmbeddings != tc.orig || rs.BetaFast != tc.fast || rs.BetaSlow != tc.slow ||
				rs.Truncate != tc.truncate || math.Abs(rs.AttentionFactor-tc.attention) > 1e-12 {
				t.Errorf("parsed %+v", rs)
			}
		})
	}
}

// Phi-4-mini's rope: part of each head rotated, LongRoPE's short factors
// and attention factor, and sequences past the original length refused.
func TestPhi3LongRoPE(t *testing.T) {
	const base = `"model_type": "phi3", "vocab_size": 10, "hidden_size": 16, "intermediate_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2, "max_position_embeddings": 131072, "original_max_position_embeddings": 4096`
	c, err := ParseConfig([]byte(`{` + base + `, "partial_rotary_factor": 0.75, "rope_scaling": {"type": "longrope", "short_factor": [1, 1, 1], "long_factor": [2, 2, 2]}}`))
	if err != nil {
		t.Fatal(err)
	}
	rs := c.RopeScaling
	if c.ropeDim() != 6 || rs.Type != "longrope" || rs.Factor != 32 || math.Abs(rs.AttentionFactor-math.Sqrt(1+math.Log(32)/math.Log(4096))) > 1e-12 || c.MaxSequence() != 4096 {
		t.Errorf("parsed rotary dim %d, %+v, max sequence %d", c.ropeDim(), rs, c.MaxSequence())
	}
	for _, tc := range []struct{ extra, want string }{
		{`, "rope_scaling": {"type": "longrope", "short_factor": [1, 1], "long_factor": [2, 2]}`, "longrope needs short_factor, a list of 4 numbers"},
		{`, "rope_scaling": {"type": "longrope", "short_factor": [1, 1, 0, 1], "long_factor": [2, 2, 2, 2]}`, "longrope short_factor[2]: want a positive number, got 0"},
		{`, "partial_rotary_factor": 0.1`, "partial_rotary_factor 0.1 gives 0 rotated values per head of 8"},
	} {
		if _, err := ParseConfig([]byte(`{` + base + tc.extra + `}`)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want %q", tc.extra, err, tc.want)
		}
	}

	m := mustLoad(t, filepath.Join("testdata", "arch", "phi3-longrope"))
	b := &Batch{}
	b.Add(make([]int32, 40), make([]int32, 25)) // 65 tokens, past original_max_position_embeddings 64
	if _, _, err := m.Forward(&Workspace{}, b); err == nil || !strings.Contains(err.Error(), "sequence 0 has 65 tokens, more than original_max_position_embeddings 64") {
		t.Errorf("Forward: got %v", err)
	}
	d := NewDecoder(m, nil)
	if _, err := d.Forward([]*KVCache{d.NewCache()}, [][]int32{make([]int32, 65)}); err == nil || !strings.Contains(err.Error(), "would reach 65 tokens") {
		t.Errorf("decoding: got %v", err)
	}
}
