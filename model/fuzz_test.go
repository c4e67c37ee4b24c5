package model

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzParseConfig feeds arbitrary config.json bytes to ParseConfig. It must
// never panic, and a config it accepts must be one the engine can build:
// heads that group evenly, an even head size, per-layer lists of the right
// length, and a parameter count within bounds.
func FuzzParseConfig(f *testing.F) {
	seeds, _ := filepath.Glob(filepath.Join("testdata", "*", "*", "config.json"))
	for _, path := range seeds {
		if b, err := os.ReadFile(path); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte(`{"model_type": "smollm3", "vocab_size": 10, "hidden_size": 16, "intermediate_size": 16, "num_hidden_layers": 3, "num_attention_heads": 4, "no_rope_layers": [1, 0, 1], "use_sliding_window": true, "sliding_window": 4}`))
	f.Add([]byte(`{"model_type": "gemma3_text", "vocab_size": 10, "hidden_size": 16, "intermediate_size": 16, "num_hidden_layers": 2, "num_attention_heads": 4, "layer_types": ["sliding_attention", "full_attention"], "rope_parameters": {"sliding_attention": {"rope_theta": 10000}, "full_attention": {"rope_theta": 1000000, "rope_type": "linear", "factor": 8}}}`))
	f.Add([]byte(`{"model_type": "llama", "vocab_size": 10, "hidden_size": 16, "intermediate_size": 16, "num_hidden_layers": 1, "num_attention_heads": 4, "rope_scaling": {"rope_type": "llama3", "factor": 8, "low_freq_factor": 1, "high_freq_factor": 4, "original_max_position_embeddings": 8192}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseConfig(b)
		if err != nil {
			return
		}
		if c.NumHeads <= 0 || c.NumKVHeads <= 0 || c.NumHeads%c.NumKVHeads != 0 {
			t.Fatalf("accepted heads %d / kv heads %d", c.NumHeads, c.NumKVHeads)
		}
		if c.HeadDim <= 0 || c.HeadDim%2 != 0 || c.HiddenSize <= 0 || c.VocabSize <= 0 || c.IntermediateSize <= 0 {
			t.Fatalf("accepted sizes %+v", c)
		}
		if c.NumLayers <= 0 || c.NumLayers > MaxLayers {
			t.Fatalf("accepted %d layers", c.NumLayers)
		}
		for name, l := range map[string][]bool{"SlidingLayers": c.SlidingLayers, "NoRope": c.NoRope} {
			if l != nil && len(l) != c.NumLayers {
				t.Fatalf("%s has %d entries for %d layers", name, len(l), c.NumLayers)
			}
		}
		if c.SlidingWindow < 0 {
			t.Fatalf("accepted sliding window %d", c.SlidingWindow)
		}
		if n := c.NumParams(); n <= 0 || n > 1<<40 {
			t.Fatalf("accepted %d parameters", n)
		}
		for l := range c.NumLayers {
			_ = c.LayerWindow(l)
			_ = c.localRope(l)
		}
	})
}
