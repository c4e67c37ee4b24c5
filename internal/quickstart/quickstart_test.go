package quickstart

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

// A shortened quickstart run must clearly raise held-out accuracy, with
// float32 and with bfloat16 matrix products alike.
func TestAccuracyRises(t *testing.T) {
	for _, prec := range []string{"float32", "bf16"} {
		t.Run(prec, func(t *testing.T) {
			dir := t.TempDir()
			res, err := Run(context.Background(), Options{OutputDir: dir, Epochs: 2, TrainPairs: 256, EvalPairs: 64, Threads: 2, ComputeDType: prec})
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%+v", res)
			if res.AccuracyAfter < res.AccuracyBefore+0.2 || res.AccuracyAfter < 0.8 {
				t.Errorf("accuracy %.3f → %.3f: did not rise clearly", res.AccuracyBefore, res.AccuracyAfter)
			}
			for _, f := range []string{"metrics.jsonl", "model.safetensors", "config.json"} {
				if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
					t.Error(err)
				}
			}
		})
	}
}
