// Package atomicfile writes files so that a crash, a full disk or a kill -9
// never leaves a half-written file under the final name: data goes to a
// temporary file in the same folder, is synced, and is renamed over the
// destination, and the folder is synced so the rename itself is durable.
package atomicfile

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
)

// Write creates path atomically with the bytes fill writes. On any error the
// destination is untouched and the temporary file is removed.
func Write(path string, fill func(w io.Writer) error) (err error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	bw := bufio.NewWriterSize(tmp, 1<<20)
	if err = fill(bw); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err = bw.Flush(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err = tmp.Sync(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err = tmp.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err = os.Chmod(tmp.Name(), 0o644); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err = os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return SyncDir(filepath.Dir(path))
}

// WriteFile creates path atomically with data.
func WriteFile(path string, data []byte) error {
	return Write(path, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// SyncDir flushes a folder's entries (new names, renames) to disk. It does
// nothing on Windows, where folders cannot be opened for syncing.
func SyncDir(dir string) error {
	if runtime.GOOS == "windows" {
		return nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("syncing %s: %w", dir, err)
	}
	return nil
}

// RemoveDir deletes a folder so that a crash midway never leaves a
// half-deleted folder under its name: the folder is first renamed to
// dir + ".deleting" (atomically), then removed. A missing folder is not an
// error.
func RemoveDir(dir string) error {
	trash := dir + ".deleting"
	if err := os.RemoveAll(trash); err != nil {
		return err
	}
	if err := os.Rename(dir, trash); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return err
	}
	return os.RemoveAll(trash)
}

// CleanLeftovers removes what a killed run may have left in dir among the
// folders whose names start with prefix: one being written (prefix*.tmp)
// or being deleted by RemoveDir (prefix*.deleting).
func CleanLeftovers(dir, prefix string) error {
	for _, suffix := range []string{".tmp", ".deleting"} {
		found, err := filepath.Glob(filepath.Join(dir, prefix+"*"+suffix))
		if err != nil {
			return err
		}
		for _, d := range found {
			if err := os.RemoveAll(d); err != nil {
				return err
			}
		}
	}
	return nil
}
