package train

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/relupo/relupo/chat"
	"github.com/relupo/relupo/data"
	"github.com/relupo/relupo/generate"
	"github.com/relupo/relupo/model"
	"github.com/relupo/relupo/optim"
	"github.com/relupo/relupo/pref"
	"github.com/relupo/relupo/safetensors"
	"github.com/relupo/relupo/tokenizer"
)

// Three RePO steps of Engine.Step on the tiny Gemma-2 and Gemma-3 models of
// model/testdata/gemma (sliding windows shorter than the pairs, Gemma-2's
// caps active) against model/testdata/gen_gemma.py's PyTorch loop: the
// mean of relu(γ − M) over the pairs, clip_grad_norm_, AdamW with weight
// decay on every weight but the norms (the HF Trainer's groups). The step
// losses agree to 1e-5 relative and the weights to 2e-5 absolute, the
// tolerance of TestMultiStepAgainstPyTorch (most agree to ~1e-6). AdamW's
// first steps move a weight by about lr·g/(|g| + ε), which turns float32
// noise in a gradient that is itself noise-sized into a visible difference
// (up to lr·δ·ε/(|g| + ε)² for an error δ in g): weights whose first
// gradient is below 1e-4 of their tensor's largest (a handful, measured
// 3e-5 off) get 2e-4, still a hundredth of the 1.5e-2 that three steps
// can move them.
func TestGemmaStepsAgainstPyTorch(t *testing.T) {
	dir := filepath.Join("..", "model", "testdata", "gemma")
	b, err := os.ReadFile(filepath.Join(dir, "expected.json"))
	if err != nil {
		t.Fatal(err)
	}
	var exp struct {
		Pairs []struct{ Prompt, Chosen, Rejected []int32 }
		Train struct {
			Gamma, Beta, Eps float64
			LearningRate     float64 `json:"learning_rate"`
			WeightDecay      float64 `json:"weight_decay"`
			MaxGradNorm      float64 `json:"max_grad_norm"`
			Betas            []float64
			Steps            int
		}
		Cases map[string]struct {
			TrainLosses []float64 `json:"train_losses"`
		}
	}
	if err := json.Unmarshal(b, &exp); err != nil {
		t.Fatal(err)
	}
	tr := exp.Train
	if tr.Steps != 3 || len(exp.Pairs) == 0 || tr.LearningRate == 0 || tr.WeightDecay == 0 || tr.MaxGradNorm == 0 {
		t.Fatalf("expected.json: settings %+v, %d pairs", tr, len(exp.Pairs))
	}
	for _, name := range []string{"gemma2", "gemma3"} {
		t.Run(name, func(t *testing.T) {
			want := exp.Cases[name].TrainLosses
			if len(want) != tr.Steps {
				t.Fatalf("%d reference losses", len(want))
			}
			m, _, err := model.Load(filepath.Join(dir, name))
			if err != nil {
				t.Fatal(err)
			}
			e := NewEngine(m, Compute{Threads: 2})
			defer e.Close()
			e.Optimizer = optim.NewAdamW()
			e.Optimizer.Beta1, e.Optimizer.Beta2, e.Optimizer.Eps = tr.Betas[0], tr.Betas[1], tr.Eps
			e.Optimizer.WeightDecay = tr.WeightDecay
			var exs []data.Example
			for _, p := range exp.Pairs {
				exs = append(exs, data.Example{Prompt: p.Prompt, Chosen: p.Chosen, Rejected: p.Rejected, Source: "pairs"})
			}
			loss := pref.Config{LossType: pref.LossRePO, Beta: tr.Beta, Gamma: tr.Gamma}
			var first []model.Tensor // the first step's gradients
			for step := 0; step < tr.Steps; step++ {
				r, err := e.Step(Batch{Micro: [][]data.Example{exs}, Accumulation: 1}, loss, tr.LearningRate, tr.MaxGradNorm)
				if err != nil {
					t.Fatal(err)
				}
				if math.Abs(r.Loss-want[step]) > 1e-5*math.Abs(want[step]) {
					t.Errorf("step %d: loss %.8g, PyTorch %.8g", step+1, r.Loss, want[step])
				}
				if step == 0 {
					for _, g := range e.Grads.Tensors() {
						first = append(first, model.Tensor{Name: g.Name, Data: append([]float32(nil), g.Data...)})
					}
				}
			}
			f, err := safetensors.Open(filepath.Join(dir, name, "after3.safetensors"))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			worst, noisy := 0.0, 0
			for k, tn := range m.Params.Tensors() {
				w, err := f.Float32(tn.Name)
				if err != nil {
					t.Fatal(err)
				}
				g := first[k].Data
				var gmax float64
				for _, v := range g {
					gmax = math.Max(gmax, math.Abs(float64(v)))
				}
				for i := range w {
					d, tol := math.Abs(float64(tn.Data[i]-w[i])), 2e-5
					if math.Abs(float64(g[i])) < 1e-4*gmax {
						tol = 2e-4
						if d > 2e-5 {
							noisy++
						}
					} else {
						worst = math.Max(worst, d)
					}
					if d > tol {
						t.Errorf("%s[%d]: %.8g after %d steps, PyTorch %.8g (first gradient %.3g of max %.3g)", tn.Name, i, tn.Data[i], tr.Steps, w[i], g[i], gmax)
					}
				}
			}
			t.Logf("max |Δw| after %d steps: %.3g; %d weights with noise-sized gradients beyond 2e-5", tr.Steps, worst, noisy)
		})
	}
}

