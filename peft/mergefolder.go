package peft

import (
	"cmp"
	"fmt"
	"path/filepath"
	"slices"

	"github.com/relupo/relupo/kernels"
	"github.com/relupo/relupo/model"
	"github.com/relupo/relupo/safetensors"
)

// MergeFolder writes the base model folder baseDir with adapter a merged
// in, into outDir as Hugging Face's save_pretrained does: model.safetensors,
// or shards of at most maxShardBytes (0 for save_pretrained's 5 GB) with
// model.safetensors.index.json, all in dtype (F32, F16 or BF16), and
// config.json (the base's, with its dtype key set to dtype). It streams one
// tensor at a time: each is read from the base's files (widened exactly to
// float32), an adapted weight gets scale·(B·A) added in float32 (the
// product on pool, which must compute in float32), and the sum is rounded
// to dtype once. Memory is the largest tensor in float32, not the model, so
// a base held frozen in bfloat16 for training can be merged beside it.
func MergeFolder(baseDir string, a *model.Adapter, outDir string, dtype safetensors.DType, maxShardBytes int64, pool *kernels.Pool) error {
	switch dtype {
	case safetensors.F32, safetensors.F16, safetensors.BF16:
	default:
		return fmt.Errorf("peft: merge: cannot write dtype %q (want F32, F16 or BF16)", dtype)
	}
	cfg, err := model.LoadConfig(baseDir)
	if err != nil {
		return fmt.Errorf("peft: merge: %w", err)
	}
	if err := check(cfg, a); err != nil {
		return err
	}
	ck, err := safetensors.OpenCheckpoint(baseDir)
	if err != nil {
		return fmt.Errorf("peft: merge: %w", err)
	}
	defer ck.Close()
	adapted := map[string]*model.LoRA{}
	for l := range a.Layers {
		la := &a.Layers[l]
		for _, m := range []struct {
			name string
			lo   *model.LoRA
		}{{"self_attn.q_proj", la.Q}, {"self_attn.k_proj", la.K}, {"self_attn.v_proj", la.V}, {"self_attn.o_proj", la.O},
			{"mlp.gate_proj", la.Gate}, {"mlp.up_proj", la.Up}, {"mlp.down_proj", la.Down}} {
			if m.lo != nil {
				adapted[fmt.Sprintf("model.layers.%d.%s.weight", l, m.name)] = m.lo
			}
		}
	}
	scale := a.Config.Scale()
	var delta []float32 // B·A, reused: the writer holds one tensor at a time
	var srcs []safetensors.Source
	for _, t := range cfg.Tensors() {
		info, ok := ck.Info(t.Name)
		if !ok || !slices.Equal(info.Shape, t.Shape) {
			return fmt.Errorf("peft: merge: %s: tensor %q is missing or has another shape than config.json implies", baseDir, t.Name)
		}
		lo := adapted[t.Name]
		if lo != nil && (t.Shape[0] != lo.Out || t.Shape[1] != lo.In) {
			return fmt.Errorf("peft: merge: %s: tensor %q has shape %v, the adapter's product [%d %d]", baseDir, t.Name, t.Shape, lo.Out, lo.In)
		}
		srcs = append(srcs, safetensors.Source{Name: t.Name, DType: dtype, Shape: t.Shape, Data: func() ([]float32, error) {
			data, err := ck.Float32(t.Name)
			if err != nil || lo == nil {
				return data, err
			}
			if cap(delta) < len(data) {
				delta = make([]float32, len(data))
			}
			d := delta[:len(data)]
			kernels.MatMulNN(pool, d, lo.B, lo.A, lo.Out, lo.In, a.Config.R)
			for i, v := range d {
				data[i] += v * scale
			}
			return data, nil
		}})
	}
	if err := safetensors.WriteCheckpointFrom(outDir, srcs, map[string]string{"format": "pt"}, cmp.Or(maxShardBytes, model.DefaultMaxShardBytes)); err != nil {
		return fmt.Errorf("peft: merge: %w", err)
	}
	if err := cfg.Save(filepath.Join(outDir, "config.json"), dtype); err != nil {
		return fmt.Errorf("peft: merge: %w", err)
	}
	return nil
}
