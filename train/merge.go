package train

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/relupo/relupo/kernels"
	"github.com/relupo/relupo/model"
	"github.com/relupo/relupo/peft"
	"github.com/relupo/relupo/safetensors"
)

// checkpointDType is the floating-point dtype of a model folder's weights.
func checkpointDType(dir string) (safetensors.DType, error) {
	ck, err := safetensors.OpenCheckpoint(dir)
	if err != nil {
		return "", err
	}
	defer ck.Close()
	return ck.DType(), nil
}

// MergeOptions are the inputs of `relupo merge`.
type MergeOptions struct {
	// Model is the base model folder the adapter was trained on.
	Model string
	// Adapter is the PEFT adapter folder.
	Adapter string
	// OutputDir receives the merged model.
	OutputDir string
	// SaveDType is the merged weights' dtype: "auto" (the base's), float32,
	// float16 or bfloat16.
	SaveDType string
	// Overwrite replaces a model already in OutputDir.
	Overwrite bool
	// Threads is the worker count of the products (0: all cores).
	Threads int
}

// Merge writes base + adapter as one model (`relupo merge`): W + scale·B·A
// for every adapted layer, computed in float32 and saved in the base's
// dtype (each merged weight rounded once), with config.json and the
// tokenizer files (the adapter folder's when it has them, as a relupo run
// saves the chat template it trained with there, else the base's). The
// folder is written aside and swapped in whole. The merge streams one tensor at
// a time (peft.MergeFolder), so it needs memory for the largest tensor, not
// the model.
func Merge(o MergeOptions) error {
	switch {
	case o.Model == "" || o.Adapter == "" || o.OutputDir == "":
		return &UsageError{errors.New("merge: --model, --adapter and --output-dir are required")}
	case sameFolder(o.Model, o.OutputDir):
		return &UsageError{fmt.Errorf("merge: --output-dir %s is the base model's folder: choose another", o.OutputDir)}
	case sameFolder(o.Adapter, o.OutputDir) && !o.Overwrite:
		return &UsageError{fmt.Errorf("merge: --output-dir %s is the adapter's folder: the merged model would sit beside the adapter (as train --merge-adapter leaves it); pass --overwrite-output-dir to do that", o.OutputDir)}
	}
	if _, err := saveDType(o.SaveDType, ""); err != nil {
		return &UsageError{fmt.Errorf("merge: %w", err)}
	}
	if !peft.IsAdapter(o.Adapter) {
		return fmt.Errorf("merge: --adapter %s has no %s", o.Adapter, peft.ConfigFile)
	}
	if !o.Overwrite && !sameFolder(o.Adapter, o.OutputDir) {
		if _, err := os.Stat(filepath.Join(o.OutputDir, "config.json")); err == nil {
			return &UsageError{fmt.Errorf("merge: %s already holds a model (config.json): pass --overwrite-output-dir to replace it", o.OutputDir)}
		}
	}
	mc, err := model.LoadConfig(o.Model)
	if err != nil {
		return fmt.Errorf("merge: %w", err)
	}
	a, _, err := peft.Load(o.Adapter, mc)
	if err != nil {
		return fmt.Errorf("merge: %w", err)
	}
	dtype, err := checkpointDType(o.Model)
	if err != nil {
		return fmt.Errorf("merge: %w", err)
	}
	out, err := saveDType(o.SaveDType, dtype)
	if err != nil {
		return fmt.Errorf("merge: %w", err)
	}
	pool := kernels.NewPool(o.Threads) // float32 products
	defer pool.Close()
	if err := os.MkdirAll(o.OutputDir, 0o755); err != nil {
		return fmt.Errorf("merge: %w", err)
	}
	release, err := lockDir(o.OutputDir)
	if err != nil {
		return fmt.Errorf("merge: %w", err)
	}
	defer release()
	if err := recoverFinal(o.OutputDir); err != nil {
		return err
	}
	keepAdapter := sameFolder(o.Adapter, o.OutputDir)
	return writeFinal(o.OutputDir, func(dir string) error {
		if err := peft.MergeFolder(o.Model, a, dir, out, 0, pool); err != nil {
			return err
		}
		if keepAdapter { // the adapter's own files stay beside the merged model
			for _, name := range []string{peft.ConfigFile, peft.WeightsFile, "README.md"} {
				if err := copyFile(filepath.Join(o.Adapter, name), filepath.Join(dir, name)); err != nil {
					return err
				}
			}
		}
		return CopyTokenizerFiles(dir, o.Adapter, o.Model)
	})
}