// The small Gemma-style tokenizer of model/testdata/gen_gemma_tokenizer.py
// (no real Gemma tokenizer.json is available to the tests; this one has
// Gemma's structure: " " → "▁" with no dummy prefix, BPE with byte
// fallback, <bos> prepended, <start_of_turn>/<end_of_turn>, Gemma-2's chat
// template): its ids and rendering against the script's own BPE and
// jinja2; a conversation with a system message is one error naming the
// record and saying the template refuses system messages, and
// --chat-template replaces the template; <end_of_turn> stops generation.
func TestGemmaTokenizerAndTemplate(t *testing.T) {
	tokDir := filepath.Join("..", "model", "testdata", "gemma", "tokenizer")
	b, err := os.ReadFile(filepath.Join(tokDir, "expected.json"))
	if err != nil {
		t.Fatal(err)
	}
	var exp struct {
		VocabSize int `json:"vocab_size"`
		Encode    []struct {
			Text string
			IDs  []int
		}
		Conversation []chat.Message
		Rendered     string
		RenderedIDs  []int  `json:"rendered_ids"`
		SystemError  string `json:"system_error"`
		EndOfTurn    int    `json:"end_of_turn"`
	}
	if err := json.Unmarshal(b, &exp); err != nil {
		t.Fatal(err)
	}
	tok, err := tokenizer.Load(tokDir)
	if err != nil {
		t.Fatal(err)
	}
	t.Run("encode", func(t *testing.T) {
		for _, c := range exp.Encode {
			got, err := tok.Encode(c.Text, true)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, c.IDs) {
				t.Errorf("Encode(%q) = %v, want %v", c.Text, got, c.IDs)
			}
			if dec := tok.Decode(got, true); dec != c.Text {
				t.Errorf("Decode(Encode(%q)) = %q", c.Text, dec)
			}
		}
	})
	t.Run("template", func(t *testing.T) {
		cfg, err := tokenizer.LoadConfig(tokDir)
		if err != nil {
			t.Fatal(err)
		}
		tmpl, err := chat.New(cfg.ChatTemplate, cfg.SpecialTokens())
		if err != nil {
			t.Fatal(err)
		}
		got, err := tmpl.Render(exp.Conversation, true)
		if err != nil {
			t.Fatal(err)
		}
		if got != exp.Rendered {
			t.Fatalf("rendered %q, want %q", got, exp.Rendered)
		}
		ids, err := tok.Encode(got, false)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(ids, exp.RenderedIDs) {
			t.Errorf("ids %v, want %v", ids, exp.RenderedIDs)
		}
	})
	t.Run("system message", func(t *testing.T) {
		// A Gemma model folder: a tiny model with a vocabulary as large as
		// the tokenizer's, and the tokenizer files.
		dir := t.TempDir()
		cfg := `{"model_type": "gemma2", "vocab_size": ` + strconv.Itoa(exp.VocabSize) + `, "hidden_size": 8, "intermediate_size": 8, "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 4, "sliding_window": 4, "bos_token_id": 2, "eos_token_id": 1}`
		mc, err := model.ParseConfig([]byte(cfg))
		if err != nil {
			t.Fatal(err)
		}
		m := model.New(mc)
		m.Params.Init(1, 0.02)
		if err := m.Save(dir, safetensors.F32, 0); err != nil {
			t.Fatal(err)
		}
		for _, f := range []string{"tokenizer.json", "tokenizer_config.json", "generation_config.json"} {
			b, err := os.ReadFile(filepath.Join(tokDir, f))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		rows := `{"prompt": [{"role": "user", "content": "Hello world"}], "chosen": [{"role": "assistant", "content": "the model"}], "rejected": [{"role": "assistant", "content": "at"}]}
{"prompt": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello"}], "chosen": [{"role": "assistant", "content": "the"}], "rejected": [{"role": "assistant", "content": "at"}]}
`
		dataPath := filepath.Join(t.TempDir(), "pairs.jsonl")
		if err := os.WriteFile(dataPath, []byte(rows), 0o644); err != nil {
			t.Fatal(err)
		}
		o := DefaultOptions()
		o.Model, o.Data, o.OutputDir, o.MaxSteps = dir, []string{dataPath}, t.TempDir(), 1
		_, err = Setup(context.Background(), o, func(string) {})
		if err == nil || !strings.Contains(err.Error(), exp.SystemError) || !strings.Contains(err.Error(), "pairs.jsonl:2") {
			t.Fatalf("error %v, want one naming pairs.jsonl:2 and saying %q", err, exp.SystemError)
		}
		t.Logf("the error: %v", err)
		// A template that folds the system message into the first turn
		// (the SimPO recipe's for Gemma-2) accepts it.
		o.ChatTemplate = "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{% set system_message = messages[0]['content'] | trim + '\\n\\n' %}{% set messages = messages[1:] %}{% else %}{% set system_message = '' %}{% endif %}{% for message in messages %}{% if loop.index0 == 0 %}{% set content = system_message + message['content'] %}{% else %}{% set content = message['content'] %}{% endif %}{% if (message['role'] == 'assistant') %}{% set role = 'model' %}{% else %}{% set role = message['role'] %}{% endif %}{{ '<start_of_turn>' + role + '\\n' + content | trim + '<end_of_turn>\\n' }}{% endfor %}{% if add_generation_prompt %}{{'<start_of_turn>model\\n'}}{% endif %}"
		if _, err := Setup(context.Background(), o, func(string) {}); err != nil {
			t.Fatalf("with a system-folding --chat-template: %v", err)
		}
	})
	t.Run("end of turn stops generation", func(t *testing.T) {
		cfg, err := tokenizer.LoadConfig(tokDir)
		if err != nil {
			t.Fatal(err)
		}
		stops, err := generate.StopTokens(tokDir, []int{1}, cfg.EOSToken, cfg.ChatTemplate, tok)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(stops, exp.EndOfTurn) || !slices.Contains(stops, 1) {
			t.Errorf("stop tokens %v, want <eos> 1 and <end_of_turn> %d", stops, exp.EndOfTurn)
		}
	})
}
