package train

import (
	"bufio"
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/relupo/relupo/internal/testutil"
)

// TestTrainSharedDatasets trains two steps on each shared data set with the
// tiny Llama through Setup, as `relupo train` does, and checks the metrics.
func TestTrainSharedDatasets(t *testing.T) {
	dir := testutil.SharedPath(t, "fixtures", "models", "tiny-random-llama")
	for _, ds := range []struct{ file, format string }{
		{"dpo_en_demo.json", "auto"},
		{"hh-rlhf-harmless-base-test.jsonl.gz", "auto"},
	} {
		t.Run(ds.file, func(t *testing.T) {
			// A fraction keeps the tokenization quick.
			path := testutil.SharedPath(t, "fixtures", "data", ds.file)
			o := DefaultOptions()
			o.Model = dir
			o.Data = []string{path + ":0.1"}
			o.DataFormat = ds.format
			o.OutputDir = t.TempDir()
			o.MaxSteps = 2
			o.MaxLength, o.MaxPromptLength = 128, 64
			o.LoggingSteps = 1
			o.LearningRate = 1e-3
			o.SkipInvalid = true
			o.Threads = 2
			var notes []string
			tr, err := Setup(context.Background(), o, func(s string) { notes = append(notes, s) })
			if err != nil {
				t.Fatal(err)
			}
			if len(tr.Train) < 4 {
				t.Fatalf("%d training examples", len(tr.Train))
			}
			for _, e := range tr.Train {
				if len(e.Prompt)+max(len(e.Chosen), len(e.Rejected)) > o.MaxLength {
					t.Fatalf("%s: %d+%d/%d tokens, over max_length", e.Source, len(e.Prompt), len(e.Chosen), len(e.Rejected))
				}
			}
			sum, err := tr.Run(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if sum.Steps != 2 || math.IsNaN(sum.TrainLoss) || math.IsInf(sum.TrainLoss, 0) {
				t.Errorf("summary %+v", sum)
			}
			f, err := os.Open(filepath.Join(o.OutputDir, "metrics.jsonl"))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			rows := 0
			sc := bufio.NewScanner(f)
			for sc.Scan() {
				var row map[string]float64
				if err := json.Unmarshal(sc.Bytes(), &row); err != nil {
					t.Fatalf("metrics line %q: %v", sc.Text(), err)
				}
				for k, v := range row {
					if math.IsNaN(v) || math.IsInf(v, 0) {
						t.Errorf("metric %s = %v", k, v)
					}
				}
				if _, ok := row["loss"]; ok {
					rows++
				}
			}
			if rows != 2 {
				t.Errorf("%d metrics rows with a loss, want 2", rows)
			}
		})
	}
}
