// Package peft reads and writes LoRA adapters as Hugging Face PEFT keeps
// them: a folder with adapter_config.json (PEFT's LoraConfig keys) and
// adapter_model.safetensors (the lora_A and lora_B weights under PEFT's
// names, see model.Adapter), which PeftModel.from_pretrained loads; and
// merges an adapter into a model's weights (W += scale·B·A), as PEFT's
// merge_and_unload does.
//
// Reading checks the folder against the base model it is meant for, and
// refuses, with one error naming the file and the tensor or key, what
// relupo cannot apply exactly: target modules the model lacks, tensors whose
// shapes disagree with r or with the base's layers (an adapter made for
// another base), missing or extra tensors, and PEFT features relupo does
// not implement (bias other than "none", modules_to_save, DoRA, per-module
// ranks, fan_in_fan_out, a subset of layers).
package peft

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/relupo/relupo/model"
)

// The file names of a PEFT adapter folder.
const (
	ConfigFile  = "adapter_config.json"
	WeightsFile = "adapter_model.safetensors"
)

// Config is an adapter folder's adapter_config.json as relupo reads it.
type Config struct {
	// LoRA is the adapter's shape and scale, its targets in
	// model.LoRAModules order.
	LoRA model.LoRAConfig
	// BaseModel is base_model_name_or_path: the model the adapter was
	// trained on, as its trainer named it (informative only; the tensors'
	// shapes decide whether it fits).
	BaseModel string
	// Revision is the base model's revision, when recorded.
	Revision string
}

// IsAdapter reports whether dir holds an adapter_config.json.
func IsAdapter(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, ConfigFile))
	return err == nil
}

// rawConfig is the part of adapter_config.json relupo reads; json.RawMessage
// fields take any JSON value, so that the checks below can say what was
// wrong with one.
type rawConfig struct {
	PeftType          string          `json:"peft_type"`
	TaskType          *string         `json:"task_type"`
	Base              *string         `json:"base_model_name_or_path"`
	Revision          *string         `json:"revision"`
	R                 json.RawMessage `json:"r"`
	Alpha             json.RawMessage `json:"lora_alpha"`
	Dropout           json.RawMessage `json:"lora_dropout"`
	Targets           json.RawMessage `json:"target_modules"`
	RSLoRA            json.RawMessage `json:"use_rslora"`
	Bias              *string         `json:"bias"`
	FanInFanOut       json.RawMessage `json:"fan_in_fan_out"`
	ModulesToSave     json.RawMessage `json:"modules_to_save"`
	UseDoRA           json.RawMessage `json:"use_dora"`
	LoRABias          json.RawMessage `json:"lora_bias"`
	RankPattern       json.RawMessage `json:"rank_pattern"`
	AlphaPattern      json.RawMessage `json:"alpha_pattern"`
	LayersToTransform json.RawMessage `json:"layers_to_transform"`
	LayerReplication  json.RawMessage `json:"layer_replication"`
	ExcludeModules    json.RawMessage `json:"exclude_modules"`
	TargetParameters  json.RawMessage `json:"target_parameters"`
	TrainableTokens   json.RawMessage `json:"trainable_token_indices"`
	UseQALoRA         json.RawMessage `json:"use_qalora"`
	AloraTokens       json.RawMessage `json:"alora_invocation_tokens"`
}

// empty reports whether a raw JSON value is absent, null, false, {} or [].
func empty(raw json.RawMessage) bool {
	switch s := strings.Join(strings.Fields(string(raw)), ""); s {
	case "", "null", "false", "{}", "[]":
		return true
	}
	return false
}

// ReadConfig reads dir/adapter_config.json for a base model of
// configuration base: its LoRA settings, with the target modules resolved
// against the base's module names as PEFT resolves them (a list of names,
// each matching a module whose name is it or ends in "." and it; a string,
// matched as a regular expression against the whole module name; or
// "all-linear").
func ReadConfig(dir string, base model.Config) (Config, error) {
	path := filepath.Join(dir, ConfigFile)
	b, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return Config{}, fmt.Errorf("peft: %s is not an adapter folder: it has no %s", dir, ConfigFile)
		}
		return Config{}, fmt.Errorf("peft: %w", err)
	}
	c, err := parseConfig(b, base)
	if err != nil {
		return Config{}, fmt.Errorf("peft: %s: %w", path, err)
	}
	return c, nil
}

