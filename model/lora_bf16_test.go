package model

import (
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/relupo/relupo/kernels"
	"github.com/relupo/relupo/safetensors"
)

// roundedTwin returns a float32 copy of m whose weight matrices are rounded
// to bfloat16: the model a frozen bf16 base computes, in float32.
func roundedTwin(t *testing.T, m *Model) *Model {
	t.Helper()
	twin := New(m.Config)
	twin.Params.CopyFrom(m.Params)
	for _, tn := range twin.Params.Tensors() {
		if isMatrix(tn.Name) {
			for i, v := range tn.Data {
				tn.Data[i] = kernels.RoundBF16(v)
			}
		}
	}
	return twin
}

// TestFrozenBF16MatchesFloat32 checks a frozen bf16 base (LoadWith with
// BaseDType bf16, from the float32 golden checkpoint, with and without
// mapping) against the float32 model with the same rounded weights: the
// log-prob sums, the adapter gradients (with gradient checkpointing too)
// and the decoder's logits. In float32 precision the bf16 products widen
// their weights exactly, so only the summation order of the kernels may
// differ: 1e-6 relative on sums, 1e-5 of each tensor's largest gradient.
// It also checks that the matrices really are 2-byte (no float32 copy).
func TestFrozenBF16MatchesFloat32(t *testing.T) {
	exp := loadLoRAExpected(t)
	batch := exp.batch()
	ref := roundedTwin(t, mustLoad(t, travelDir))
	lc := LoRAConfig{R: 3, Alpha: 6, Dropout: 0.1, Targets: LoRAModules}
	ref.LoRA = randomAdapter(t, ref.Config, lc, 4)
	pool := kernels.NewPool(2)
	defer pool.Close()
	for _, mapped := range []bool{false, true} {
		name := "read"
		if mapped {
			name = "mapped"
		}
		t.Run(name, func(t *testing.T) {
			m, _, err := LoadWith(travelDir, LoadOptions{BaseDType: "bf16", Map: mapped})
			if err != nil {
				t.Fatal(err)
			}
			if !m.Params.Frozen || m.Params.Layers[0].Wq != nil || m.Params.Embed != nil || len(m.Params.Layers[1].HWGateUp) != 2*m.Config.IntermediateSize*m.Config.HiddenSize {
				t.Fatal("LoadWith bf16: the matrices are not held as bfloat16")
			}
			var norms int
			for _, tn := range m.Params.Tensors() {
				if !isMatrix(tn.Name) {
					norms += len(tn.Data)
				}
			}
			if len(m.Params.Mem) != norms {
				t.Errorf("float32 memory holds %d values, the norms %d", len(m.Params.Mem), norms)
			}
			m.LoRA = ref.LoRA
			for _, ckpt := range []bool{false, true} {
				ws := &Workspace{Pool: pool, DropoutSeed: 8, Checkpoint: ckpt}
				wsRef := &Workspace{Pool: pool, DropoutSeed: 8}
				s1, g1 := stepGrads(t, m, ws, batch, exp.DSums)
				s2, g2 := stepGrads(t, ref, wsRef, batch, exp.DSums)
				for k := range s1 {
					if e := relErr(s1[k], s2[k], 1); e > 1e-6 {
						t.Errorf("checkpoint %v: sequence %d: sum %.9g, float32 twin %.9g", ckpt, k, s1[k], s2[k])
					}
				}
				if e := maxRelDiff(g1, g2); e > 1e-5 {
					t.Errorf("checkpoint %v: adapter gradients differ from the float32 twin's by %.2g", ckpt, e)
				}
			}
			// bf16 precision: the twin's products round its (already
			// bf16) weights and the activations; the frozen base's use
			// its bits and round the activations, so both multiply the
			// same bfloat16 operands and differ only in summation order.
			bp := kernels.NewPool(2)
			defer bp.Close()
			bp.SetPrecision(kernels.BF16)
			s1, g1 := stepGrads(t, m, &Workspace{Pool: bp, DropoutSeed: 8}, batch, exp.DSums)
			s2, g2 := stepGrads(t, ref, &Workspace{Pool: bp, DropoutSeed: 8}, batch, exp.DSums)
			for k := range s1 {
				if e := relErr(s1[k], s2[k], 1); e > 1e-5 {
					t.Errorf("bf16 precision: sequence %d: sum %.9g, float32 twin %.9g", k, s1[k], s2[k])
				}
			}
			if e := maxRelDiff(g1, g2); e > 1e-4 {
				t.Errorf("bf16 precision: adapter gradients differ from the float32 twin's by %.2g", e)
			}
			seq := []int32{4, 9, 33, 12, 50, 7}
			got, err := NewDecoder(m, pool).Forward([]*KVCache{{}}, [][]int32{seq})
			if err != nil {
				t.Fatal(err)
			}
			want, err := NewDecoder(ref, pool).Forward([]*KVCache{{}}, [][]int32{seq})
			if err != nil {
				t.Fatal(err)
			}
			if e := maxRelDiff(got[0], want[0]); e > 1e-5 {
				t.Errorf("decoder logits differ from the float32 twin's by %.2g", e)
			}
		})
	}
}

