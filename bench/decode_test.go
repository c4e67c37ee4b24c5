package bench

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/relupo/relupo/kernels"
	"github.com/relupo/relupo/model"
)

// decodeTestShape is a tiny Llama: vocab 256, hidden 32, 2 layers, 4 heads, 2 kv heads.
var decodeTestShape = model.Config{ModelType: "llama", VocabSize: 256, HiddenSize: 32, IntermediateSize: 64, NumLayers: 2,
	NumHeads: 4, NumKVHeads: 2, HeadDim: 8, RMSNormEps: 1e-5, RopeTheta: 10000}

func TestDecode(t *testing.T) {
	for _, tc := range []struct {
		name string
		c    DecodeConfig
	}{
		{"float32", DecodeConfig{Seq: 32, Pairs: 2, Runs: 3, Threads: 2}},
		{"bf16, all cores", DecodeConfig{Seq: 8, Pairs: 1, Runs: 1, Precision: kernels.BF16}},
		{"seq below 4", DecodeConfig{Seq: 1, Pairs: 1, Runs: 1, Threads: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var log strings.Builder
			c := tc.c
			c.Model, c.Log = decodeTestShape, &log
			r, err := Decode(context.Background(), c)
			if err != nil {
				t.Fatal(err)
			}
			threads := c.Threads
			if threads == 0 {
				threads = runtime.GOMAXPROCS(0)
			}
			n := max(c.Seq/4, 1)
			if r.Mode != "decode" || r.Threads != threads || r.Sequences != 2*c.Pairs || r.PromptTokens != n || r.NewTokens != n ||
				r.RunsMeasured != c.Runs || r.ParamsTotal != decodeTestShape.NumParams() || r.Kernels == "" || r.Go != runtime.Version() {
				t.Errorf("result %+v", r)
			}
			if !(r.DecodeSeconds > 0 && r.TokensPerSecond > 0 && r.StepMillis > 0 && r.PrefillSeconds > 0 && r.PrefillTokensPerSecond > 0) {
				t.Errorf("times %+v", r)
			}
			if runtime.GOOS == "linux" && !(r.PeakRSSGB > 0 && r.PeakRSSGB < 1e4) {
				t.Errorf("peak RSS %v GB", r.PeakRSSGB)
			}
			if lines := strings.Split(strings.TrimSuffix(log.String(), "\n"), "\n"); len(lines) != c.Runs || !strings.HasPrefix(lines[0], "run 1: prefill ") {
				t.Errorf("log %q", log.String())
			}
		})
	}
}

// The JSON keys are those BENCHMARKS.md and the PyTorch baselines' results
// use; "preset" is the command's.
func TestDecodeResultJSON(t *testing.T) {
	b, err := json.Marshal(DecodeResult{})
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	want := []string{"decode_s_median", "go", "kernels", "mode", "new_tokens", "params_total", "peak_rss_GB", "prefill_s_median",
		"prefill_tokens_per_s", "prompt_tokens", "runs_measured", "sequences", "step_ms_median", "threads", "tokens_per_s", "weights_dtype"}
	if got := slices.Sorted(maps.Keys(m)); !slices.Equal(got, want) {
		t.Errorf("keys %v, want %v", got, want)
	}
}

func TestDecodeErrors(t *testing.T) {
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	for _, tc := range []struct {
		name string
		ctx  context.Context
		c    DecodeConfig
		want string
	}{
		{"zero config", context.Background(), DecodeConfig{}, "model shape"},
		{"no runs", context.Background(), DecodeConfig{Model: decodeTestShape, Seq: 8, Pairs: 1}, "runs 0"},
		{"no pairs", context.Background(), DecodeConfig{Model: decodeTestShape, Seq: 8, Runs: 1}, "pairs 0"},
		{"cancelled", cancelled, DecodeConfig{Model: decodeTestShape, Seq: 8, Pairs: 1, Runs: 1}, context.Canceled.Error()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Decode(tc.ctx, tc.c)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one mentioning %q", err, tc.want)
			}
			if tc.ctx.Err() != nil && !errors.Is(err, tc.ctx.Err()) {
				t.Errorf("error %v is not the context's", err)
			}
		})
	}
}
