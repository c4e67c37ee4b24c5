//go:build !unix

package train

import (
	"fmt"
	"os"
)

// lockFile is the lock file's name (see lock_unix.go); without flock the
// folder is not locked.
const lockFile = ".relupo.lock"

// lockDir creates dir; systems without flock get no lock.
func lockDir(dir string) (release func(), err error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("train: output_dir: %w", err)
	}
	return func() {}, nil
}
