package model

import (
	"math"
	"math/rand/v2"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/relupo/relupo/kernels"
)

// KeepLogits must not change the numbers: Forward's log-prob sums are the
// same products over the same rows, and Backward's gradients differ from
// the recomputing path only in how the lm_head gradient's sum over label
// rows is split into chunks (1e-6 of each tensor's largest gradient, a few
// float32 roundings). A second Backward after the kept logits were used
// must compute them again, and a batch whose logits outgrow the model's
// weights must not keep them.
func TestKeepLogits(t *testing.T) {
	m := mustLoad(t, filepath.Join("testdata", "arch", "llama-gqa-tied"))
	c := m.Config
	r := rand.New(rand.NewPCG(7, 8))
	batch := func(seqs int) *Batch {
		b := &Batch{}
		for s := 0; s < seqs; s++ {
			ids := make([]int32, 200)
			for i := range ids {
				ids[i] = int32(r.IntN(c.VocabSize))
			}
			b.Add(ids[:10], ids[10:])
		}
		return b
	}
	pool := kernels.NewPool(2)
	defer pool.Close()
	dSums := func(n int) []float64 {
		dS := make([]float64, n)
		for i := range dS {
			dS[i] = 0.3 * float64(1-2*(i%2)) * float64(i+1)
		}
		return dS
	}
	run := func(ws *Workspace, b *Batch) ([]float64, *Params) {
		t.Helper()
		sums, _, err := m.Forward(ws, b)
		if err != nil {
			t.Fatal(err)
		}
		dS := dSums(len(sums))
		g := NewParams(c)
		if err := m.Backward(ws, b, dS, g); err != nil {
			t.Fatal(err)
		}
		return sums, g
	}
	same := func(what string, got, want *Params) {
		t.Helper()
		for k, tn := range got.Tensors() {
			w := want.Tensors()[k].Data
			var scale, worst float64
			for i := range w {
				scale = math.Max(scale, math.Abs(float64(w[i])))
				worst = math.Max(worst, math.Abs(float64(tn.Data[i]-w[i])))
			}
			if worst > 1e-6*scale {
				t.Errorf("%s: %s differs by %.2g of max %.3g", what, tn.Name, worst/scale, scale)
			}
		}
	}

	b := batch(2) // 380 labels: more than one 256-row chunk, fewer than the weights allow
	if L := 2 * 190; L <= c.logitChunk() || !c.keepsLogits(L) {
		t.Fatalf("test batch of %d labels does not exercise both paths (chunk %d)", L, c.logitChunk())
	}
	wantSums, want := run(&Workspace{Pool: pool}, b)
	ws := &Workspace{Pool: pool, KeepLogits: true}
	sums, _, err := m.Forward(ws, b)
	if err != nil {
		t.Fatal(err)
	}
	if !ws.kept {
		t.Fatal("Forward with KeepLogits did not keep the logits")
	}
	for i := range sums {
		if sums[i] != wantSums[i] {
			t.Errorf("sequence %d: log-prob sum %.17g with kept logits, %.17g without", i, sums[i], wantSums[i])
		}
	}
	dS := dSums(len(sums))
	got := NewParams(c)
	if err := m.Backward(ws, b, dS, got); err != nil {
		t.Fatal(err)
	}
	same("kept logits", got, want)
	if ws.kept {
		t.Error("Backward left the used logits marked as kept")
	}
	again := NewParams(c)
	if err := m.Backward(ws, b, dS, again); err != nil {
		t.Fatal(err)
	}
	same("second Backward", again, want)

	big := batch(4) // 760 labels × 96 > the weights' size
	if c.keepsLogits(4 * 190) {
		t.Fatalf("%d labels fit in %d weights", 4*190, c.NumParams())
	}
	if _, _, err := m.Forward(ws, big); err != nil {
		t.Fatal(err)
	}
	if ws.kept {
		t.Error("Forward kept logits larger than the model's weights")
	}
}

