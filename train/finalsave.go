package train

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/relupo/relupo/internal/atomicfile"
	"github.com/relupo/relupo/peft"
)

// The final model is written beside the output folder's files, in
// OUTPUT_DIR/.final.tmp, and only once complete renamed to
// OUTPUT_DIR/.final.ready (one atomic step). Then it replaces the folder's
// earlier model (installFinal): the earlier config.json is removed first,
// the earlier weights, shards and tokenizer files are replaced or removed,
// and the new config.json comes last. So whenever the process dies,
// config.json is either absent (the swap is under way, and .final.ready
// holds the whole new model) or the new one beside exactly the new files:
// new weights never sit beside an old config. The next run that takes the
// folder's lock finishes an interrupted swap.

const (
	finalStage = ".final.tmp"
	finalReady = ".final.ready"
	// finalManifest, in the staged folder, lists the new model's files.
	finalManifest = ".files"
)

// isFinalFile reports whether name is a file of the final model that a save
// writes (or an earlier save wrote) in the output folder.
func isFinalFile(name string) bool {
	switch {
	case name == "config.json", name == "README.md", name == "model.safetensors", name == "model.safetensors.index.json",
		name == peft.ConfigFile, name == peft.WeightsFile, slices.Contains(tokenizerFiles, name):
		return true
	case strings.HasPrefix(name, "model-") && strings.HasSuffix(name, ".safetensors"): // shards
		return true
	}
	return false
}

// writeFinal writes the final model into out with write (which fills the
// folder it is given) and swaps it in as a whole.
func writeFinal(out string, write func(dir string) error) error {
	stage, ready := filepath.Join(out, finalStage), filepath.Join(out, finalReady)
	for _, d := range []string{stage, ready} {
		if err := os.RemoveAll(d); err != nil {
			return fmt.Errorf("save: %w", err)
		}
	}
	if err := os.MkdirAll(stage, 0o755); err != nil {
		return fmt.Errorf("save: %w", err)
	}
	if err := write(stage); err != nil {
		os.RemoveAll(stage)
		return fmt.Errorf("save: %w (the earlier files in %s are intact)", err, out)
	}
	written, err := os.ReadDir(stage)
	if err != nil {
		return fmt.Errorf("save: %w", err)
	}
	var names []string
	for _, e := range written {
		names = append(names, e.Name())
	}
	if err := atomicfile.WriteFile(filepath.Join(stage, finalManifest), []byte(strings.Join(names, "\n")+"\n")); err != nil {
		return fmt.Errorf("save: %w", err)
	}
	if err := atomicfile.SyncDir(stage); err != nil {
		return fmt.Errorf("save: %w", err)
	}
	if err := os.Rename(stage, ready); err != nil {
		return fmt.Errorf("save: %w", err)
	}
	if err := atomicfile.SyncDir(out); err != nil {
		return fmt.Errorf("save: %w", err)
	}
	return installFinal(out, -1)
}

// recoverFinal readies out for a run: a final model being written when a
// run died is removed, one being swapped in is finished.
func recoverFinal(out string) error {
	if err := os.RemoveAll(filepath.Join(out, finalStage)); err != nil {
		return fmt.Errorf("train: %w", err)
	}
	return installFinal(out, -1)
}

// installFinal moves the complete model in out/.final.ready into out (see
// above). A test passes stop ≥ 0 to end after that many operations, as a
// kill would; -1 runs them all. Nothing to install is not an error.
func installFinal(out string, stop int) error {
	ready := filepath.Join(out, finalReady)
	entries, err := os.ReadDir(ready)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("save: %w", err)
	}
	// The manifest lists the new model's files: an interrupted install has
	// already moved some of them out of ready. Its anchor, installed last,
	// is config.json, or adapter_config.json for an adapter alone.
	b, err := os.ReadFile(filepath.Join(ready, finalManifest))
	newNames := strings.Fields(string(b))
	anchor := "config.json"
	if !slices.Contains(newNames, anchor) {
		anchor = peft.ConfigFile
	}
	if err != nil || !slices.Contains(newNames, anchor) {
		// Not a model this package wrote: leave it for a person to see.
		return fmt.Errorf("save: %s holds no complete model (%d files); remove it", ready, len(entries))
	}
	if _, err := os.Stat(filepath.Join(ready, anchor)); errors.Is(err, os.ErrNotExist) {
		// The new config.json is in place: only the cleanup was left.
		if stop != 0 {
			return os.RemoveAll(ready)
		}
		return nil
	}
	old, err := os.ReadDir(out)
	if err != nil {
		return fmt.Errorf("save: %w", err)
	}
	// The earlier anchors go first: an adapter's config beside a new
	// model's weights (or the reverse) would load the wrong thing.
	anchors := []string{"config.json", peft.ConfigFile}
	ops := []func() error{
		func() error { return removeIfPresent(filepath.Join(out, anchors[0])) },
		func() error { return removeIfPresent(filepath.Join(out, anchors[1])) },
		func() error { return atomicfile.SyncDir(out) },
	}
	for _, e := range old {
		name := e.Name()
		if !slices.Contains(anchors, name) && isFinalFile(name) && !e.IsDir() && !slices.Contains(newNames, name) {
			ops = append(ops, func() error { return removeIfPresent(filepath.Join(out, name)) })
		}
	}
	for _, name := range newNames {
		if name != anchor {
			ops = append(ops, func() error { return renameIfPresent(filepath.Join(ready, name), filepath.Join(out, name)) })
		}
	}
	ops = append(ops,
		func() error { return atomicfile.SyncDir(out) },
		func() error { return os.Rename(filepath.Join(ready, anchor), filepath.Join(out, anchor)) },
		func() error { return atomicfile.SyncDir(out) },
		func() error { return os.RemoveAll(ready) },
	)
	for i, op := range ops {
		if stop >= 0 && i >= stop {
			return nil
		}
		if err := op(); err != nil {
			return fmt.Errorf("save: installing the final model in %s: %w", out, err)
		}
	}
	return nil
}

func removeIfPresent(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// renameIfPresent renames src to dst; a src already moved (by an earlier,
// interrupted install) is not an error.
func renameIfPresent(src, dst string) error {
	if err := os.Rename(src, dst); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// lockOutput takes the output folder's lock for this run (rank 0 only; once
// per Trainer) and finishes a final save an earlier run left half done.
func (t *Trainer) lockOutput() error {
	if t.unlock != nil || !t.writer() || t.Config.Output.Dir == "" {
		return nil
	}
	release, err := lockDir(t.Config.Output.Dir)
	if err != nil {
		return err
	}
	if err := recoverFinal(t.Config.Output.Dir); err != nil {
		release()
		return err
	}
	t.unlock = release
	return nil
}

// unlockOutput drops the output folder's lock.
func (t *Trainer) unlockOutput() {
	if t.unlock != nil {
		t.unlock()
		t.unlock = nil
	}
}