// parseConfig is ReadConfig on the file's bytes.
func parseConfig(b []byte, base model.Config) (Config, error) {
	var raw rawConfig
	if err := json.Unmarshal(b, &raw); err != nil {
		return Config{}, fmt.Errorf("not valid JSON: %w", err)
	}
	if raw.PeftType != "LORA" {
		return Config{}, fmt.Errorf("peft_type %q: relupo reads LoRA adapters (peft_type \"LORA\") only", raw.PeftType)
	}
	if raw.TaskType != nil && *raw.TaskType != "CAUSAL_LM" {
		return Config{}, fmt.Errorf("task_type %q: relupo reads causal language-model adapters (CAUSAL_LM) only", *raw.TaskType)
	}
	var c Config
	if raw.Base != nil {
		c.BaseModel = *raw.Base
	}
	if raw.Revision != nil {
		c.Revision = *raw.Revision
	}
	var bad []string
	if raw.Bias != nil && *raw.Bias != "none" {
		bad = append(bad, fmt.Sprintf("bias %q (trained biases; relupo supports bias \"none\")", *raw.Bias))
	}
	unsupported := []struct {
		key string
		val json.RawMessage
		why string
	}{
		{"modules_to_save", raw.ModulesToSave, "fully trained extra modules are not supported"},
		{"use_dora", raw.UseDoRA, "DoRA is not supported"},
		{"lora_bias", raw.LoRABias, "a bias on lora_B is not supported"},
		{"fan_in_fan_out", raw.FanInFanOut, "transposed (Conv1D) weights are not supported"},
		{"rank_pattern", raw.RankPattern, "per-module ranks are not supported"},
		{"alpha_pattern", raw.AlphaPattern, "per-module alphas are not supported"},
		{"layers_to_transform", raw.LayersToTransform, "adapters on a subset of the layers are not supported"},
		{"layer_replication", raw.LayerReplication, "layer replication is not supported"},
		{"exclude_modules", raw.ExcludeModules, "exclusions are not supported"},
		{"target_parameters", raw.TargetParameters, "adapters on parameters are not supported"},
		{"trainable_token_indices", raw.TrainableTokens, "trainable tokens are not supported"},
		{"use_qalora", raw.UseQALoRA, "QA-LoRA is not supported"},
		{"alora_invocation_tokens", raw.AloraTokens, "activated LoRA is not supported"},
	}
	for _, u := range unsupported {
		if !empty(u.val) {
			bad = append(bad, fmt.Sprintf("%s %s (%s)", u.key, compact(u.val), u.why))
		}
	}
	if len(bad) > 0 {
		return Config{}, fmt.Errorf("unsupported: %s", strings.Join(bad, "; "))
	}
	var err error
	lc := &c.LoRA
	if lc.R, err = intValue("r", raw.R); err != nil {
		return Config{}, err
	}
	if lc.Alpha, err = number("lora_alpha", raw.Alpha, 8); err != nil { // PEFT's default lora_alpha
		return Config{}, err
	}
	if lc.Dropout, err = number("lora_dropout", raw.Dropout, 0); err != nil {
		return Config{}, err
	}
	if !empty(raw.RSLoRA) {
		if err := json.Unmarshal(raw.RSLoRA, &lc.RSLoRA); err != nil {
			return Config{}, fmt.Errorf("use_rslora %s: want true or false", compact(raw.RSLoRA))
		}
	}
	if lc.Targets, err = resolveTargets(raw.Targets, base.NumLayers); err != nil {
		return Config{}, err
	}
	if err := lc.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

func compact(raw json.RawMessage) string {
	s := strings.Join(strings.Fields(string(raw)), " ")
	if len(s) > 80 {
		s = s[:77] + "..."
	}
	return s
}

func intValue(key string, raw json.RawMessage) (int, error) {
	if empty(raw) {
		return 0, fmt.Errorf("%s is missing", key)
	}
	var f float64
	if err := json.Unmarshal(raw, &f); err != nil || f != math.Trunc(f) || f < 1 || f > 1<<20 {
		return 0, fmt.Errorf("%s %s: want a positive integer", key, compact(raw))
	}
	return int(f), nil
}

func number(key string, raw json.RawMessage, def float64) (float64, error) {
	if empty(raw) {
		return def, nil
	}
	var f float64
	if err := json.Unmarshal(raw, &f); err != nil {
		return 0, fmt.Errorf("%s %s: want a number", key, compact(raw))
	}
	return f, nil
}

// moduleNames are the names of a decoder's linear layers that PEFT matches
// target_modules against ("model.layers.N.self_attn.q_proj", …), and of
// the modules beyond them that a target may name but relupo cannot adapt.
func moduleNames(layers int) (adaptable [][2]string, other []string) {
	for l := range layers {
		for _, m := range model.LoRAModules {
			block := "self_attn"
			if m == "gate_proj" || m == "up_proj" || m == "down_proj" {
				block = "mlp"
			}
			adaptable = append(adaptable, [2]string{fmt.Sprintf("model.layers.%d.%s.%s", l, block, m), m})
		}
	}
	return adaptable, []string{"lm_head", "model.embed_tokens"}
}

// resolveTargets turns target_modules into module names in
// model.LoRAModules order, requiring the same modules in every layer.
func resolveTargets(raw json.RawMessage, layers int) ([]string, error) {
	if empty(raw) {
		return nil, errors.New("target_modules is missing (relupo needs the adapter's modules named)")
	}
	var match func(name string) bool
	var list []string
	var pattern string
	if err := json.Unmarshal(raw, &list); err == nil {
		match = func(name string) bool {
			for _, t := range list {
				if name == t || strings.HasSuffix(name, "."+t) {
					return true
				}
			}
			return false
		}
	} else if err := json.Unmarshal(raw, &pattern); err == nil {
		if pattern == "all-linear" {
			return slices.Clone(model.LoRAModules), nil
		}
		re, err := regexp.Compile(`^(?:` + pattern + `)$`)
		if err != nil {
			return nil, fmt.Errorf("target_modules %q: not a regular expression relupo can read: %v", pattern, err)
		}
		match = re.MatchString
	} else {
		return nil, fmt.Errorf("target_modules %s: want a list of module names or a string", compact(raw))
	}
	adaptable, other := moduleNames(max(layers, 1))
	for _, name := range other {
		if match(name) {
			return nil, fmt.Errorf("target_modules %s names %s: relupo's adapters cover the decoder layers' linear layers (%s) only", compact(raw), name, strings.Join(model.LoRAModules, ", "))
		}
	}
	perLayer := make([]map[string]bool, max(layers, 1))
	for i, nm := range adaptable {
		l := i / len(model.LoRAModules)
		if perLayer[l] == nil {
			perLayer[l] = map[string]bool{}
		}
		if match(nm[0]) {
			perLayer[l][nm[1]] = true
		}
	}
	for _, t := range list { // every listed name must match a module
		found := false
		for _, nm := range adaptable {
			if nm[0] == t || strings.HasSuffix(nm[0], "."+t) {
				found = true
				break
			}
		}
		if !found {
			return nil, fmt.Errorf("target_modules names %q, which this model lacks: its adaptable modules are %s", t, strings.Join(model.LoRAModules, ", "))
		}
	}
	var out []string
	for _, m := range model.LoRAModules {
		if perLayer[0][m] {
			out = append(out, m)
		}
	}
	for l := 1; l < len(perLayer); l++ {
		for _, m := range model.LoRAModules {
			if perLayer[l][m] != perLayer[0][m] {
				return nil, fmt.Errorf("target_modules %s adapts %s in some layers only (layer %d differs from layer 0): relupo supports the same modules in every layer", compact(raw), m, l)
			}
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("target_modules %s matches none of this model's modules (%s)", compact(raw), strings.Join(model.LoRAModules, ", "))
	}
	return out, nil
}

// configJSON is adapter_config.json as PEFT 0.19 writes it for a LoRA
// adapter of a causal language model, with relupo's values.
func configJSON(c Config) ([]byte, error) {
	targets := c.LoRA.Targets
	if targets == nil {
		targets = []string{}
	}
	m := map[string]any{
		"alora_invocation_tokens": nil,
		"alpha_pattern":           map[string]any{},
		"arrow_config":            nil,
		"auto_mapping":            nil,
		"base_model_name_or_path": c.BaseModel,
		"bias":                    "none",
		"corda_config":            nil,
		"ensure_weight_tying":     false,
		"eva_config":              nil,
		"exclude_modules":         nil,
		"fan_in_fan_out":          false,
		"inference_mode":          true,
		"init_lora_weights":       true,
		"layer_replication":       nil,
		"layers_pattern":          nil,
		"layers_to_transform":     nil,
		"loftq_config":            map[string]any{},
		"lora_alpha":              c.LoRA.Alpha,
		"lora_bias":               false,
		"lora_dropout":            c.LoRA.Dropout,
		"lora_ga_config":          nil,
		"megatron_config":         nil,
		"megatron_core":           "megatron.core",
		"modules_to_save":         nil,
		"peft_type":               "LORA",
		"qalora_group_size":       16,
		"r":                       c.LoRA.R,
		"rank_pattern":            map[string]any{},
		"revision":                nil,
		"target_modules":          targets,
		"target_parameters":       nil,
		"task_type":               "CAUSAL_LM",
		"trainable_token_indices": nil,
		"use_bdlora":              nil,
		"use_dora":                false,
		"use_qalora":              false,
		"use_rslora":              c.LoRA.RSLoRA,
	}
	if c.Revision != "" {
		m["revision"] = c.Revision
	}
	b, err := json.MarshalIndent(m, "", "  ") // sorted keys, as PEFT's json.dumps(sort_keys=True)
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}