// NoGrad must not change the numbers either: on every architecture, with
// and without a shared prompt, Forward's log-prob sums are bit-identical to
// those of a Forward that keeps its activations, only the first layer's
// buffers are allocated, Backward refuses to follow, and a Forward that
// keeps its activations afterwards on the same workspace trains as a fresh
// one does.
func TestNoGrad(t *testing.T) {
	pool := kernels.NewPool(2)
	defer pool.Close()
	for _, name := range []string{"llama-gqa-tied", "llama3-rope", "mistral", "qwen2", "qwen3", "olmo2", "smollm3-sliding", "granite"} {
		t.Run(name, func(t *testing.T) {
			m := mustLoad(t, filepath.Join("testdata", "arch", name))
			c := m.Config
			r := rand.New(rand.NewPCG(9, 10))
			ids := func(n int) []int32 {
				s := make([]int32, n)
				for i := range s {
					s[i] = int32(r.IntN(c.VocabSize))
				}
				return s
			}
			b := &Batch{}
			b.Add(ids(20), ids(50))
			b.Add(ids(30), nil) // a prompt shared by the next two
			p := b.NumSeqs() - 1
			b.AddPrefixed(p, ids(40))
			b.AddPrefixed(p, ids(25))

			want, _, err := m.Forward(&Workspace{Pool: pool}, b)
			if err != nil {
				t.Fatal(err)
			}
			ws := &Workspace{Pool: pool, NoGrad: true}
			got, _, err := m.Forward(ws, b)
			if err != nil {
				t.Fatal(err)
			}
			for i := range want {
				if got[i] != want[i] {
					t.Errorf("sequence %d: log-prob sum %.17g with NoGrad, %.17g without", i, got[i], want[i])
				}
			}
			for l, a := range ws.layers[1:] {
				if a.x != nil || a.q != nil || a.gu != nil {
					t.Fatalf("layer %d has buffers of its own under NoGrad", l+1)
				}
			}
			dS := make([]float64, b.NumSeqs())
			for i := range dS {
				dS[i] = 0.1 * float64(i+1)
			}
			if err := m.Backward(ws, b, dS, NewParams(c)); err == nil || !strings.Contains(err.Error(), "NoGrad") {
				t.Fatalf("Backward after a NoGrad Forward: %v", err)
			}

			fresh := &Workspace{Pool: pool}
			wantG := NewParams(c)
			if _, _, err := m.Forward(fresh, b); err != nil {
				t.Fatal(err)
			}
			if err := m.Backward(fresh, b, dS, wantG); err != nil {
				t.Fatal(err)
			}
			ws.NoGrad = false
			gotG := NewParams(c)
			if _, _, err := m.Forward(ws, b); err != nil {
				t.Fatal(err)
			}
			if err := m.Backward(ws, b, dS, gotG); err != nil {
				t.Fatal(err)
			}
			for i, v := range gotG.Mem {
				if v != wantG.Mem[i] {
					t.Fatalf("gradient %d after a NoGrad Forward: %v, fresh workspace %v", i, v, wantG.Mem[i])
				}
			}
		})
	}
}

// wsFloats counts the float32 capacity a workspace holds, all its buffers
// and its layers'.
func wsFloats(ws *Workspace) int64 {
	var n int64
	add := func(v reflect.Value) {
		for i := 0; i < v.NumField(); i++ {
			if f := v.Field(i); f.Kind() == reflect.Slice && f.Type().Elem().Kind() == reflect.Float32 {
				n += int64(f.Cap())
			}
		}
	}
	add(reflect.ValueOf(ws).Elem())
	for i := range ws.layers {
		add(reflect.ValueOf(&ws.layers[i]).Elem())
	}
	return n
}

// MemoryEstimate bounds what a workspace holds after a training step
// (Forward with kept logits and Backward) and after a Forward with NoGrad,
// with the weights (and for training gradients and two AdamW moments), and
// the NoGrad figure is well under the training one.
func TestMemoryEstimateBounds(t *testing.T) {
	pool := kernels.NewPool(2)
	defer pool.Close()
	for _, name := range []string{"llama-gqa-tied", "qwen3", "olmo2"} {
		t.Run(name, func(t *testing.T) {
			m := mustLoad(t, filepath.Join("testdata", "arch", name))
			c := m.Config
			r := rand.New(rand.NewPCG(11, 12))
			b := &Batch{}
			for s := 0; s < 4; s++ {
				ids := make([]int32, 120)
				for i := range ids {
					ids[i] = int32(r.IntN(c.VocabSize))
				}
				b.Add(ids[:20], ids[20:])
			}
			n := len(b.Tokens)
			params := c.NumParams()

			ws := &Workspace{Pool: pool, KeepLogits: true}
			if _, _, err := m.Forward(ws, b); err != nil {
				t.Fatal(err)
			}
			dS := make([]float64, b.NumSeqs())
			if err := m.Backward(ws, b, dS, NewParams(c)); err != nil {
				t.Fatal(err)
			}
			if held, est := 4*(4*params+wsFloats(ws)), c.MemoryEstimate(n, true); held > est {
				t.Errorf("training holds %d bytes, estimate %d", held, est)
			}

			ng := &Workspace{Pool: pool, NoGrad: true}
			if _, _, err := m.Forward(ng, b); err != nil {
				t.Fatal(err)
			}
			held, est := 4*(params+wsFloats(ng)), c.MemoryEstimate(n, false)
			if held > est {
				t.Errorf("NoGrad holds %d bytes, estimate %d", held, est)
			}
			if train := c.MemoryEstimate(n, true); 2*est > train {
				t.Errorf("NoGrad estimate %d is not well under training's %d", est, train)
			}
		})
	}
}
