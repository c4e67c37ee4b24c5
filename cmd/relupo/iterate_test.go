package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/relupo/relupo/internal/testutil"
)

// The demonstration through the command: the mean verified reward rises.
func TestIterateDemo(t *testing.T) {
	out := filepath.Join(t.TempDir(), "demo")
	stdout, stderr, code := relupo(t, "iterate", "--demo", "--iterations", "3", "--output-dir", out, "--threads", "2", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var ms []struct {
		Iteration int      `json:"iteration"`
		Mean      *float64 `json:"score/mean"`
	}
	if err := json.Unmarshal([]byte(stdout), &ms); err != nil || len(ms) != 4 {
		t.Fatalf("stdout %q (%v)", stdout, err)
	}
	if *ms[3].Mean < *ms[0].Mean+0.05 {
		t.Errorf("mean reward %v → %v", *ms[0].Mean, *ms[3].Mean)
	}
	if !strings.Contains(stderr, "iteration 3: mean score") || !strings.Contains(stderr, "trained on") {
		t.Errorf("no progress on stderr: %q", stderr)
	}
	for _, f := range []string{"metrics.jsonl", "model.safetensors", "config.json", "iteration-3/pairs.jsonl", "iteration-3/optimizer.safetensors", "iteration-0/samples.jsonl"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Error(err)
		}
	}
	// Resuming a finished run changes nothing and says where it resumed.
	_, stderr, code = relupo(t, "iterate", "--demo", "--iterations", "3", "--output-dir", out, "--threads", "2", "--resume-from-checkpoint", "latest")
	if code != 0 || !strings.Contains(stderr, "resumed after iteration 3") {
		t.Errorf("resume: exit %d, %s", code, stderr)
	}
}

func TestIterateErrors(t *testing.T) {
	empty := writeFile(t, "empty.jsonl", "\n")
	noRef := writeFile(t, "noref.jsonl", "{\"prompt_input_ids\": [1, 2], \"reference\": \"4\"}\n{\"prompt_input_ids\": [1, 3]}\n")
	good := writeFile(t, "good.jsonl", "{\"prompt_input_ids\": [1, 2], \"reference\": \"4\"}\n")
	out := t.TempDir()
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"nothing", nil, 2, "--model, --prompts and --output-dir are required, or --demo"},
		{"no scorer", []string{"--model", tinyModel, "--prompts", good, "--output-dir", out}, 2, "give exactly one scorer"},
		{"two scorers", []string{"--model", tinyModel, "--prompts", good, "--output-dir", out, "--verifier", "(x)", "--reward-model", tinyModel}, 2, "give exactly one scorer"},
		{"one sample", []string{"--model", tinyModel, "--prompts", good, "--output-dir", out, "--verifier", "(x)", "--samples-per-prompt", "1"}, 2, "--samples-per-prompt ≥ 2"},
		{"greedy", []string{"--model", tinyModel, "--prompts", good, "--output-dir", out, "--verifier", "(x)", "--temperature", "0"}, 2, "--temperature 0 is greedy"},
		{"prompt file without prompts", []string{"--model", tinyModel, "--prompts", empty, "--output-dir", out, "--verifier", "(x)"}, 1, "empty.jsonl holds no prompts"},
		{"no reference", []string{"--model", tinyModel, "--prompts", noRef, "--output-dir", out, "--verifier", "(x)"}, 1, "noref.jsonl:2: no known answer for the verifier"},
		{"judge without a server", []string{"--model", tinyModel, "--prompts", good, "--output-dir", out, "--judge-model", "j"}, 2, "--judge-model needs --judge-base-url"},
		{"judge and verifier", []string{"--model", tinyModel, "--prompts", good, "--output-dir", out, "--verifier", "(x)", "--judge-model", "j", "--judge-base-url", "http://127.0.0.1:1"}, 2, "give exactly one scorer"},
		{"demo with a judge", []string{"--demo", "--judge-model", "j"}, 2, "--judge-model does not apply"},
		{"verifier without a group", []string{"--model", tinyModel, "--prompts", good, "--output-dir", out, "--verifier", "x"}, 2, "no capture group"},
		{"linear without an end", []string{"--demo", "--gamma-strategy", "linear"}, 2, "needs --gamma-end"},
		{"adaptive with dpo", []string{"--model", tinyModel, "--prompts", good, "--output-dir", out, "--verifier", "(x)", "--gamma-strategy", "adaptive", "--loss-type", "dpo"}, 2, "loss dpo does not threshold"},
		{"demo with a model", []string{"--demo", "--model", tinyModel}, 2, "--model does not apply"},
		{"bad resume", []string{"--demo", "--resume-from-checkpoint", "checkpoint-3"}, 2, "takes 'latest'"},
		{"resume of nothing", []string{"--demo", "--output-dir", t.TempDir(), "--resume-from-checkpoint", "latest"}, 1, "holds no iteration-N checkpoint"},
		{"demo with LoRA", []string{"--demo", "--use-peft"}, 2, "--use-peft does not apply"},
		{"unknown schedule", []string{"--demo", "--lr-scheduler-type", "poly"}, 2, `unknown learning-rate schedule "poly"`},
		{"warmup ratio past 1", []string{"--demo", "--warmup-ratio", "2"}, 2, "warmup ratio must be in [0, 1]"},
		{"LoRA options without use-peft", []string{"--model", tinyModel, "--prompts", good, "--output-dir", out, "--verifier", "(x)", "--lora-r", "4"}, 2, "lora_r only apply to LoRA training"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, stderr, code := relupo(t, append([]string{"iterate"}, tc.args...)...)
			if code != tc.code || !strings.Contains(stderr, tc.want) {
				t.Errorf("exit %d, stderr %q; want exit %d mentioning %q", code, stderr, tc.code, tc.want)
			}
		})
	}
}

