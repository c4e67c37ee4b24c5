package bench

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/relupo/relupo/model"
	"github.com/relupo/relupo/train"
)

// The presets have the published models' parameter counts.
func TestLlamaPresets(t *testing.T) {
	for _, tc := range []struct {
		name   string
		params int64
	}{
		{"llama3.2-1b", 1_235_814_400}, // meta-llama/Llama-3.2-1B
		{"llama3-8b", 8_030_261_248},   // meta-llama/Meta-Llama-3-8B
	} {
		p, ok := Presets[tc.name]
		if !ok {
			t.Fatalf("no preset %q", tc.name)
		}
		if got := p.Model.NumParams(); got != tc.params || p.Seq != 512 {
			t.Errorf("%s: %d parameters, seq %d; want %d and 512", tc.name, got, p.Seq, tc.params)
		}
	}
}

func TestParseLoRARows(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []LoRARow
		err  string
	}{
		{in: "full", want: []LoRARow{{}}},
		{in: "full+ckpt, lora", want: []LoRARow{{Checkpointing: true}, {LoRA: true}}},
		{in: "lora+ckpt,lora-f32,lora-f32+ckpt", want: []LoRARow{{LoRA: true, Checkpointing: true}, {LoRA: true, BaseF32: true}, {LoRA: true, BaseF32: true, Checkpointing: true}}},
		{in: "lora,qlora", err: `unknown row "qlora"`},
		{in: "full+gc", err: `unknown row "full+gc"`},
		{in: " , ", err: "names no row"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseLoRARows(tc.in)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want one containing %q", err, tc.err)
				}
				return
			}
			if err != nil || !slices.Equal(got, tc.want) {
				t.Fatalf("got %v, %v; want %v", got, err, tc.want)
			}
		})
	}
	// Every name reads back as itself.
	for _, name := range LoRARowNames {
		rows, err := ParseLoRARows(name)
		if err != nil || len(rows) != 1 || rows[0].String() != name {
			t.Errorf("%s: read back as %v, %v", name, rows, err)
		}
	}
}

// tinyLoRA is a small model for the rows' tests.
func tinyLoRA(t *testing.T, row LoRARow) LoRAStepConfig {
	t.Helper()
	cfg, err := ParseShape("256,32,64,2,4,2")
	if err != nil {
		t.Fatal(err)
	}
	return LoRAStepConfig{Name: "tiny", Model: cfg, Row: row, R: 4, Alpha: 8, Seq: 32, Pairs: 1, Steps: 2, Compute: train.Compute{Threads: 2}}
}

// adapterParams counts an all-linear adapter's values: r·(in + out) for
// every linear layer of every decoder layer.
func adapterParams(c model.Config, r int) int64 {
	D, I, q, kv := c.HiddenSize, c.IntermediateSize, c.NumHeads*c.HeadDim, c.NumKVHeads*c.HeadDim
	perLayer := (D + q) + 2*(D+kv) + (q + D) + 2*(D+I) + (I + D)
	return int64(r * perLayer * c.NumLayers)
}

// Every row runs through LoRAStep on a tiny shape and accounts for its
// work exactly (no timing is asserted).
func TestLoRAStep(t *testing.T) {
	for _, name := range LoRARowNames {
		t.Run(name, func(t *testing.T) {
			rows, err := ParseLoRARows(name)
			if err != nil {
				t.Fatal(err)
			}
			c := tinyLoRA(t, rows[0])
			var log strings.Builder
			c.Log = &log
			r, err := LoRAStep(context.Background(), c)
			if err != nil {
				t.Fatal(err)
			}
			trainable, mode := c.Model.NumParams(), "full"
			if c.Row.LoRA {
				trainable, mode = adapterParams(c.Model, c.R), "lora"
			}
			if r.Side != "relupo" || r.Mode != mode || r.Checkpointing != c.Row.Checkpointing || r.BaseDType != c.Row.BaseDType() ||
				r.TokensPerStep != 2*32 || r.Sequences != 2 || r.StepsMeasured != 2 || !(r.StepSMin <= r.StepSMedian) ||
				r.ParamsTrainable != trainable || r.ParamsBase != c.Model.NumParams() || !(r.EstimateGB > 0) {
				t.Errorf("result %+v", r)
			}
			if !strings.Contains(log.String(), "warm-up step") || strings.Count(log.String(), "\nstep ") != 2 {
				t.Errorf("log %q: want the warm-up and two steps", log.String())
			}
		})
	}
	c := tinyLoRA(t, LoRARow{})
	c.Pairs = 0
	if _, err := LoRAStep(context.Background(), c); err == nil {
		t.Error("a step of no pairs was accepted")
	}
}

// A LoRA row trains the adapters alone; a full row every weight. This is
// what makes the rows' timings those of LoRA and full fine-tuning.
func TestLoRAStepTrainsWhatItSays(t *testing.T) {
	for _, row := range []LoRARow{{}, {LoRA: true, BaseF32: true, Checkpointing: true}, {LoRA: true}} {
		t.Run(row.String(), func(t *testing.T) {
			c := tinyLoRA(t, row)
			m, err := loraModel(c)
			if err != nil {
				t.Fatal(err)
			}
			if (m.LoRA != nil) != row.LoRA {
				t.Fatalf("adapter %v for row %s", m.LoRA != nil, row)
			}
			base := baseWeights(m)
			var adapter []float32
			if m.LoRA != nil {
				adapter = slices.Clone(m.LoRA.Mem)
			}
			st := newStepperFor(m, train.Compute{Threads: 2, Checkpoint: row.Checkpointing})
			defer st.e.Close()
			if st.e.Workspace.Checkpoint != row.Checkpointing {
				t.Errorf("workspace checkpointing %v", st.e.Workspace.Checkpoint)
			}
			exs := randomPairs(c.Model, c.Pairs, c.Seq)
			if _, err := st.step(exs, false); err != nil {
				t.Fatal(err)
			}
			baseMoved := !slices.Equal(base, baseWeights(m))
			if baseMoved == row.LoRA {
				t.Errorf("base weights changed: %v", baseMoved)
			}
			if row.LoRA && slices.Equal(adapter, m.LoRA.Mem) {
				t.Error("the adapters did not change")
			}
		})
	}
}