// TestLoadWithDTypes checks LoadWith on 2-byte checkpoints: a BF16
// checkpoint's matrices are taken bit for bit (read or mapped), an F16
// one's are rounded to bf16 once, "auto" keeps a 2-byte checkpoint in 2
// bytes and a float32 one in float32, and an unknown dtype is refused.
func TestLoadWithDTypes(t *testing.T) {
	base := mustLoad(t, travelDir)
	for _, dt := range []safetensors.DType{safetensors.BF16, safetensors.F16} {
		t.Run(string(dt), func(t *testing.T) {
			dir := t.TempDir()
			if err := base.Save(dir, dt, 0); err != nil {
				t.Fatal(err)
			}
			full, _, err := Load(dir) // float32 values of the stored 2-byte ones
			if err != nil {
				t.Fatal(err)
			}
			opts := []LoadOptions{{BaseDType: "bf16"}, {BaseDType: "auto", Map: true}, {BaseDType: "exact", Map: true}}
			for _, o := range opts {
				m, _, err := LoadWith(dir, o)
				if err != nil {
					t.Fatal(err)
				}
				// "exact" keeps bfloat16 as it is and reads float16 as
				// float32 (rounding it to bfloat16 would change it).
				if frozen := o.BaseDType != "exact" || dt == safetensors.BF16; m.Params.Frozen != frozen {
					t.Fatalf("%+v: frozen %v, want %v", o, m.Params.Frozen, frozen)
				}
				want := map[string][]float32{}
				for _, tn := range full.Params.Tensors() {
					want[tn.Name] = tn.Data
				}
				for _, tn := range m.Params.Tensors() {
					w := want[tn.Name]
					for i := range w {
						var got float32
						if tn.Half != nil {
							got = bf16Float(tn.Half[i])
						} else {
							got = tn.Data[i]
						}
						exp := w[i]
						if tn.Half != nil {
							exp = kernels.RoundBF16(w[i]) // exact for BF16, one rounding for F16
						}
						if got != exp && !(math.IsNaN(float64(got)) && math.IsNaN(float64(exp))) {
							t.Fatalf("%+v: %s[%d] = %v, want %v", o, tn.Name, i, got, exp)
						}
					}
				}
			}
		})
	}
	t.Run("mapped without copies", func(t *testing.T) {
		dir := t.TempDir()
		if err := base.Save(dir, safetensors.BF16, 0); err != nil {
			t.Fatal(err)
		}
		var matrices uint64
		for _, tn := range base.Params.Tensors() {
			if isMatrix(tn.Name) {
				matrices += uint64(len(tn.Data))
			}
		}
		alloc := func(o LoadOptions) uint64 {
			var a, b runtime.MemStats
			runtime.ReadMemStats(&a)
			if _, _, err := LoadWith(dir, o); err != nil {
				t.Fatal(err)
			}
			runtime.ReadMemStats(&b)
			return b.TotalAlloc - a.TotalAlloc
		}
		// Reading copies each matrix's bytes and converts them into a
		// new []uint16 (4 bytes a parameter); mapping aliases both.
		read, mapped := alloc(LoadOptions{BaseDType: "bf16"}), alloc(LoadOptions{BaseDType: "bf16", Map: true})
		if read < mapped+3*matrices {
			t.Errorf("mapped load allocated %d bytes, read %d: the %d matrix parameters were copied", mapped, read, matrices)
		}
	})
	m, _, err := LoadWith(travelDir, LoadOptions{BaseDType: "auto", Map: true})
	if err != nil {
		t.Fatal(err)
	}
	if m.Params.Frozen || !slices.Equal(m.Params.Mem, base.Params.Mem) {
		t.Error(`"auto" on a float32 checkpoint: want the float32 weights`)
	}
	if _, _, err := LoadWith(travelDir, LoadOptions{BaseDType: "int8"}); err == nil || !strings.Contains(err.Error(), "int8") {
		t.Errorf("unknown base dtype: %v", err)
	}
}

