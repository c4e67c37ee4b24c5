package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/relupo/relupo/bench"
)

// issue 15's fine-tuning rows run through `relupo bench`: one row in the
// process, and --side-by-side running the binary again for each row (no
// PyTorch here: --no-pytorch). No timing is asserted.
func TestBenchLoRARows(t *testing.T) {
	shape := []string{"bench", "--shape", "256,32,64,2,4,2", "--seq", "32", "--steps", "1"}
	for _, tc := range []struct {
		flags            []string
		mode, base       string
		ckpt             bool
		trainableIsModel bool
	}{
		{[]string{"--use-peft", "--gradient-checkpointing"}, "lora", "bf16", true, false},
		{[]string{"--use-peft", "--base-dtype", "float32"}, "lora", "float32", false, false},
		{[]string{"--use-peft=false"}, "full", "float32", false, true},
		{[]string{"--gradient-checkpointing"}, "full", "float32", true, true},
	} {
		t.Run(strings.Join(tc.flags, " "), func(t *testing.T) {
			stdout, stderr, code := relupo(t, append(append(shape, tc.flags...), "--json")...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			var r bench.LoRAResult
			if err := json.Unmarshal([]byte(stdout), &r); err != nil {
				t.Fatalf("%v: %q", err, stdout)
			}
			if r.Mode != tc.mode || r.BaseDType != tc.base || r.Checkpointing != tc.ckpt || r.Sequences != 2 ||
				(r.ParamsTrainable == r.ParamsBase) != tc.trainableIsModel || r.StepsMeasured != 1 || !(r.EstimateGB > 0) {
				t.Errorf("result %+v", r)
			}
		})
	}

	results := filepath.Join(t.TempDir(), "rows.json")
	stdout, stderr, code := relupo(t, append(shape, "--side-by-side", "full,lora+ckpt", "--no-pytorch", "--results", results)...)
	if code != 0 {
		t.Fatalf("--side-by-side: exit %d: %s", code, stderr)
	}
	for _, s := range []string{"| shape 256,32,64,2,4,2 full, 1 | ", "| shape 256,32,64,2,4,2 lora+ckpt, 1 | "} {
		if !strings.Contains(stdout, s) {
			t.Errorf("the table lacks %q:\n%s", s, stdout)
		}
	}
	if strings.Contains(stdout, "failed") {
		t.Errorf("a row failed:\n%s", stdout)
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--use-peft", "--mode", "decode"}, "leave --mode train"},
		{[]string{"--use-peft", "--base-dtype", "fp8"}, `--base-dtype "fp8"`},
		{[]string{"--use-peft", "--lora-r", "0"}, "--lora-r must be ≥ 1"},
		{[]string{"--side-by-side", "qlora"}, `unknown row "qlora"`},
		{[]string{"--side-by-side", "lora", "--use-peft"}, "names its rows itself"},
		{[]string{"--side-by-side", "lora", "--compute-dtype", "bf16"}, "leave --compute-dtype float32"},
	} {
		_, stderr, code := relupo(t, append(shape, tc.args...)...)
		if code != 2 || !strings.Contains(stderr, tc.want) {
			t.Errorf("%v: exit %d, %q; want 2 and %q", tc.args, code, stderr, tc.want)
		}
	}
}
