package optim

// PyTorch comparisons that travel with the repository: they read only
// testdata/golden, which scripts/goldens/gen_goldens.py writes with
// torch.optim.AdamW, torch.nn.utils.clip_grad_norm_ and transformers'
// scheduler formulas (see testdata/golden/README.md), so they run in any
// clone, without ../shared.

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/relupo/relupo/safetensors"
)

const travelDir = "testdata/golden"

// travelAdamWCase is one case of testdata/golden/adamw.json; its tensors
// are in adamw.safetensors as "<case>/init", "<case>/step<k>/grad",
// "<case>/step<k>/after", "<case>/exp_avg" and "<case>/exp_avg_sq", each
// the case's parameters flattened and concatenated in Params order.
type travelAdamWCase struct {
	Name        string  `json:"name"`
	WeightDecay float64 `json:"weight_decay"`
	MaxGradNorm float64 `json:"max_grad_norm"` // 0: no clipping
	Beta1       float64 `json:"beta1"`
	Beta2       float64 `json:"beta2"`
	Eps         float64 `json:"eps"`
	Params      []struct {
		Name  string `json:"name"`
		Shape []int  `json:"shape"`
		Decay bool   `json:"decay"` // in the HF Trainer's weight-decay group
	} `json:"params"`
	Steps []struct {
		LR       float64  `json:"lr"`
		GradNorm float64  `json:"grad_norm"` // before clipping
		NoGrad   []string `json:"no_grad"`   // parameters whose grad is None
		Clipped  bool     `json:"clipped"`
	} `json:"steps"`
	StateSteps map[string]int64 `json:"state_steps"`
}

