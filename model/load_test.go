package model

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/relupo/relupo/safetensors"
)

// Save writes a folder Load reads back: in F32 exactly, in F16/BF16 rounded
// as PyTorch rounds, sharded or not, with config.json's dtype updated.
func TestSaveLoadRoundTrip(t *testing.T) {
	src := mustLoad(t, filepath.Join("testdata", "arch", "qwen3"))
	for _, tc := range []struct {
		dtype safetensors.DType
		shard int64
		tol   float64 // relative: F16 keeps 11 significant bits, BF16 8
		abs   float64 // F16 subnormals (below 6.1e-5) are spaced 2⁻²⁴ apart
	}{
		{safetensors.F32, 0, 0, 0},
		{safetensors.F16, 0, 1.0 / 2048, 0x1p-25},
		{safetensors.BF16, 20000, 1.0 / 256, 0},
	} {
		t.Run(string(tc.dtype), func(t *testing.T) {
			dir := t.TempDir()
			if err := src.Save(dir, tc.dtype, tc.shard); err != nil {
				t.Fatal(err)
			}
			got, dtype, err := Load(dir)
			if err != nil {
				t.Fatal(err)
			}
			if dtype != tc.dtype {
				t.Errorf("reloaded dtype %s, want %s", dtype, tc.dtype)
			}
			for i, w := range src.Params.Mem {
				if d := math.Abs(float64(got.Params.Mem[i] - w)); d > max(tc.tol*math.Abs(float64(w)), tc.abs) {
					t.Fatalf("value %d: %g, want %g", i, got.Params.Mem[i], w)
				}
			}
			b, _ := os.ReadFile(filepath.Join(dir, "config.json"))
			var raw map[string]any
			json.Unmarshal(b, &raw)
			names := map[safetensors.DType]string{"F32": "float32", "F16": "float16", "BF16": "bfloat16"}
			if raw["torch_dtype"] != names[tc.dtype] || raw["model_type"] != "qwen3" {
				t.Errorf("config.json torch_dtype %v model_type %v", raw["torch_dtype"], raw["model_type"])
			}
			if tc.shard > 0 {
				if _, err := os.Stat(filepath.Join(dir, "model.safetensors.index.json")); err != nil {
					t.Errorf("not sharded: %v", err)
				}
			}
		})
	}
}

// A config.json that disagrees with the weights is refused before anything
// is allocated from it.
func TestLoadMismatchedCheckpoint(t *testing.T) {
	src := mustLoad(t, filepath.Join("testdata", "arch", "llama-gqa-tied"))
	for _, tc := range []struct {
		name string
		edit func(map[string]any)
		want string
	}{
		{"huge vocab", func(c map[string]any) { c["vocab_size"] = 1 << 30 }, `tensor "model.embed_tokens.weight" has shape [96 48], config.json implies [1073741824 48]`},
		{"untied", func(c map[string]any) { c["tie_word_embeddings"] = false }, `no tensor "lm_head.weight"`},
		{"fewer layers", func(c map[string]any) { c["num_hidden_layers"] = 2 }, `config.json has num_hidden_layers 2, but the checkpoint's weights hold 3 layers`},
		{"more layers", func(c map[string]any) { c["num_hidden_layers"] = 4 }, `config.json has num_hidden_layers 4, but the checkpoint's weights hold 3 layers`},
		// A billion layers is refused before the parameter count or any
		// per-layer list is built (before, memory grew past 1.5 GiB).
		{"a billion layers", func(c map[string]any) { c["num_hidden_layers"] = 1e9 }, `num_hidden_layers 1000000000 is more than any model has (relupo accepts up to 4096)`},
		{"layers as a string", func(c map[string]any) { c["num_hidden_layers"] = "3" }, `num_hidden_layers: want a positive integer, got the string "3"`},
		// Without head_dim, 7 heads cannot split hidden 90: say so, not
		// "head_dim 12 must be even", a value the config never set.
		{"heads do not divide hidden", func(c map[string]any) {
			c["num_attention_heads"], c["num_key_value_heads"], c["hidden_size"] = 7, 7, 90
			delete(c, "head_dim")
		},
			`hidden_size 90 is not a multiple of num_attention_heads 7`},
		{"odd derived head size", func(c map[string]any) {
			c["num_attention_heads"], c["num_key_value_heads"], c["hidden_size"] = 7, 7, 91
			delete(c, "head_dim")
		},
			`head_dim 13 (hidden_size 91 / num_attention_heads 7) must be even`},
		{"qwen2 biases", func(c map[string]any) { c["model_type"] = "qwen2" }, `no tensor "model.layers.0.self_attn.q_proj.bias"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := src.Save(dir, safetensors.F32, 0); err != nil {
				t.Fatal(err)
			}
			b, _ := os.ReadFile(filepath.Join(dir, "config.json"))
			var raw map[string]any
			json.Unmarshal(b, &raw)
			tc.edit(raw)
			b, _ = json.Marshal(raw)
			os.WriteFile(filepath.Join(dir, "config.json"), b, 0o644)
			_, _, err := Load(dir)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), dir) {
				t.Fatalf("got %v, want an error naming %s and containing %q", err, dir, tc.want)
			}
		})
	}
	t.Run("no weights", func(t *testing.T) {
		dir := t.TempDir()
		b, _ := json.Marshal(src.Config.Raw)
		os.WriteFile(filepath.Join(dir, "config.json"), b, 0o644)
		_, _, err := Load(dir)
		if err == nil || !strings.Contains(err.Error(), dir) {
			t.Fatalf("got %v", err)
		}
		t.Log(err)
	})
}
