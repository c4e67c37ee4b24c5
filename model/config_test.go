package model

import (
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
		{"rope type", `{"model_type": "llama", ` + base + `, "rope_scaling": {"rope_type": "yarn", "factor": 4}}`, `rope type "yarn" is not supported`},
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
