package main

import (
	"bytes"
	"encoding/json"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/relupo/relupo/bench"
	"github.com/spf13/cobra"
)

// The benchmark's log lines carry the label however they are split into
// writes.
func TestLabelWriter(t *testing.T) {
	for _, tc := range []struct {
		name   string
		writes []string
	}{
		{"line by line", []string{"run 1: a\n", "run 2: b\n"}},
		{"together", []string{"run 1: a\nrun 2: b\n"}},
		{"in pieces", []string{"run 1", ": a\nrun", " 2: b", "\n"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b strings.Builder
			w := &labelWriter{w: &b, label: "[30m decode] "}
			for _, s := range tc.writes {
				if n, err := w.Write([]byte(s)); n != len(s) || err != nil {
					t.Fatalf("Write(%q) = %d, %v", s, n, err)
				}
			}
			if want := "[30m decode] run 1: a\n[30m decode] run 2: b\n"; b.String() != want {
				t.Errorf("got %q, want %q", b.String(), want)
			}
		})
	}
}

func TestPrintDecodeBench(t *testing.T) {
	res := bench.DecodeResult{Mode: "decode", Sequences: 4, PromptTokens: 8, NewTokens: 8, RunsMeasured: 3,
		TokensPerSecond: 1234.4, StepMillis: 2.5, PrefillTokensPerSecond: 5000, PeakRSSGB: 0.5, WeightsDType: "bf16"}
	var out bytes.Buffer
	cmd := &cobra.Command{}
	cmd.SetOut(&out)
	if err := printDecodeBench(cmd, "135m", res, false); err != nil {
		t.Fatal(err)
	}
	if want := "135m decode (bf16 weights): 1234 tokens/s (4 sequences × 8 new tokens after 8-token prompts, 2.5 ms/step, median of 3); prefill 5000 tokens/s; peak RSS 0.50 GB\n"; out.String() != want {
		t.Errorf("got %q, want %q", out.String(), want)
	}
	out.Reset()
	if err := printDecodeBench(cmd, "135m", res, true); err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(out.Bytes(), &m); err != nil {
		t.Fatal(err)
	}
	want := []string{"decode_s_median", "go", "kernels", "mode", "new_tokens", "params_total", "peak_rss_GB", "prefill_s_median",
		"prefill_tokens_per_s", "preset", "prompt_tokens", "runs_measured", "sequences", "step_ms_median", "threads", "tokens_per_s", "weights_dtype"}
	if got := slices.Sorted(maps.Keys(m)); !slices.Equal(got, want) || m["preset"] != "135m" || m["new_tokens"] != 8.0 || m["weights_dtype"] != "bf16" {
		t.Errorf("JSON %v, want the keys %v", m, want)
	}
}
