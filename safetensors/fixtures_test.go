package safetensors

import (
	"path/filepath"
	"slices"
	"testing"

	"github.com/relupo/relupo/internal/testutil"
)

func TestFixtures(t *testing.T) {
	tests := []struct {
		name   string
		path   []string
		dtype  DType
		shapes map[string][]int
		count  int // tensors in the file
	}{
		{"tiny-llama F32", []string{"fixtures", "golden", "tiny-llama", "model.safetensors"}, F32, map[string][]int{
			"model.layers.0.self_attn.q_proj.weight": {64, 64},
			"model.embed_tokens.weight":              {256, 64},
			"lm_head.weight":                         {256, 64},
			"model.layers.0.mlp.down_proj.weight":    {64, 176},
			"model.norm.weight":                      {64},
		}, 21},
		{"tiny-random-llama F16", []string{"fixtures", "models", "tiny-random-llama", "model.safetensors"}, F16, map[string][]int{
			"model.embed_tokens.weight":           {32000, 16},
			"model.layers.0.mlp.down_proj.weight": {16, 64},
		}, 21},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := testutil.SharedPath(t, tt.path...)
			f, err := Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if got := len(f.Names()); got != tt.count {
				t.Errorf("%d tensors, want %d", got, tt.count)
			}
			if got := f.Metadata()["format"]; got != "pt" {
				t.Errorf(`metadata "format" = %q, want "pt"`, got)
			}
			for name, shape := range tt.shapes {
				ti, ok := f.Info(name)
				if !ok || ti.DType != tt.dtype || !slices.Equal(ti.Shape, shape) {
					t.Errorf("Info(%q) = %+v, %v; want %s %v", name, ti, ok, tt.dtype, shape)
				}
			}
			// Every tensor converts, and its values are finite and not all zero.
			for _, name := range f.Names() {
				v, err := f.Float32(name)
				if err != nil {
					t.Fatal(err)
				}
				ti, _ := f.Info(name)
				if len(v) != ti.NumElements() {
					t.Fatalf("Float32(%q) has %d values, want %d", name, len(v), ti.NumElements())
				}
				nonzero := false
				for _, x := range v {
					if x != x || x > 1e30 || x < -1e30 {
						t.Fatalf("Float32(%q) holds %v", name, x)
					}
					nonzero = nonzero || x != 0
				}
				if !nonzero {
					t.Errorf("Float32(%q) is all zeros", name)
				}
			}
			// The folder opens as a checkpoint with the same tensors.
			c, err := OpenCheckpoint(filepath.Dir(path))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if !slices.Equal(c.Names(), f.Names()) || c.DType() != tt.dtype {
				t.Errorf("checkpoint has %d tensors of %s, want %d of %s", len(c.Names()), c.DType(), len(f.Names()), tt.dtype)
			}
		})
	}
}

// TestFixtureF16Values checks F16 conversion against values written by
// PyTorch: converting back to F16 must give the stored bits.
func TestFixtureF16Values(t *testing.T) {
	f, err := Open(testutil.SharedPath(t, "fixtures", "models", "tiny-random-llama", "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	const name = "model.layers.0.mlp.down_proj.weight"
	raw, err := f.Raw(name)
	if err != nil {
		t.Fatal(err)
	}
	v, err := f.Float32(name)
	if err != nil {
		t.Fatal(err)
	}
	for i, x := range v {
		if got, want := F32ToF16(x), uint16(raw[2*i])|uint16(raw[2*i+1])<<8; got != want {
			t.Fatalf("element %d: %v converts back to %#04x, stored %#04x", i, x, got, want)
		}
	}
}

func TestFixtureLogits(t *testing.T) {
	f, err := Open(testutil.SharedPath(t, "fixtures", "golden", "logits_policy.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ti, ok := f.Info("input_ids")
	if !ok || ti.DType != I64 || len(ti.Shape) != 2 || ti.Shape[0] != 8 {
		t.Fatalf("Info(input_ids) = %+v, %v; want I64 [8 T]", ti, ok)
	}
	ids, err := f.Int64s("input_ids")
	if err != nil {
		t.Fatal(err)
	}
	if len(ids) != ti.NumElements() {
		t.Fatalf("Int64s(input_ids) has %d values, want %d", len(ids), ti.NumElements())
	}
	for _, id := range ids {
		if id < 0 || id >= 256 { // the tiny model's vocabulary
			t.Fatalf("input_ids holds %d, outside the 256-token vocabulary", id)
		}
	}
	raw, err := f.Raw("input_ids")
	if err != nil || len(raw) != 8*len(ids) {
		t.Errorf("Raw(input_ids) = %d bytes, %v", len(raw), err)
	}
	if _, err := f.Float32("input_ids"); err == nil {
		t.Error("Float32(input_ids) converted an I64 tensor")
	}
	logits, err := f.Float32("logits")
	if lt, _ := f.Info("logits"); err != nil || len(logits) != lt.NumElements() || lt.Shape[0] != 8 || lt.Shape[1] != ti.Shape[1] {
		t.Errorf("logits: %v, shape %v", err, lt.Shape)
	}
}
