package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// loraData is the LoRA golden folder of package train (a base model, pairs
// and a PEFT adapter).
const loraData = "../../train/testdata/lora"

// TestLoRACommands drives --use-peft training, --adapter on logps, eval and
// generate, and relupo merge through the binary; LoRA options that make no
// sense are usage errors (exit 2) naming the option.
func TestLoRACommands(t *testing.T) {
	base, adapter, data := filepath.Join(loraData, "base"), filepath.Join(loraData, "init"), filepath.Join(loraData, "pairs.jsonl")
	for _, tc := range []struct {
		name string
		args []string
		msg  string
	}{
		{"lora flag without use-peft", []string{"train", "--model", base, "--data", data, "--lora-r", "8"}, "lora_r only apply to LoRA training"},
		{"base dtype without use-peft", []string{"train", "--model", base, "--data", data, "--base-dtype", "bf16"}, "base_dtype only apply"},
		{"lora-init with another r", []string{"train", "--model", base, "--data", data, "--use-peft", "--lora-init", adapter, "--lora-r", "8"}, "lora_r 8 (the adapter's r is 4)"},
		{"adapter on train", []string{"train", "--model", base, "--data", data, "--adapter", adapter}, "--lora-init"},
		{"merge without adapter", []string{"merge", "--model", base, "--output-dir", t.TempDir()}, "--adapter"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append(tc.args, "--output-dir", t.TempDir())
			if tc.args[0] == "merge" {
				args = tc.args
			}
			_, se, code := relupo(t, args...)
			if code != 2 || !strings.Contains(se, tc.msg) {
				t.Fatalf("exit %d, stderr %q; want 2 and %q", code, se, tc.msg)
			}
		})
	}

	out := t.TempDir()
	if _, se, code := relupo(t, "train", "--model", base, "--data", data, "--output-dir", out, "--use-peft", "--lora-target-modules", "all-linear",
		"--lora-r", "2", "--gradient-checkpointing", "--max-steps", "2", "--learning-rate", "1e-2", "--progress=false"); code != 0 {
		t.Fatalf("train --use-peft: exit %d: %s", code, se)
	}
	for _, name := range []string{"adapter_config.json", "adapter_model.safetensors", "README.md"} {
		if _, err := os.Stat(filepath.Join(out, name)); err != nil {
			t.Error(err)
		}
	}
	if _, err := os.Stat(filepath.Join(out, "model.safetensors")); err == nil {
		t.Error("a LoRA run without --merge-adapter wrote the full model")
	}

	so, se, code := relupo(t, "eval", "--model", base, "--adapter", out, "--data", data)
	if code != 0 {
		t.Fatalf("eval --adapter: exit %d: %s", code, se)
	}
	var row map[string]float64
	if err := json.Unmarshal([]byte(so), &row); err != nil || row["pairs"] != 4 {
		t.Fatalf("eval output %q: %v", so, err)
	}
	so, se, code = relupo(t, "logps", "--model", base, "--adapter", out, "--data", data)
	if code != 0 || !strings.Contains(so, `"adapter"`) {
		t.Fatalf("logps --adapter: exit %d: %s\n%s", code, se, so)
	}
	prompts := filepath.Join(t.TempDir(), "prompts.jsonl")
	os.WriteFile(prompts, []byte(`{"prompt_input_ids": [5, 9, 13]}`+"\n"), 0o644)
	if so, se, code = relupo(t, "generate", "--model", base, "--adapter", out, "--tokenizer", "../../model/testdata/gemma/tokenizer", "--input", prompts, "--max-new-tokens", "4", "--ignore-eos"); code != 0 || !strings.Contains(so, "output_ids") {
		t.Fatalf("generate --adapter: exit %d: %s\n%s", code, se, so)
	}
	if _, se, code = relupo(t, "generate", "--model", base, "--adapter", loraData, "--tokenizer", "../../model/testdata/gemma/tokenizer", "--input", prompts); code != 1 || !strings.Contains(se, "adapter_config.json") {
		t.Fatalf("generate with a folder that is no adapter: exit %d: %s", code, se)
	}

	merged := t.TempDir()
	if _, se, code = relupo(t, "merge", "--model", base, "--adapter", out, "--output-dir", merged); code != 0 {
		t.Fatalf("merge: exit %d: %s", code, se)
	}
	for _, name := range []string{"config.json", "model.safetensors"} {
		if _, err := os.Stat(filepath.Join(merged, name)); err != nil {
			t.Error(err)
		}
	}
	// The merged model scores the pairs as base + adapter does.
	withAdapter, _, _ := relupo(t, "logps", "--model", base, "--adapter", out, "--data", data)
	fromMerged, se, code := relupo(t, "logps", "--model", merged, "--data", data)
	if code != 0 {
		t.Fatalf("logps on the merged model: exit %d: %s", code, se)
	}
	a, b := strings.Split(withAdapter, "\n")[1:], strings.Split(fromMerged, "\n")[1:]
	for i := range a {
		if a[i] == "" {
			continue
		}
		var x, y struct {
			ChosenLogps float64 `json:"chosen_logps"`
		}
		json.Unmarshal([]byte(a[i]), &x)
		json.Unmarshal([]byte(b[i]), &y)
		if d := x.ChosenLogps - y.ChosenLogps; d > 1e-4 || d < -1e-4 {
			t.Errorf("pair %d: base + adapter %v, merged %v", i, x.ChosenLogps, y.ChosenLogps)
		}
	}
	if _, se, code = relupo(t, "merge", "--model", base, "--adapter", out, "--output-dir", merged); code != 2 || !strings.Contains(se, "--overwrite-output-dir") {
		t.Fatalf("merge into a model folder: exit %d: %s", code, se)
	}
}
