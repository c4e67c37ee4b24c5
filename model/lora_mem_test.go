package model

import (
	"math/rand/v2"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/relupo/relupo/kernels"
)

// floatsHeld counts the float32 capacity of the slices (and arrays of
// slices) among a struct's fields.
func floatsHeld(v reflect.Value) int64 {
	var n int64
	for i := 0; i < v.NumField(); i++ {
		f := v.Field(i)
		switch {
		case f.Kind() == reflect.Slice && f.Type().Elem().Kind() == reflect.Float32:
			n += int64(f.Cap())
		case f.Kind() == reflect.Array && f.Type().Elem().Kind() == reflect.Slice && f.Type().Elem().Elem().Kind() == reflect.Float32:
			for j := 0; j < f.Len(); j++ {
				n += int64(f.Index(j).Cap())
			}
		}
	}
	return n
}

// wsHeld counts the float32 values a workspace holds: its buffers, and
// each layer's.
func wsHeld(ws *Workspace) (total int64, perLayer []int64) {
	total = floatsHeld(reflect.ValueOf(ws).Elem())
	for i := range ws.layers {
		n := floatsHeld(reflect.ValueOf(&ws.layers[i]).Elem())
		perLayer = append(perLayer, n)
		total += n
	}
	return total, perLayer
}

// TestMemoryEstimateLoRA checks MemoryEstimateFor against what a training
// step holds, for full fine-tuning and LoRA (float32 and frozen bf16 base),
// with and without gradient checkpointing: the estimate bounds the
// weights, the trained weights' gradients and two moments, and the
// workspace after Forward and Backward. With checkpointing, every layer but
// the first holds exactly its input (tokens × hidden values), and the
// estimate falls.
func TestMemoryEstimateLoRA(t *testing.T) {
	pool := kernels.NewPool(2)
	defer pool.Close()
	for _, name := range []string{"llama-gqa-tied", "qwen3"} {
		base := mustLoad(t, filepath.Join("testdata", "arch", name))
		c := base.Config
		r := rand.New(rand.NewPCG(3, 4))
		b := &Batch{}
		for s := 0; s < 4; s++ {
			ids := make([]int32, 90)
			for i := range ids {
				ids[i] = int32(r.IntN(c.VocabSize))
			}
			b.Add(ids[:20], ids[20:])
		}
		N := len(b.Tokens)
		dS := make([]float64, b.NumSeqs())
		lc := LoRAConfig{R: 4, Alpha: 8, Dropout: 0.1, Targets: LoRAModules}
		for _, mode := range []string{"full", "lora", "lora-bf16"} {
			for _, ckpt := range []bool{false, true} {
				t.Run(name+"/"+mode+map[bool]string{false: "", true: "/checkpoint"}[ckpt], func(t *testing.T) {
					m := base
					o := MemoryOptions{Training: true, Checkpoint: ckpt}
					var weights int64 // bytes of the weights, the trained ones' gradients and moments
					switch mode {
					case "full":
						weights = 4 * 4 * int64(len(base.Params.Mem))
					case "lora", "lora-bf16":
						if mode == "lora-bf16" {
							m = NewFrozenBF16(c, 1)
							o.FrozenBF16 = true
							weights = 4*int64(len(m.Params.Mem)) + 2*int64(len(m.Params.frozenMem))
						} else {
							cp := *base
							m = &cp
							weights = 4 * int64(len(base.Params.Mem))
						}
						m.LoRA = randomAdapter(t, c, lc, 2)
						o.LoRA = &lc
						weights += 4 * 4 * int64(len(m.LoRA.Mem))
					}
					ws := &Workspace{Pool: pool, KeepLogits: true, Checkpoint: ckpt, DropoutSeed: 1}
					stepGrads(t, m, ws, b, dS)
					held, perLayer := wsHeld(ws)
					if got, est := weights+4*held, c.MemoryEstimateFor(N, o); got > est {
						t.Errorf("holds %d bytes, estimate %d", got, est)
					}
					if ckpt {
						for l, n := range perLayer[1:] {
							if n != int64(N*c.HiddenSize) {
								t.Errorf("layer %d holds %d values, want its input's %d", l+1, n, N*c.HiddenSize)
							}
						}
						plain := o
						plain.Checkpoint = false
						if c.MemoryEstimateFor(N, o) >= c.MemoryEstimateFor(N, plain) {
							t.Error("checkpointing does not lower the estimate")
						}
					}
				})
			}
		}
	}
}