func TestIterateHelp(t *testing.T) {
	stdout, _, code := relupo(t, "iterate", "--help")
	if code != 0 || !strings.Contains(stdout, "--gamma-strategy") || !strings.Contains(stdout, "adaptive") || !strings.Contains(stdout, "--demo") {
		t.Errorf("exit %d: %s", code, stdout)
	}
}

// LoRA through the command: the output folder and every checkpoint hold
// the adapter in PEFT's format (naming the base), and with
// --merge-adapter the final folder also the merged model; the model's own
// files are not rewritten as a full model in the checkpoints.
func TestIterateLoRA(t *testing.T) {
	llama := testutil.SharedPath(t, "fixtures", "models", "tiny-random-llama")
	prompts := writeFile(t, "p.jsonl", "{\"prompt\": \"Say a word.\", \"reference\": \"a\"}\n{\"prompt\": \"Say another.\", \"reference\": \"b\"}\n")
	out := t.TempDir()
	_, stderr, code := relupo(t, "iterate", "--model", llama, "--prompts", prompts, "--output-dir", out, "--verifier", `^(\S+)`,
		"--iterations", "1", "--samples-per-prompt", "2", "--max-new-tokens", "3", "--threads", "2",
		"--use-peft", "--lora-r", "2", "--lora-target-modules", "q_proj,v_proj", "--merge-adapter")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, f := range []string{"adapter_config.json", "adapter_model.safetensors", "model.safetensors", "config.json", "tokenizer.json",
		"iteration-1/adapter_config.json", "iteration-1/adapter_model.safetensors", "iteration-1/optimizer.safetensors"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Error(err)
		}
	}
	if _, err := os.Stat(filepath.Join(out, "iteration-1", "model.safetensors")); err == nil {
		t.Error("iteration-1 holds a full model under LoRA")
	}
	b, err := os.ReadFile(filepath.Join(out, "adapter_config.json"))
	if err != nil {
		t.Fatal(err)
	}
	var ac struct {
		R    int    `json:"r"`
		Base string `json:"base_model_name_or_path"`
	}
	if err := json.Unmarshal(b, &ac); err != nil || ac.R != 2 || ac.Base != llama {
		t.Errorf("adapter_config.json: r %d, base %q (%v); want r 2, base %q", ac.R, ac.Base, err, llama)
	}
}
