package peft

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/relupo/relupo/internal/atomicfile"
	"github.com/relupo/relupo/model"
	"github.com/relupo/relupo/safetensors"
)

// Load reads the adapter folder dir for a base model of configuration
// base: adapter_config.json, then adapter_model.safetensors, checked tensor
// by tensor against the configuration and the base's shapes. Any mismatch
// is one error naming the file and the tensor.
func Load(dir string, base model.Config) (*model.Adapter, Config, error) {
	c, err := ReadConfig(dir, base)
	if err != nil {
		return nil, Config{}, err
	}
	a, err := model.NewAdapter(base, c.LoRA)
	if err != nil {
		return nil, Config{}, fmt.Errorf("peft: %s: %w", filepath.Join(dir, ConfigFile), err)
	}
	path := filepath.Join(dir, WeightsFile)
	f, err := safetensors.Open(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, Config{}, fmt.Errorf("peft: %s has %s but no %s", dir, ConfigFile, WeightsFile)
		}
		return nil, Config{}, fmt.Errorf("peft: %w", err)
	}
	defer f.Close()
	if err := readTensors(f, path, a, c, base); err != nil {
		return nil, Config{}, fmt.Errorf("peft: %w", err)
	}
	return a, c, nil
}

// loraName parses a PEFT LoRA tensor name: layer, block, module and A or B.
var loraName = regexp.MustCompile(`^base_model\.model\.model\.layers\.([0-9]+)\.(self_attn|mlp)\.([a-z_]+)\.lora_(A|B)\.weight$`)

// readTensors fills a from the safetensors file f (at path), checking that
// it holds exactly a's tensors with a's shapes and finite values.
func readTensors(f *safetensors.File, path string, a *model.Adapter, c Config, base model.Config) error {
	want := a.Tensors()
	names := map[string]bool{}
	for _, t := range want {
		names[t.Name] = true
	}
	for _, name := range f.Names() {
		if names[name] {
			continue
		}
		m := loraName.FindStringSubmatch(name)
		if m == nil {
			return fmt.Errorf("%s: unexpected tensor %q: a LoRA adapter holds only base_model.model.model.layers.N.<block>.<module>.lora_A.weight and lora_B.weight", path, name)
		}
		l, _ := strconv.Atoi(m[1])
		switch {
		case l >= base.NumLayers:
			return fmt.Errorf("%s: tensor %q is for layer %d, but the base model has %d layers: the adapter was made for another base model (%s)", path, name, l, base.NumLayers, baseName(c))
		case !slices.Contains(model.LoRAModules, m[3]):
			return fmt.Errorf("%s: tensor %q adapts module %s, which this model lacks (its modules are %s)", path, name, m[3], strings.Join(model.LoRAModules, ", "))
		default:
			return fmt.Errorf("%s: tensor %q adapts %s, which %s's target_modules (%s) does not name", path, name, m[3], ConfigFile, strings.Join(c.LoRA.Targets, ", "))
		}
	}
	r := c.LoRA.R
	for _, t := range want {
		info, ok := f.Info(t.Name)
		if !ok {
			return fmt.Errorf("%s: no tensor %q (target_modules in %s names %s)", path, t.Name, ConfigFile, strings.Join(c.LoRA.Targets, ", "))
		}
		if !info.DType.IsFloat() {
			return fmt.Errorf("%s: tensor %q has dtype %s; LoRA weights must be F32, F16, BF16 or F64", path, t.Name, info.DType)
		}
		if !slices.Equal(info.Shape, t.Shape) {
			isA := strings.HasSuffix(t.Name, ".lora_A.weight")
			rank, dim := 0, 1 // lora_A is [r, in]
			what := "inputs"
			if !isA {
				rank, dim, what = 1, 0, "outputs" // lora_B is [out, r]
			}
			switch {
			case len(info.Shape) != 2:
				return fmt.Errorf("%s: tensor %q has shape %v, want %v", path, t.Name, info.Shape, t.Shape)
			case info.Shape[rank] != r:
				return fmt.Errorf("%s: tensor %q has shape %v: its rank %d disagrees with r %d in %s", path, t.Name, info.Shape, info.Shape[rank], r, ConfigFile)
			default:
				return fmt.Errorf("%s: tensor %q has shape %v, but the base model's layer has %d %s (want %v): the adapter was made for another base model (%s)", path, t.Name, info.Shape, t.Shape[dim], what, t.Shape, baseName(c))
			}
		}
		data, err := f.Float32(t.Name)
		if err != nil {
			return err
		}
		for i, v := range data {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				return fmt.Errorf("%s: tensor %q holds a non-finite value (%v at element %d)", path, t.Name, v, i)
			}
		}
		copy(t.Data, data)
	}
	return nil
}

func baseName(c Config) string {
	if c.BaseModel == "" {
		return "base_model_name_or_path is not recorded"
	}
	return "base_model_name_or_path " + c.BaseModel
}

// Write saves a as a PEFT adapter folder dir (created if needed):
// adapter_config.json with a's configuration and base as
// base_model_name_or_path, and adapter_model.safetensors with a's tensors
// in dtype (F32, F16 or BF16; PEFT saves an adapter in its own dtype,
// float32 for one trained in float32). Each file is written atomically.
func Write(dir string, a *model.Adapter, base string, dtype safetensors.DType) error {
	if dtype == "" {
		dtype = safetensors.F32
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("peft: %w", err)
	}
	var ts []safetensors.Tensor
	for _, t := range a.Tensors() {
		ts = append(ts, safetensors.Tensor{Name: t.Name, DType: dtype, Shape: t.Shape, Data: t.Data})
	}
	if err := safetensors.Write(filepath.Join(dir, WeightsFile), ts, map[string]string{"format": "pt"}); err != nil {
		return fmt.Errorf("peft: %w", err)
	}
	b, err := configJSON(Config{LoRA: a.Config, BaseModel: base})
	if err != nil {
		return fmt.Errorf("peft: %w", err)
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, ConfigFile), b); err != nil {
		return fmt.Errorf("peft: %w", err)
	}
	return nil
}