func loadTravelAdamW(t *testing.T) ([]travelAdamWCase, map[string][]float32) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(travelDir, "adamw.json"))
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Cases []travelAdamWCase `json:"cases"`
	}
	if err := json.Unmarshal(raw, &file); err != nil {
		t.Fatalf("parse adamw.json: %v", err)
	}
	if len(file.Cases) == 0 {
		t.Fatal("adamw.json has no cases")
	}
	f, err := safetensors.Open(filepath.Join(travelDir, "adamw.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tensors := map[string][]float32{}
	for _, name := range f.Names() {
		if tensors[name], err = f.Float32(name); err != nil {
			t.Fatal(err)
		}
	}
	return file.Cases, tensors
}

// split cuts a flat tensor of the case's parameters into one slice each.
func (c travelAdamWCase) split(t *testing.T, flat []float32, what string) [][]float32 {
	t.Helper()
	out := make([][]float32, len(c.Params))
	off := 0
	for i, p := range c.Params {
		n := 1
		for _, d := range p.Shape {
			n *= d
		}
		if off+n > len(flat) {
			t.Fatalf("%s: %d values, the parameters need more", what, len(flat))
		}
		out[i] = append([]float32(nil), flat[off:off+n]...)
		off += n
	}
	if off != len(flat) {
		t.Fatalf("%s: %d values, the parameters have %d", what, len(flat), off)
	}
	return out
}

// TestTravelAdamW replays torch.optim.AdamW runs with the HF Trainer's
// parameter groups (weight decay on for weights and embeddings, off for
// biases and norm weights: the script's regex rule, which DecayParam must
// agree with), per-step learning rates from a linear warmup schedule,
// gradients of varying size clipped by clip_grad_norm_ before the step
// (ClipGradNorm; one case without clipping), and parameters without a
// gradient on some steps.
//
// Tolerances: the norm before clipping to 1e-6 relative (PyTorch reduces in
// float32, ClipGradNorm in float64); parameters after every step to 2e-5
// absolute, the tolerance the project's golden notes give for an AdamW
// step: both sides compute in float32 and differ at most by the last bits
// of the clip coefficient and of each update (at most 6e-8 here), while the
// steps move parameters by up to 3e-2 and the weight decay by up to 5e-3 a
// step, so a wrong bias correction, moment update, decay group or clip
// fails by orders of magnitude. The final moments to 1e-5 of each tensor's
// largest value, and the per-parameter step counts exactly.
func TestTravelAdamW(t *testing.T) {
	cases, tensors := loadTravelAdamW(t)
	get := func(t *testing.T, name string) []float32 {
		t.Helper()
		v, ok := tensors[name]
		if !ok {
			t.Fatalf("adamw.safetensors has no %q", name)
		}
		return v
	}
	for _, c := range cases {
		t.Run(c.Name, func(t *testing.T) {
			for _, p := range c.Params {
				if DecayParam(p.Name) != p.Decay {
					t.Errorf("DecayParam(%q) = %v, the HF Trainer's rule says %v", p.Name, DecayParam(p.Name), p.Decay)
				}
			}
			opt := NewAdamW()
			opt.Beta1, opt.Beta2, opt.Eps, opt.WeightDecay = c.Beta1, c.Beta2, c.Eps, c.WeightDecay
			init := c.split(t, get(t, c.Name+"/init"), "init")
			ps := make([]Param, len(c.Params))
			for i, p := range c.Params {
				ps[i] = Param{Name: p.Name, Data: append([]float32(nil), init[i]...)}
			}
			var moved float64 // the largest change of a parameter over the run
			for k, st := range c.Steps {
				grads := c.split(t, get(t, c.Name+"/step"+strconv.Itoa(k)+"/grad"), "grad")
				var clip [][]float32
				for i := range ps {
					ps[i].Grad = grads[i]
					for _, n := range st.NoGrad {
						if n == ps[i].Name {
							ps[i].Grad = nil
						}
					}
					if ps[i].Grad != nil {
						clip = append(clip, ps[i].Grad)
					}
				}
				norm := ClipGradNorm(clip, c.MaxGradNorm)
				if math.Abs(norm-st.GradNorm) > 1e-6*st.GradNorm {
					t.Errorf("step %d: gradient norm %.9g, PyTorch %.9g", k, norm, st.GradNorm)
				}
				if err := opt.Step(ps, st.LR); err != nil {
					t.Fatal(err)
				}
				want := c.split(t, get(t, c.Name+"/step"+strconv.Itoa(k)+"/after"), "after")
				for i, p := range ps {
					for j, w := range want[i] {
						if d := math.Abs(float64(p.Data[j]) - float64(w)); d > 2e-5 {
							t.Errorf("step %d: %s[%d] = %.9g, PyTorch %.9g", k, p.Name, j, p.Data[j], w)
						}
						moved = math.Max(moved, math.Abs(float64(w)-float64(init[i][j])))
					}
				}
			}
			if c.MaxGradNorm > 0 {
				clipped := 0
				for _, st := range c.Steps {
					if st.Clipped {
						clipped++
					}
				}
				if clipped == 0 || clipped == len(c.Steps) {
					t.Errorf("PyTorch clipped %d of %d steps; the golden run must have steps above and below the max norm", clipped, len(c.Steps))
				}
			}
			if moved < 1e-3 {
				t.Errorf("the golden run moves parameters by at most %.2g: too little to test against 2e-5", moved)
			}
			state := map[string][]float32{}
			for _, st := range opt.State() {
				state[st.Name] = st.Data
			}
			for _, part := range []struct{ file, prefix string }{{"exp_avg", StateExpAvgPrefix}, {"exp_avg_sq", StateExpAvgSqPrefix}} {
				want := c.split(t, get(t, c.Name+"/"+part.file), part.file)
				for i, p := range c.Params {
					got := state[part.prefix+p.Name]
					if len(got) != len(want[i]) {
						t.Fatalf("%s%s: %d values, PyTorch %d", part.prefix, p.Name, len(got), len(want[i]))
					}
					var scale, worst float64
					for j, w := range want[i] {
						scale = math.Max(scale, math.Abs(float64(w)))
						worst = math.Max(worst, math.Abs(float64(got[j])-float64(w)))
					}
					if worst > 1e-5*scale {
						t.Errorf("%s%s differs from PyTorch by %.2g of its largest value %.3g", part.prefix, p.Name, worst/scale, scale)
					}
				}
			}
			for _, p := range c.Params {
				if got, want := opt.StepCount(p.Name), c.StateSteps[p.Name]; got != want {
					t.Errorf("%s: %d steps counted, PyTorch %d", p.Name, got, want)
				}
			}
		})
	}
}

// TestTravelSchedules compares Schedule with the rates a PyTorch LambdaLR
// produced from transformers' get_scheduler lambdas, step by step and past
// the end, and WarmupSteps with TrainingArguments.get_warmup_steps. Both
// sides compute in float64 with the same formulas; only the last bit of a
// cosine may differ, hence 1e-12 of the base rate.
func TestTravelSchedules(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(travelDir, "schedules.json"))
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Schedules []struct {
			Kind   string    `json:"kind"`
			BaseLR float64   `json:"base_lr"`
			Warmup int       `json:"warmup"`
			Total  int       `json:"total"`
			LRs    []float64 `json:"lrs"`
		} `json:"schedules"`
		Warmup []struct {
			Steps int     `json:"warmup_steps"`
			Ratio float64 `json:"warmup_ratio"`
			Total int     `json:"total"`
			Want  int     `json:"want"`
		} `json:"warmup"`
	}
	if err := json.Unmarshal(raw, &file); err != nil {
		t.Fatalf("parse schedules.json: %v", err)
	}
	seen := map[string]bool{}
	for _, s := range file.Schedules {
		seen[s.Kind] = true
		t.Run(s.Kind+"/W"+strconv.Itoa(s.Warmup)+"T"+strconv.Itoa(s.Total), func(t *testing.T) {
			lr, err := Schedule(s.Kind, s.BaseLR, s.Warmup, s.Total)
			if err != nil {
				t.Fatal(err)
			}
			for k, want := range s.LRs {
				if got := lr(k); math.Abs(got-want) > 1e-12*s.BaseLR {
					t.Errorf("lr(%d) = %.17g, PyTorch %.17g", k, got, want)
				}
			}
		})
	}
	for _, kind := range Schedules() {
		if !seen[kind] {
			t.Errorf("no golden schedule %q", kind)
		}
	}
	t.Run("warmup_steps", func(t *testing.T) {
		if len(file.Warmup) == 0 {
			t.Fatal("no warmup cases")
		}
		for _, w := range file.Warmup {
			if got, err := WarmupSteps(w.Steps, w.Ratio, w.Total); err != nil || got != w.Want {
				t.Errorf("WarmupSteps(%d, %v, %d) = %d, %v; want %d", w.Steps, w.Ratio, w.Total, got, err, w.Want)
			}
		}
	})
}
