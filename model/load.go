package model

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/relupo/relupo/internal/atomicfile"
	"github.com/relupo/relupo/safetensors"
)

// Load reads a Hugging Face model folder: config.json and its weights
// (model.safetensors, or shards listed in model.safetensors.index.json), in
// F32, F16 or BF16. Weights are converted to float32. It also returns the
// checkpoint's floating-point dtype, so that a save can keep it.
func Load(dir string) (*Model, safetensors.DType, error) { return load(dir, false) }

// load is Load, or with trunkOnly LoadTrunk.
func load(dir string, trunkOnly bool) (*Model, safetensors.DType, error) {
	cfg, ck, err := openChecked(dir, trunkOnly)
	if err != nil {
		return nil, "", err
	}
	defer ck.Close()
	m := New(cfg)
	if err := m.copyWeights(ck); err != nil {
		return nil, "", err
	}
	return m, ck.DType(), nil
}

// openChecked reads dir's config.json and opens its checkpoint, checked
// against the configuration. Names and shapes are checked before anything
// is allocated: the checkpoint's sizes are bounded by its files, so a
// config.json cannot make relupo allocate more than the weights on disk
// justify. With trunkOnly the configuration is tied, so that no lm_head is
// expected or allocated (LoadTrunk). The caller closes the checkpoint.
func openChecked(dir string, trunkOnly bool) (Config, *safetensors.Checkpoint, error) {
	cfg, err := LoadConfig(dir)
	if err != nil {
		return Config{}, nil, err
	}
	if trunkOnly {
		cfg.TieWordEmbeddings = true
	}
	ck, err := safetensors.OpenCheckpoint(dir)
	if err != nil {
		return Config{}, nil, fmt.Errorf("model: %w", err)
	}
	if err := cfg.checkCheckpoint(ck); err != nil {
		ck.Close()
		return Config{}, nil, err
	}
	return cfg, ck, nil
}

// ignoredTensor reports names that checkpoints may carry and the model
// rightly ignores: rotary buffers saved by old transformers versions, a
// duplicate lm_head when the embeddings are tied, the score head of a
// *ForSequenceClassification checkpoint and the heads of ArmoRM's
// LlamaForRewardModelWithGating (reward models, loaded with LoadTrunk;
// package score reads the heads itself).
func (c Config) ignoredTensor(name string) bool {
	if strings.HasSuffix(name, ".rotary_emb.inv_freq") {
		return true
	}
	if name == ScoreHeadTensor && c.SequenceClassifier() {
		return true
	}
	if c.GatingRewardModel() && (name == "regression_layer.weight" || name == "reward_transform_matrix" || strings.HasPrefix(name, "gating.")) {
		return true
	}
	return c.TieWordEmbeddings && name == "lm_head.weight"
}

// LoadWeights copies every parameter from the checkpoint, checking names and
// shapes. A missing tensor, a shape mismatch, or a tensor the architecture
// does not have (for example a bias the config did not announce) is an error.
func (m *Model) LoadWeights(ck *safetensors.Checkpoint) error {
	if err := m.Config.checkCheckpoint(ck); err != nil {
		return err
	}
	return m.copyWeights(ck)
}

// copyWeights reads every parameter from a checkpoint already checked
// against the configuration.
func (m *Model) copyWeights(ck *safetensors.Checkpoint) error {
	for _, t := range m.Params.Tensors() {
		data, err := ck.Float32(t.Name)
		if err != nil {
			return fmt.Errorf("model: %w", err)
		}
		copy(t.Data, data)
	}
	return nil
}