// SideBySide alternates the two sides row by row, gives each the row's
// flags, records a side that fails (a SIGKILL as the out-of-memory
// killer's) and derives the ratios.
func TestSideBySide(t *testing.T) {
	dir := t.TempDir()
	calls := filepath.Join(dir, "calls")
	// A stand-in for both sides: it records its arguments and prints a
	// result; the PyTorch side dies by SIGKILL on the lora-f32 row.
	script := filepath.Join(dir, "side.sh")
	body := `#!/bin/sh
echo "$*" >> ` + calls + `
case "$*" in
*lora_bench.py*--base-dtype\ float32*) kill -9 $$ ;;
*lora_bench.py*) echo "step lines"; echo '{"side": "pytorch", "tokens_per_s": 50, "peak_rss_GB": 4, "step_s_median": 20}' ;;
*) echo '{"side": "relupo", "tokens_per_s": 100, "peak_rss_GB": 2, "estimate_GB": 2.1, "step_s_median": 10}' ;;
esac
`
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	pyScript := filepath.Join(dir, "lora_bench.py")
	if err := os.WriteFile(pyScript, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	rows, err := ParseLoRARows("full+ckpt,lora-f32")
	if err != nil {
		t.Fatal(err)
	}
	res, err := SideBySide(context.Background(), SideBySideConfig{Preset: "llama3.2-1b", Rows: rows, Pairs: 1, Steps: 2, Rounds: 2,
		R: 16, Alpha: 32, Relupo: []string{script, "relupo"}, Python: script, Script: pyScript, EpochPairs: 60000})
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(calls)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	want := []string{
		"relupo bench --json --threads 0 --preset llama3.2-1b --pairs 1 --steps 2 --use-peft=false --gradient-checkpointing",
		pyScript + " --preset llama3.2-1b --pairs 1 --steps 2 --mode full --checkpointing --threads ",
		"relupo bench --json --threads 0 --preset llama3.2-1b --pairs 1 --steps 2 --use-peft --base-dtype float32 --lora-r 16 --lora-alpha 32",
		pyScript + " --preset llama3.2-1b --pairs 1 --steps 2 --mode lora --base-dtype float32 --lora-r 16 --lora-alpha 32 --threads ",
	}
	if len(lines) != 8 {
		t.Fatalf("%d runs, want 8 (2 rounds × 2 rows × 2 sides):\n%s", len(lines), b)
	}
	for i, l := range lines {
		if !strings.HasPrefix(l, want[i%4]) {
			t.Errorf("run %d: %q, want %q…", i+1, l, want[i%4])
		}
	}
	if len(res) != 4 {
		t.Fatalf("%d rows, want 4", len(res))
	}
	for i, r := range res {
		if r.Round != i/2+1 || r.Row != rows[i%2].String() || r.Relupo == nil || r.RelupoError != "" {
			t.Errorf("row %d: %+v", i, r)
			continue
		}
		if math.Abs(r.EstimateError-0.05) > 1e-12 || math.Abs(r.EpochHours-60000*10.0/3600) > 1e-9 {
			t.Errorf("row %d: estimate error %v, epoch hours %v", i, r.EstimateError, r.EpochHours)
		}
		if i%2 == 0 {
			if r.PyTorch == nil || r.Speedup != 2 || r.RSSRatio != 0.5 {
				t.Errorf("row %d: %+v", i, r)
			}
		} else if r.PyTorch != nil || !strings.Contains(r.PyTorchError, "SIGKILL") || r.Speedup != 0 {
			t.Errorf("row %d: the killed side reads %+v", i, r)
		}
	}
	var md strings.Builder
	if err := WriteSideBySide(&md, "llama3.2-1b", 60000, res); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"| llama3.2-1b full+ckpt, 1 | 100.0 | 50.0 | 2.00× | 2.00 | 4.00 | 2.10 (+5.0%) | 10.00 | 167 |",
		"| llama3.2-1b lora-f32, 2 | 100.0 | – | – |", "lora-f32, round 1, PyTorch failed: ", "out-of-memory killer"} {
		if !strings.Contains(md.String(), s) {
			t.Errorf("table lacks %q:\n%s", s, md.String())
		}
	}
	js, err := json.Marshal(res)
	if err != nil || !strings.Contains(string(js), `"pytorch_error"`) {
		t.Errorf("JSON %s, %v", js, err)
	}
	// A missing baseline script is an error naming it, before anything runs.
	if _, err := SideBySide(context.Background(), SideBySideConfig{Preset: "x", Rows: rows, Pairs: 1, Steps: 1, R: 16, Alpha: 32,
		Relupo: []string{script}, Python: script, Script: filepath.Join(dir, "missing.py")}); err == nil || !strings.Contains(err.Error(), "missing.py") {
		t.Errorf("missing script: %v", err)
	}
}

// baseWeights copies the model's base weights: float32 ones, and a frozen
// base's bfloat16 bits widened.
func baseWeights(m *model.Model) []float32 {
	var w []float32
	for _, t := range m.Params.Tensors() {
		w = append(w, t.Data...)
		for _, h := range t.Half {
			w = append(w, math.Float32frombits(uint32(h)<<16))
		}
	}
	return w
}
