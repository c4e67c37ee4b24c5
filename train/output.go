package train

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
)

// The output folder belongs to one run. A new run refuses a folder that
// holds anything, as the Hugging Face scripts do, unless it is asked to
// overwrite it (then the earlier run's checkpoints, metrics and reference
// cache are removed first, so that nothing mixes) or to resume. Every
// checkpoint records the run's options and the fingerprints of its data
// and model, and a resume refuses a checkpoint whose run differs.

// checkOutput enforces the rule on dir before a run writes into it.
func checkOutput(dir string, overwrite, resume bool) error {
	entries, err := os.ReadDir(dir)
	entries = slices.DeleteFunc(entries, func(e os.DirEntry) bool { return e.Name() == lockFile })
	if os.IsNotExist(err) || err == nil && len(entries) == 0 || resume {
		return nil
	}
	if err != nil {
		return fmt.Errorf("train: output_dir: %w", err)
	}
	if !overwrite {
		var names []string
		for _, e := range entries[:min(len(entries), 4)] {
			names = append(names, e.Name())
		}
		if len(entries) > 4 {
			names = append(names, "…")
		}
		return &UsageError{fmt.Errorf("output_dir %s is not empty (%s): pass --overwrite-output-dir to start a new run there (its checkpoints, metrics and reference cache are removed), or --resume-from-checkpoint latest to continue the run it holds", dir, strings.Join(names, ", "))}
	}
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, "checkpoint-") || name == "metrics.jsonl" || name == refCache {
			if err := os.RemoveAll(filepath.Join(dir, name)); err != nil {
				return fmt.Errorf("train: overwrite_output_dir: %w", err)
			}
		}
	}
	return nil
}

// changeable are the options that may differ when a run is resumed: where
// and how often it logs, evaluates and saves, its threads and evaluation
// batch, and how the batch is split over ranks (per-device batch and
// accumulation, as long as the global batch and so the plan stay the
// same; see Trainer.regroup), gradient checkpointing and merge_adapter.
var changeable = []string{"logging_steps", "eval_steps", "save_steps", "save_total_limit", "output_dir", "resume_from_checkpoint",
	"threads", "force", "overwrite_output_dir", "per_device_eval_batch_size", "eval_data", "skip_nonfinite_steps",
	"per_device_train_batch_size", "gradient_accumulation_steps", "zero_stage",
	"gradient_checkpointing", "merge_adapter"} // checkpointing gives bit-identical steps; merging only adds output

// Record is what a checkpoint remembers of the run that wrote it: every
// option that decides the result, and the fingerprints of the data and
// the model.
type Record struct {
	Options map[string]string `json:"options"`
	Data    []FileInfo        `json:"data"`
	// Model fingerprints the input model: the SHA-256 of its config.json
	// and the total size of its weight files.
	Model string `json:"model"`
}

// record makes the Record of a run from its options and its training data
// files (see hashFiles).
func record(o Options, files []FileInfo) (*Record, error) {
	r := &Record{Options: map[string]string{}}
	v := reflect.ValueOf(o)
	for i := 0; i < v.NumField(); i++ {
		key := v.Type().Field(i).Tag.Get("key")
		if key == "" || slices.Contains(changeable, key) {
			continue
		}
		r.Options[key] = optionString(v.Field(i).Interface())
	}
	for _, fi := range files {
		fi.Path = filepath.Base(fi.Path) // a moved file is the same data
		r.Data = append(r.Data, fi)
	}
	var err error
	if r.Model, err = modelFingerprint(o.Model); err != nil {
		return nil, err
	}
	return r, nil
}

// optionString formats an option's value for comparison.
func optionString(v any) string {
	switch x := v.(type) {
	case float64:
		if math.IsNaN(x) {
			return "unset"
		}
		return strconv.FormatFloat(x, 'g', -1, 64)
	case []string:
		return strings.Join(x, ",")
	}
	return fmt.Sprint(v)
}

// modelFingerprint hashes a model folder's config.json and sums the sizes
// of its weight files (hashing gigabytes of weights at every start would
// cost more than it is worth).
func modelFingerprint(dir string) (string, error) {
	f, err := os.Open(filepath.Join(dir, "config.json"))
	if err != nil {
		return "", fmt.Errorf("train: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("train: %w", err)
	}
	var size int64
	weights, _ := filepath.Glob(filepath.Join(dir, "*.safetensors"))
	for _, w := range weights {
		if st, err := os.Stat(w); err == nil {
			size += st.Size()
		}
	}
	return fmt.Sprintf("config.json sha256 %s, %d bytes of weights", hex.EncodeToString(h.Sum(nil))[:16], size), nil
}

// differences lists how the run a checkpoint recorded differs from this
// one.
func (r *Record) differences(now *Record) []string {
	var out []string
	for _, k := range slices.Sorted(func(yield func(string) bool) {
		for k := range r.Options {
			if !yield(k) {
				return
			}
		}
	}) {
		if v, ok := now.Options[k]; ok && v != r.Options[k] {
			out = append(out, fmt.Sprintf("%s was %s, now %s", k, r.Options[k], v))
		}
	}
	if !reflect.DeepEqual(r.Data, now.Data) {
		out = append(out, fmt.Sprintf("the data files were %s, now %s", fileList(r.Data), fileList(now.Data)))
	}
	if r.Model != now.Model {
		out = append(out, fmt.Sprintf("the model was %s, now %s", r.Model, now.Model))
	}
	return out
}

func fileList(fs []FileInfo) string {
	var s []string
	for _, f := range fs {
		s = append(s, fmt.Sprintf("%s (%d bytes, sha256 %.12s…)", f.Path, f.Bytes, f.SHA256))
	}
	return strings.Join(s, ", ")
}
