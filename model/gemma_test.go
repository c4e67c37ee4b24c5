package model

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/relupo/relupo/kernels"
	"github.com/relupo/relupo/optim"
)

// gemmaExpected is testdata/gemma/expected.json, written by
// testdata/gen_gemma.py (its own PyTorch Gemma-2 and Gemma-3, from the
// Hugging Face modeling code, self-checked against finite differences).
type gemmaExpected struct {
	Sequences []struct{ Prompt, Response []int32 }
	DSums     []float64
	Prompt    []int32
	Cases     map[string]struct {
		LogpSums   []float64 `json:"logp_sums"`
		Counts     []int
		Greedy     []int32
		LastLogits []float32 `json:"last_logits"`
	}
}

func loadGemmaExpected(t *testing.T) gemmaExpected {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "gemma", "expected.json"))
	if err != nil {
		t.Fatal(err)
	}
	var exp gemmaExpected
	if err := json.Unmarshal(b, &exp); err != nil {
		t.Fatal(err)
	}
	if len(exp.Cases) != 4 {
		t.Fatalf("expected.json has %d cases, want 4", len(exp.Cases))
	}
	return exp
}

// Gemma-2 and Gemma-3 log-probs and gradients against PyTorch, on tiny
// random models whose windows (5 and 6 positions, sequences up to 26
// tokens) and soft caps (raw logits up to 4.4 against caps of 2 and 1.5,
// attention scores up to 6.5 against a cap of 3) are active. Tolerances as
// for the other architectures (arch_test.go): log-prob sums to 1e-5
// relative (the requirement is 1e-4), gradients to 1e-4 of each tensor's
// largest entry; serial and parallel, logits recomputed or kept.
func TestGemmaAgainstPyTorch(t *testing.T) {
	exp := loadGemmaExpected(t)
	batch := &Batch{}
	for _, s := range exp.Sequences {
		batch.Add(s.Prompt, s.Response)
	}
	for name, want := range exp.Cases {
		for _, workers := range []int{1, 2} {
			for _, kept := range []bool{false, true} {
				t.Run(fmt.Sprintf("%s/workers=%d/kept=%v", name, workers, kept), func(t *testing.T) {
					dir := filepath.Join("testdata", "gemma", name)
					m := mustLoad(t, dir)
					ws := &Workspace{Pool: kernels.NewPool(workers), KeepLogits: kept}
					defer ws.Pool.Close()
					sums, counts, err := m.Forward(ws, batch)
					if err != nil {
						t.Fatal(err)
					}
					for i := range sums {
						if counts[i] != want.Counts[i] {
							t.Errorf("seq %d: count %d, want %d", i, counts[i], want.Counts[i])
						}
						if e := relErr(sums[i], want.LogpSums[i], 1); e > 1e-5 {
							t.Errorf("seq %d: logp sum %.8g, want %.8g (rel %.2g)", i, sums[i], want.LogpSums[i], e)
						}
					}
					grads := NewParams(m.Config)
					if err := m.Backward(ws, batch, exp.DSums, grads); err != nil {
						t.Fatal(err)
					}
					compareGrads(t, grads, filepath.Join(dir, "grads.safetensors"))
				})
			}
		}
	}
}

// Greedy decoding with the KV cache past the sliding window gives
// PyTorch's tokens (the model run over the whole sequence at every step),
// its final logits (to 1e-5 of the largest), and at every step the logits
// of LastLogits over the whole sequence so far.
func TestGemmaGreedyAgainstPyTorch(t *testing.T) {
	exp := loadGemmaExpected(t)
	pool := kernels.NewPool(2)
	defer pool.Close()
	for name, want := range exp.Cases {
		t.Run(name, func(t *testing.T) {
			m := mustLoad(t, filepath.Join("testdata", "gemma", name))
			if n := len(exp.Prompt) + len(want.Greedy); n <= 2*m.Config.SlidingWindow {
				t.Fatalf("%d tokens do not pass the window %d", n, m.Config.SlidingWindow)
			}
			d := NewDecoder(m, pool)
			cache := d.NewCache()
			in := exp.Prompt
			seq := append([]int32(nil), exp.Prompt...)
			var logits []float32
			for step := range want.Greedy {
				out, err := d.Forward([]*KVCache{cache}, [][]int32{in})
				if err != nil {
					t.Fatal(err)
				}
				logits = out[0]
				b := &Batch{}
				b.Add(seq, nil)
				full, err := m.LastLogits(&Workspace{Pool: pool}, b)
				if err != nil {
					t.Fatal(err)
				}
				if e := maxAbsRelF32(logits, full[0]); e > 1e-5 {
					t.Errorf("step %d: decoder logits %.2g from LastLogits", step, e)
				}
				next := int32(Argmax(logits))
				if next != want.Greedy[step] {
					t.Fatalf("step %d: token %d, want %d (PyTorch's greedy %v)", step, next, want.Greedy[step], want.Greedy)
				}
				seq = append(seq, next)
				in = []int32{next}
			}
			if e := maxAbsRelF32(logits, want.LastLogits); e > 1e-5 {
				t.Errorf("last logits %.2g from PyTorch's: %v, want %v", e, logits, want.LastLogits)
			}
		})
	}
}

