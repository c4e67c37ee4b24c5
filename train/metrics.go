package train

import (
	"bufio"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"sort"
	"strings"

	"github.com/relupo/relupo/internal/atomicfile"
)

// Row is one logged event: the step and the metric values, written to
// metrics.jsonl as one flat JSON object (TRL's metric names).
type Row map[string]float64

// MarshalJSON writes the keys sorted, "step" first, so rows diff cleanly.
func (r Row) MarshalJSON() ([]byte, error) {
	keys := make([]string, 0, len(r))
	for k := range r {
		if k != "step" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	if _, ok := r["step"]; ok {
		keys = append([]string{"step"}, keys...)
	}
	var sb strings.Builder
	sb.WriteByte('{')
	for i, k := range keys {
		if i > 0 {
			sb.WriteByte(',')
		}
		kb, _ := json.Marshal(k)
		sb.Write(kb)
		sb.WriteByte(':')
		v := r[k]
		switch {
		case math.IsNaN(v) || math.IsInf(v, 0):
			sb.WriteString("null") // JSON has no NaN; a non-finite value is reported elsewhere
		case v == math.Trunc(v) && math.Abs(v) < 1e15:
			fmt.Fprintf(&sb, "%d", int64(v))
		default:
			vb, _ := json.Marshal(v)
			sb.Write(vb)
		}
	}
	sb.WriteByte('}')
	return []byte(sb.String()), nil
}

// window accumulates metrics between two log events, as the SimPO/RePO
// trainer does: every micro-batch's metrics are stored and their arithmetic
// mean is logged. The loss is the Hugging Face Trainer's: the sum of each
// micro-batch loss divided by the accumulation steps, averaged over the
// optimizer steps of the window.
type window struct {
	LossSum  float64            `json:"loss_sum"`
	Steps    int                `json:"steps"`
	Sums     map[string]float64 `json:"sums"`
	Micro    int                `json:"micro"`
	Tokens   int64              `json:"tokens"`
	Seconds  float64            `json:"seconds"`
	GradNorm float64            `json:"grad_norm"`
	// TokensSaved counts the tokens TRL's padded layout of the same
	// micro-batches would have computed beyond relupo's: the padding, and
	// each prompt's second pass when prompts are shared (logged as
	// tokens_saved_vs_padded).
	TokensSaved int64 `json:"tokens_saved"`
}

func (w *window) addMicro(metrics map[string]float64) {
	if w.Sums == nil {
		w.Sums = map[string]float64{}
	}
	for k, v := range metrics {
		w.Sums[k] += v
	}
	w.Micro++
}

func (w *window) row() Row {
	r := Row{}
	for k, v := range w.Sums {
		r[k] = v / float64(max(w.Micro, 1))
	}
	r["loss"] = w.LossSum / float64(max(w.Steps, 1))
	r["grad_norm"] = w.GradNorm
	r["tokens_saved_vs_padded"] = float64(w.TokensSaved)
	if w.Seconds > 0 {
		r["tokens_per_s"] = float64(w.Tokens) / w.Seconds
	}
	return r
}

// metricsLog appends rows to OUTPUT_DIR/metrics.jsonl.
type metricsLog struct {
	path string
}

// truncateAfter keeps only rows with step ≤ step (after a resume, the rows
// an interrupted run wrote past its checkpoint are dropped).
func (l *metricsLog) truncateAfter(step int) error {
	b, err := os.ReadFile(l.path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return err
	}
	var keep []byte
	sc := bufio.NewScanner(strings.NewReader(string(b)))
	sc.Buffer(make([]byte, 1<<20), 1<<26)
	for sc.Scan() {
		var r map[string]any
		if json.Unmarshal(sc.Bytes(), &r) != nil {
			continue // a line cut by a crash
		}
		if s, ok := r["step"].(float64); ok && s > float64(step) {
			continue
		}
		keep = append(append(keep, sc.Bytes()...), '\n')
	}
	return atomicfile.WriteFile(l.path, keep)
}

func (l *metricsLog) write(r Row) error {
	f, err := os.OpenFile(l.path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	b, _ := r.MarshalJSON()
	_, err = f.Write(append(b, '\n'))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
