package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A one-step smoke run of every benchmark mode on a tiny shape: the
// benchmarks keep working, and their JSON carries the fields BENCHMARKS.md
// reports. (No timing is asserted.)
func TestBenchSmoke(t *testing.T) {
	shape := []string{"bench", "--shape", "256,64,128,2,4,2", "--seq", "32", "--steps", "1", "--json"}
	dir := t.TempDir()
	for _, tc := range []struct {
		name   string
		args   []string
		fields []string
	}{
		{"train", shape, []string{"tokens_per_s", "step_s_median", "gflops", "peak_rss_GB"}},
		{"train-bf16", append(shape, "--compute-dtype", "bf16"), []string{"tokens_per_s", "step_s_median", "gflops", "peak_rss_GB"}},
		{"ref-forward", append(shape, "--mode", "ref-forward"), []string{"tokens_per_s", "step_s_median"}},
		{"train-seconds", append(shape, "--seconds", "0.01"), []string{"tokens_per_s", "steps_measured"}},
		{"decode", append(shape, "--mode", "decode", "--cpuprofile", filepath.Join(dir, "decode.prof")), []string{"tokens_per_s"}},
		{"decode-bf16", append(shape, "--mode", "decode", "--base-dtype", "bf16"), []string{"tokens_per_s"}},
		{"realistic", append(shape, "--data", pairs(t, 6), "--tokenizer", tinyModel, "--cpuprofile", filepath.Join(dir, "realistic.prof")), []string{"pairs_per_s", "tokens_per_s"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stdout, stderr, code := relupo(t, tc.args...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			lines := strings.Split(strings.TrimSpace(stdout), "\n")
			var r map[string]any
			if err := json.Unmarshal([]byte(lines[len(lines)-1]), &r); err != nil {
				t.Fatalf("last line is not JSON: %v\n%s", err, stdout)
			}
			for _, f := range tc.fields {
				if v, ok := r[f].(float64); !ok || !(v > 0) {
					t.Errorf("%s = %v", f, r[f])
				}
			}
			if want := map[string]string{"decode": "float32", "decode-bf16": "bf16"}[tc.name]; want != "" && r["weights_dtype"] != want {
				t.Errorf("weights_dtype = %v, want %s", r["weights_dtype"], want)
			}
		})
	}
	// --cpuprofile profiles decoding and realistic passes too.
	for _, name := range []string{"decode.prof", "realistic.prof"} {
		if st, err := os.Stat(filepath.Join(dir, name)); err != nil || st.Size() == 0 {
			t.Errorf("%s: %v", name, err)
		}
	}
	// What only training steps have is refused elsewhere, not ignored.
	for _, extra := range [][]string{{"--mode", "decode", "--profile"}, {"--mode", "decode", "--seconds", "1"}, {"--data", pairs(t, 6), "--tokenizer", tinyModel, "--profile"}} {
		_, stderr, code := relupo(t, append(shape, extra...)...)
		if code != 2 || !strings.Contains(stderr, "--profile and --seconds are for timing training steps") {
			t.Errorf("%v: exit %d, %s", extra, code, stderr)
		}
	}
}