func maxAbsRelF32(got, want []float32) float64 {
	var d, m float64
	for i := range want {
		d = math.Max(d, math.Abs(float64(got[i]-want[i])))
		m = math.Max(m, math.Abs(float64(want[i])))
	}
	return d / math.Max(m, 1e-30)
}

// A pair's shared prompt (attended as a prefix) gives the unshared
// layout's log-probs and gradients when windows reach back into the prompt
// and the caps are active.
func TestGemmaSharedPromptEqualsUnshared(t *testing.T) {
	exp := loadGemmaExpected(t)
	for name := range exp.Cases {
		t.Run(name, func(t *testing.T) {
			m := mustLoad(t, filepath.Join("testdata", "gemma", name))
			prompts := [][]int32{{3, 9, 4, 22, 17, 5, 8, 30, 2}, {11}, {7, 7, 20, 31}}
			chosen := [][]int32{{5, 6, 7, 8, 9, 10, 11, 12}, {13, 14, 15, 16, 17, 18, 19}, {21, 22}}
			rejected := [][]int32{{23, 24}, {25, 26, 27, 28, 29, 30, 31, 32, 33, 34}, {35, 36, 37, 38, 3, 4}}
			unshared, shared := &Batch{}, &Batch{}
			for i := range prompts {
				unshared.Add(prompts[i], chosen[i])
				unshared.Add(prompts[i], rejected[i])
				shared.Add(prompts[i], nil)
				p := shared.NumSeqs() - 1
				shared.AddPrefixed(p, chosen[i])
				shared.AddPrefixed(p, rejected[i])
			}
			ws := &Workspace{Pool: kernels.NewPool(2)}
			defer ws.Pool.Close()
			uSums, _, err := m.Forward(ws, unshared)
			if err != nil {
				t.Fatal(err)
			}
			dU := []float64{0.5, -1, 0.25, 2, -0.75, 1.5}
			uGrads := NewParams(m.Config)
			if err := m.Backward(ws, unshared, dU, uGrads); err != nil {
				t.Fatal(err)
			}
			sSums, _, err := m.Forward(ws, shared)
			if err != nil {
				t.Fatal(err)
			}
			dS := make([]float64, shared.NumSeqs())
			for i := range prompts {
				for j := 0; j < 2; j++ {
					if e := relErr(sSums[3*i+1+j], uSums[2*i+j], 1); e > 1e-6 {
						t.Errorf("pair %d response %d: shared %.8g, unshared %.8g", i, j, sSums[3*i+1+j], uSums[2*i+j])
					}
					dS[3*i+1+j] = dU[2*i+j]
				}
			}
			sGrads := NewParams(m.Config)
			if err := m.Backward(ws, shared, dS, sGrads); err != nil {
				t.Fatal(err)
			}
			sameGrads(t, sGrads, uGrads, 1e-5)
		})
	}
}

