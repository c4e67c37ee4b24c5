package peft

import (
	"fmt"

	"github.com/relupo/relupo/kernels"
	"github.com/relupo/relupo/model"
)

// module pairs a targeted linear layer's adapter with its weight [out, in]
// in a model's float32 parameters.
type module struct {
	name string
	lora *model.LoRA
	w    []float32
}

// modules lists the adapted linear layers of layer l.
func modules(la *model.LayerAdapter, w *model.LayerParams) []module {
	all := []module{
		{"q_proj", la.Q, w.Wq}, {"k_proj", la.K, w.Wk}, {"v_proj", la.V, w.Wv}, {"o_proj", la.O, w.Wo},
		{"gate_proj", la.Gate, w.WGate}, {"up_proj", la.Up, w.WUp}, {"down_proj", la.Down, w.WDown},
	}
	out := all[:0]
	for _, m := range all {
		if m.lora != nil {
			out = append(out, m)
		}
	}
	return out
}

// Merge adds the adapter into the model's float32 weights, as PEFT's
// merge_and_unload does: W += scale·(B·A) for every targeted linear layer,
// the product B·A computed in float32 (on pool; nil runs serially), then
// scaled and added. A model loaded from a 2-byte checkpoint holds its
// weights widened exactly to float32, so saving the merged model in that
// dtype rounds each merged weight once, as PyTorch's in-place add into a
// bfloat16 or float16 weight does. A frozen base (model.Params.Frozen) has
// no float32 matrices: MergeFolder merges from its files instead.
func Merge(m *model.Model, a *model.Adapter, pool *kernels.Pool) error {
	if err := check(m.Config, a); err != nil {
		return err
	}
	scale := a.Config.Scale()
	var delta []float32
	for l := range a.Layers {
		for _, md := range modules(&a.Layers[l], &m.Params.Layers[l]) {
			lo := md.lora
			if len(md.w) != lo.Out*lo.In {
				return fmt.Errorf("peft: merge: layer %d %s: the model's weight has %d elements, the adapter's product %d×%d", l, md.name, len(md.w), lo.Out, lo.In)
			}
			if cap(delta) < lo.Out*lo.In {
				delta = make([]float32, lo.Out*lo.In)
			}
			d := delta[:lo.Out*lo.In]
			kernels.MatMulNN(pool, d, lo.B, lo.A, lo.Out, lo.In, a.Config.R) // B [out, r] · A [r, in]
			for i, v := range d {
				md.w[i] += v * scale
			}
		}
	}
	return nil
}

// check verifies that adapter a fits a model of configuration c.
func check(c model.Config, a *model.Adapter) error {
	if len(a.Layers) != c.NumLayers {
		return fmt.Errorf("peft: the adapter has %d layers, the model %d", len(a.Layers), c.NumLayers)
	}
	ref, err := model.NewAdapter(c, a.Config)
	if err != nil {
		return fmt.Errorf("peft: %w", err)
	}
	want, got := ref.Tensors(), a.Tensors()
	if len(want) != len(got) {
		return fmt.Errorf("peft: the adapter has %d tensors, its configuration implies %d for this model", len(got), len(want))
	}
	for i := range want {
		if want[i].Name != got[i].Name || len(want[i].Data) != len(got[i].Data) {
			return fmt.Errorf("peft: adapter tensor %q (%d values) does not fit this model, which needs %q with %d", got[i].Name, len(got[i].Data), want[i].Name, len(want[i].Data))
		}
	}
	return nil
}