// TestFrozenRefusals checks that a frozen base refuses full fine-tuning and
// saving with clear errors.
func TestFrozenRefusals(t *testing.T) {
	m, _, err := LoadWith(travelDir, LoadOptions{BaseDType: "bf16"})
	if err != nil {
		t.Fatal(err)
	}
	exp := loadLoRAExpected(t)
	b := exp.batch()
	ws := &Workspace{}
	if _, _, err := m.Forward(ws, b); err != nil {
		t.Fatal(err)
	}
	if err := m.Backward(ws, b, exp.DSums, NewParams(m.Config)); err == nil || !strings.Contains(err.Error(), "float32 to") && !strings.Contains(err.Error(), "full fine-tuning") {
		t.Errorf("Backward on a frozen base: %v", err)
	}
	if err := m.Save(filepath.Join(t.TempDir(), "out"), safetensors.BF16, 0); err == nil || !strings.Contains(err.Error(), "frozen") {
		t.Errorf("Save of a frozen base: %v", err)
	}
}

// TestNewFrozenBF16 checks the in-memory random frozen base: no float32
// matrix, values that depend only on the seed, of the documented spread,
// and a model that runs a LoRA step.
func TestNewFrozenBF16(t *testing.T) {
	c := mustLoad(t, travelDir).Config
	m := NewFrozenBF16(c, 1)
	if m.Params.Embed != nil || m.Params.Layers[0].WGateUp != nil || !m.Params.Frozen {
		t.Fatal("float32 matrices allocated")
	}
	if !slices.Equal(m.Params.frozenMem, NewFrozenBF16(c, 1).Params.frozenMem) {
		t.Error("the same seed gave other weights")
	}
	if slices.Equal(m.Params.frozenMem, NewFrozenBF16(c, 2).Params.frozenMem) {
		t.Error("another seed gave the same weights")
	}
	var ss float64
	for _, h := range m.Params.frozenMem {
		v := float64(bf16Float(h))
		if math.Abs(v) > 0.02*math.Sqrt(3)*1.01 {
			t.Fatalf("value %v outside ±0.02·√3", v)
		}
		ss += v * v
	}
	if std := math.Sqrt(ss / float64(len(m.Params.frozenMem))); math.Abs(std-0.02) > 0.001 {
		t.Errorf("standard deviation %v, want 0.02", std)
	}
	m.LoRA = randomAdapter(t, c, LoRAConfig{R: 2, Alpha: 4, Targets: LoRAModules}, 3)
	exp := loadLoRAExpected(t)
	sums, g := stepGrads(t, m, &Workspace{Checkpoint: true}, exp.batch(), exp.DSums)
	var gn float64
	for _, v := range g {
		gn += float64(v) * float64(v)
	}
	if len(sums) == 0 || math.IsNaN(sums[0]) || gn == 0 || math.IsNaN(gn) {
		t.Errorf("LoRA step on a random frozen base: sums %v, gradient norm² %v", sums, gn)
	}
}