// The Gemma config fields: defaults of Gemma2Config and Gemma3TextConfig,
// HF's rules for which layers slide, layer_types, the v5 rope_parameters
// per layer type, and caps that are null or ignored.
func TestParseGemmaConfig(t *testing.T) {
	const base = `"vocab_size": 10, "hidden_size": 8, "intermediate_size": 16, "num_hidden_layers": 7, "num_attention_heads": 2, "num_key_value_heads": 1`
	type want struct {
		sliding                   string // per layer: s sliding, f full
		window, headDim           int
		scale, attnCap, finalCap  float64
		theta, localTheta, factor float64
		tied                      bool
	}
	for _, tc := range []struct {
		name, json string
		want       want
	}{
		{"gemma2 defaults", `{"model_type": "gemma2", ` + base + `}`,
			want{"sfsfsfs", 4096, 256, 1.0 / 16, 50, 30, 10000, 0, 0, true}},
		{"gemma2 nulls", `{"model_type": "gemma2", ` + base + `, "head_dim": 4, "query_pre_attn_scalar": 64, "attn_logit_softcapping": null, "final_logit_softcapping": null, "sliding_window": null, "tie_word_embeddings": false}`,
			want{"sfsfsfs", 0, 4, 1.0 / 8, 0, 0, 10000, 0, 0, false}},
		{"gemma2 layer_types", `{"model_type": "gemma2", ` + base + `, "layer_types": ["full_attention", "sliding_attention", "sliding_attention", "full_attention", "full_attention", "full_attention", "sliding_attention"], "sliding_window": 10}`,
			want{"fssfffs", 10, 256, 1.0 / 16, 50, 30, 10000, 0, 0, true}},
		{"gemma3 defaults", `{"model_type": "gemma3_text", ` + base + `, "attn_logit_softcapping": 20}`,
			want{"sssssfs", 4096, 256, 1.0 / 16, 0, 0, 1e6, 10000, 0, true}},
		{"gemma3 1b", `{"model_type": "gemma3_text", ` + base + `, "sliding_window": 512, "sliding_window_pattern": 2, "rope_local_base_freq": 10000, "rope_theta": 1000000, "rope_scaling": {"rope_type": "linear", "factor": 8.0}, "final_logit_softcapping": 2}`,
			want{"sfsfsfs", 512, 256, 1.0 / 16, 0, 2, 1e6, 10000, 8, true}},
		{"gemma3 v5 rope_parameters", `{"model_type": "gemma3_text", ` + base + `, "rope_parameters": {"full_attention": {"rope_type": "linear", "factor": 4, "rope_theta": 500000}, "sliding_attention": {"rope_type": "default", "rope_theta": 5000}}}`,
			want{"sssssfs", 4096, 256, 1.0 / 16, 0, 0, 5e5, 5000, 4, true}},
		// Gemma 1 has no window, caps or query_pre_attn_scalar: such keys are
		// ignored, as GemmaConfig ignores them; scores scale by head_dim^-½.
		{"gemma 1", `{"model_type": "gemma", ` + base + `, "sliding_window": 4096, "query_pre_attn_scalar": 64, "final_logit_softcapping": 30, "attn_logit_softcapping": 50}`,
			want{"fffffff", 0, 256, 0, 0, 0, 10000, 0, 0, true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ParseConfig([]byte(tc.json))
			if err != nil {
				t.Fatal(err)
			}
			var sl strings.Builder
			for l := 0; l < c.NumLayers; l++ {
				if c.LayerWindow(l) > 0 || (c.SlidingWindow == 0 && c.SlidingLayers != nil && c.SlidingLayers[l]) {
					sl.WriteByte('s')
				} else {
					sl.WriteByte('f')
				}
			}
			var factor float64
			if c.RopeScaling != nil {
				factor = c.RopeScaling.Factor
			}
			got := want{sl.String(), c.SlidingWindow, c.HeadDim, c.QueryScale, c.AttnSoftcap, c.FinalSoftcap, c.RopeTheta, c.RopeLocalTheta, factor, c.TieWordEmbeddings}
			if got != tc.want {
				t.Fatalf("parsed %+v, want %+v", got, tc.want)
			}
			if !c.Gemma {
				t.Fatal("not marked Gemma")
			}
		})
	}
}

// Every Gemma norm weight is excluded from weight decay (the HF Trainer's
// get_decay_parameter_names), and every other weight decays.
func TestGemmaDecayGroups(t *testing.T) {
	for _, name := range []string{"gemma", "gemma2", "gemma3"} {
		c, err := LoadConfig(filepath.Join("testdata", "gemma", name))
		if err != nil {
			t.Fatal(err)
		}
		for _, tn := range c.Tensors() {
			norm := strings.HasSuffix(tn.Name, "norm.weight")
			if optim.DecayParam(tn.Name) == norm {
				t.Errorf("%s: DecayParam %v", tn.Name, !norm)
			}
		}
	}
}

// Init gives Gemma norms the weight 0 (they act as 1 + w), so a new model
// normalizes with scale 1 as a new Llama does.
func TestGemmaInitNorms(t *testing.T) {
	c, err := LoadConfig(filepath.Join("testdata", "gemma", "gemma3"))
	if err != nil {
		t.Fatal(err)
	}
	p := NewParams(c)
	p.Init(1, 0.02)
	for _, tn := range p.Tensors() {
		if strings.HasSuffix(tn.Name, "norm.weight") && (tn.Data[0] != 0 || tn.Data[len(tn.Data)-1] != 0) {
			t.Errorf("%s initialized to %g, want 0", tn.Name, tn.Data[0])
		}
	}
}
