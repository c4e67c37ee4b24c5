package peft

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"

	"github.com/relupo/relupo/internal/atomicfile"
	"github.com/relupo/relupo/kernels"
	"github.com/relupo/relupo/model"
	"github.com/relupo/relupo/safetensors"
)

// MergeFolder writes the base model folder baseDir with adapter a merged
// in, as outDir/model.safetensors (one file, in dtype: F32, F16 or BF16)
// and outDir/config.json (the base's, with its dtype key set to dtype). It
// streams one tensor at a time: each is read from the base's files
// (widened exactly to float32), an adapted weight gets scale·(B·A) added
// in float32 (the product on pool, which must compute in float32), and the
// sum is rounded to dtype once. Memory is the largest tensor in float32,
// not the model, so a base held frozen in bfloat16 for training can be
// merged beside it.
func MergeFolder(baseDir string, a *model.Adapter, outDir string, dtype safetensors.DType, pool *kernels.Pool) error {
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
	tensors := cfg.Tensors()
	slices.SortFunc(tensors, func(x, y model.Tensor) int {
		if x.Name < y.Name {
			return -1
		}
		if x.Name > y.Name {
			return 1
		}
		return 0
	})
	for _, t := range tensors {
		info, ok := ck.Info(t.Name)
		if !ok || !slices.Equal(info.Shape, t.Shape) {
			return fmt.Errorf("peft: merge: %s: tensor %q is missing or has another shape than config.json implies", baseDir, t.Name)
		}
		if lo := adapted[t.Name]; lo != nil && (t.Shape[0] != lo.Out || t.Shape[1] != lo.In) {
			return fmt.Errorf("peft: merge: %s: tensor %q has shape %v, the adapter's product [%d %d]", baseDir, t.Name, t.Shape, lo.Out, lo.In)
		}
	}
	hdr, err := header(tensors, dtype)
	if err != nil {
		return fmt.Errorf("peft: merge: %w", err)
	}
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return fmt.Errorf("peft: merge: %w", err)
	}
	scale := a.Config.Scale()
	err = atomicfile.Write(filepath.Join(outDir, safetensors.SingleFileName), func(w io.Writer) error {
		if _, err := w.Write(hdr); err != nil {
			return err
		}
		var delta []float32
		buf := make([]byte, 0, 1<<16)
		for _, t := range tensors {
			data, err := ck.Float32(t.Name)
			if err != nil {
				return err
			}
			if lo := adapted[t.Name]; lo != nil {
				if cap(delta) < len(data) {
					delta = make([]float32, len(data))
				}
				d := delta[:len(data)]
				kernels.MatMulNN(pool, d, lo.B, lo.A, lo.Out, lo.In, a.Config.R)
				for i, v := range d {
					data[i] += v * scale
				}
			}
			for len(data) > 0 {
				n := min(len(data), cap(buf)/dtype.Size())
				buf = encode(buf[:0], dtype, data[:n])
				if _, err := w.Write(buf); err != nil {
					return err
				}
				data = data[n:]
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("peft: merge: %w", err)
	}
	return writeConfig(baseDir, outDir, dtype)
}

// header is a safetensors header (length prefix included) for tensors, in
// their order, all in dtype, with PyTorch's format metadata.
func header(tensors []model.Tensor, dtype safetensors.DType) ([]byte, error) {
	var h bytes.Buffer
	h.WriteString(`{"__metadata__":{"format":"pt"}`)
	var off int64
	for _, t := range tensors {
		n := int64(dtype.Size())
		for _, d := range t.Shape {
			n *= int64(d)
		}
		name, err := json.Marshal(t.Name)
		if err != nil {
			return nil, err
		}
		h.WriteByte(',')
		h.Write(name)
		h.WriteString(`:{"dtype":"` + string(dtype) + `","shape":[`)
		for j, d := range t.Shape {
			if j > 0 {
				h.WriteByte(',')
			}
			h.WriteString(strconv.Itoa(d))
		}
		fmt.Fprintf(&h, `],"data_offsets":[%d,%d]}`, off, off+n)
		off += n
	}
	h.WriteByte('}')
	for h.Len()%8 != 0 {
		h.WriteByte(' ')
	}
	out := binary.LittleEndian.AppendUint64(nil, uint64(h.Len()))
	return append(out, h.Bytes()...), nil
}

// encode appends vals in dtype, little-endian, rounding to nearest even.
func encode(buf []byte, dtype safetensors.DType, vals []float32) []byte {
	for _, v := range vals {
		switch dtype {
		case safetensors.F32:
			buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(v))
		case safetensors.BF16:
			buf = binary.LittleEndian.AppendUint16(buf, safetensors.F32ToBF16(v))
		case safetensors.F16:
			buf = binary.LittleEndian.AppendUint16(buf, safetensors.F32ToF16(v))
		}
	}
	return buf
}

// writeConfig copies baseDir's config.json into outDir with its dtype key
// (dtype in transformers 5, else torch_dtype) set to dtype.
func writeConfig(baseDir, outDir string, dtype safetensors.DType) error {
	b, err := os.ReadFile(filepath.Join(baseDir, "config.json"))
	if err != nil {
		return fmt.Errorf("peft: merge: %w", err)
	}
	var raw map[string]any
	if err := json.Unmarshal(b, &raw); err != nil {
		return fmt.Errorf("peft: merge: %s: %w", filepath.Join(baseDir, "config.json"), err)
	}
	name := map[safetensors.DType]string{safetensors.F32: "float32", safetensors.F16: "float16", safetensors.BF16: "bfloat16"}[dtype]
	if _, v5 := raw["dtype"]; v5 {
		raw["dtype"] = name
	} else {
		raw["torch_dtype"] = name
	}
	out, err := json.MarshalIndent(raw, "", "  ")
	if err != nil {
		return fmt.Errorf("peft: merge: %w", err)
	}
	return atomicfile.WriteFile(filepath.Join(outDir, "config.json"), append(out, '\n'))
}