// checkCheckpoint verifies that the checkpoint holds exactly the tensors the
// configuration implies, with the right shapes and floating dtypes.
func (c Config) checkCheckpoint(ck *safetensors.Checkpoint) error {
	// The number of layers first, from the names alone: the list of
	// expected tensors below grows with num_hidden_layers.
	if n := checkpointLayers(ck.Names()); n != c.NumLayers {
		return fmt.Errorf("model: %s: config.json has num_hidden_layers %d, but the checkpoint's weights hold %d layers", ck.Dir(), c.NumLayers, n)
	}
	want := map[string]bool{}
	for _, t := range c.Tensors() {
		want[t.Name] = true
		info, ok := ck.Info(t.Name)
		if !ok {
			return fmt.Errorf("model: %s: checkpoint has no tensor %q", ck.Dir(), t.Name)
		}
		if !slices.Equal(info.Shape, t.Shape) {
			return fmt.Errorf("model: %s: tensor %q has shape %v, config.json implies %v", ck.Dir(), t.Name, info.Shape, t.Shape)
		}
		if !info.DType.IsFloat() {
			return fmt.Errorf("model: %s: tensor %q has dtype %s; weights must be F32, F16 or BF16", ck.Dir(), t.Name, info.DType)
		}
	}
	for _, name := range ck.Names() {
		if !want[name] && !c.ignoredTensor(name) {
			return fmt.Errorf("model: %s: unexpected tensor %q for a %s model with this config.json", ck.Dir(), name, c.ModelType)
		}
	}
	return nil
}

// checkpointLayers counts the decoder layers a checkpoint's tensor names
// hold: one more than the largest N of "model.layers.N.…".
func checkpointLayers(names []string) int {
	n := 0
	for _, name := range names {
		rest, ok := strings.CutPrefix(name, "model.layers.")
		if !ok {
			continue
		}
		idx, _, _ := strings.Cut(rest, ".")
		if k, err := strconv.Atoi(idx); err == nil && k >= 0 && k+1 > n {
			n = k + 1
		}
	}
	return n
}

// DefaultMaxShardBytes is the shard size Hugging Face's save_pretrained uses by default (5 GB).
const DefaultMaxShardBytes = 5_000_000_000

// Save writes the model to dir as Hugging Face does: config.json and
// model.safetensors (sharded above maxShardBytes, 0 for the default), with
// weights stored as dtype (F32, F16 or BF16). Every file is written to a
// temporary name and renamed, so a crash never leaves a half-written file.
func (m *Model) Save(dir string, dtype safetensors.DType, maxShardBytes int64) error {
	if m.Params.Frozen {
		return fmt.Errorf("model: cannot save a model whose base weights are held in bfloat16 as a frozen base (save its adapter, or merge it into the base loaded in float32)")
	}
	if maxShardBytes <= 0 {
		maxShardBytes = DefaultMaxShardBytes
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("model: %w", err)
	}
	var ts []safetensors.Tensor
	for _, t := range m.Params.Tensors() {
		ts = append(ts, safetensors.Tensor{Name: t.Name, DType: dtype, Shape: t.Shape, Data: t.Data})
	}
	if err := safetensors.WriteCheckpoint(dir, ts, map[string]string{"format": "pt"}, maxShardBytes); err != nil {
		return fmt.Errorf("model: %w", err)
	}
	return m.Config.Save(filepath.Join(dir, "config.json"), dtype)
}

// Save writes c's config.json (Raw, as read) to path, replaced atomically,
// with its dtype key set to dtype: "dtype" when Raw has it (transformers 5),
// else "torch_dtype".
func (c Config) Save(path string, dtype safetensors.DType) error {
	raw := map[string]any{}
	for k, v := range c.Raw {
		raw[k] = v
	}
	names := map[safetensors.DType]string{safetensors.F32: "float32", safetensors.F16: "float16", safetensors.BF16: "bfloat16"}
	if _, v5 := raw["dtype"]; v5 {
		raw["dtype"] = names[dtype]
	} else {
		raw["torch_dtype"] = names[dtype]
	}
	b, err := json.MarshalIndent(raw, "", "  ")
	if err != nil {
		return fmt.Errorf("model: %w", err)
	}
	return atomicfile.WriteFile(path, append(b, '\n'))
}