// A bfloat16 checkpoint loaded "exact" (its matrices kept in 2 bytes)
// computes what the same checkpoint loaded as float32 computes, bit for
// bit, in the float32 precision: log-prob sums of a training forward,
// prefill and decoding logits.
func TestExactBF16Bitwise(t *testing.T) {
	dir := t.TempDir()
	if err := mustLoad(t, travelDir).Save(dir, safetensors.BF16, 0); err != nil {
		t.Fatal(err)
	}
	full, _, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	half, _, err := LoadWith(dir, LoadOptions{BaseDType: "exact", Map: true})
	if err != nil {
		t.Fatal(err)
	}
	if !half.Params.Frozen {
		t.Fatal("the bf16 checkpoint was not kept in bf16")
	}
	pool := kernels.NewPool(2)
	defer pool.Close()
	v := int32(full.Config.VocabSize)
	var b Batch
	for s := range 3 {
		var prompt, resp []int32
		for i := range 9 + 5*s {
			prompt = append(prompt, int32(i*7+s)%v)
		}
		for i := range 6 + 3*s {
			resp = append(resp, int32(i*11+3*s)%v)
		}
		b.Add(prompt, resp)
	}
	want, _, err := full.Forward(&Workspace{Pool: pool}, &b)
	if err != nil {
		t.Fatal(err)
	}
	got, _, err := half.Forward(&Workspace{Pool: pool}, &b)
	if err != nil {
		t.Fatal(err)
	}
	for i := range want {
		if math.Float64bits(got[i]) != math.Float64bits(want[i]) {
			t.Errorf("sequence %d: log-prob sum %v kept in bf16, %v as float32", i, got[i], want[i])
		}
	}
	prompts := [][]int32{{4, 9, 33, 12, 50, 7}, {1, 2, 3}, {8, 8, 8, 8, 8, 8, 8, 8, 8, 8}}
	df, dh := NewDecoder(full, pool), NewDecoder(half, pool)
	cf, ch := []*KVCache{df.NewCache(), df.NewCache(), df.NewCache()}, []*KVCache{dh.NewCache(), dh.NewCache(), dh.NewCache()}
	in := prompts
	for step := range 4 {
		lf, err := df.Forward(cf, in)
		if err != nil {
			t.Fatal(err)
		}
		lh, err := dh.Forward(ch, in)
		if err != nil {
			t.Fatal(err)
		}
		for s := range lf {
			for j := range lf[s] {
				if math.Float32bits(lf[s][j]) != math.Float32bits(lh[s][j]) {
					t.Fatalf("step %d, sequence %d, logit %d: %v kept in bf16, %v as float32", step, s, j, lh[s][j], lf[s][j])
				}
			}
		}
		in = [][]int32{{int32(Argmax(lf[0]))}, {int32(Argmax(lf[1]))}, {int32(Argmax(lf[2]))}}
	}
}

// Every architecture loads as a frozen bf16 base (its matrices found layer
// by layer, OLMo's layers having no input norm to count them by) and gives
// the log-prob sums of its float32 twin with the same rounded weights
// (1e-6 relative: only the kernels' order of sums may differ).
func TestFrozenBF16AllArchitectures(t *testing.T) {
	dirs, _ := filepath.Glob(filepath.Join("testdata", "arch", "*", "config.json"))
	gemma, _ := filepath.Glob(filepath.Join("testdata", "gemma", "*", "config.json"))
	pool := kernels.NewPool(2)
	defer pool.Close()
	b := &Batch{}
	b.Add([]int32{1, 5, 9, 3}, []int32{7, 2, 4, 8, 6, 3, 11})
	b.Add([]int32{2}, []int32{9, 9, 1, 5})
	for _, cfg := range append(dirs, gemma...) {
		dir := filepath.Dir(cfg)
		if _, err := os.Stat(filepath.Join(dir, "model.safetensors")); err != nil {
			continue // a tokenizer folder
		}
		t.Run(filepath.Base(dir), func(t *testing.T) {
			twin := roundedTwin(t, mustLoad(t, dir))
			m, _, err := LoadWith(dir, LoadOptions{BaseDType: "bf16"})
			if err != nil {
				t.Fatal(err)
			}
			if !m.Params.Frozen || m.Params.Layers[len(m.Params.Layers)-1].HWq == nil {
				t.Fatal("the matrices are not held as bfloat16 in every layer")
			}
			want, _, err := twin.Forward(&Workspace{Pool: pool}, b)
			if err != nil {
				t.Fatal(err)
			}
			got, _, err := m.Forward(&Workspace{Pool: pool}, b)
			if err != nil {
				t.Fatal(err)
			}
			for i := range want {
				if e := relErr(got[i], want[i], 1); e > 1e-6 {
					t.Errorf("sequence %d: %v, float32 twin %v", i, got[i], want[i])
				}
			}
		})
	}
}
