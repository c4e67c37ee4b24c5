//go:build unix

package train

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/relupo/relupo/internal/textsafe"
)

// lockFile is the file in an output folder that a run holds an exclusive
// lock on (flock) while it uses the folder. The kernel drops the lock when
// the process ends, however it ends, so a killed run never leaves the
// folder locked.
const lockFile = ".relupo.lock"

// lockDir takes the exclusive lock on dir (creating dir), or says that
// another run holds it. release drops the lock.
func lockDir(dir string) (release func(), err error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("train: output_dir: %w", err)
	}
	path := filepath.Join(dir, lockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("train: output_dir: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		holder, _ := os.ReadFile(path)
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			who := ""
			if h := strings.TrimSpace(string(holder)); h != "" {
				who = " (" + textsafe.Clean(h) + ")"
			}
			return nil, fmt.Errorf("train: output_dir %s is in use by another relupo run%s; wait for it to end or choose another output_dir", dir, who)
		}
		return nil, fmt.Errorf("train: locking output_dir %s: %w", dir, err)
	}
	// Say who holds the lock, for the message of a run that finds it taken.
	if err := f.Truncate(0); err == nil {
		fmt.Fprintf(f, "pid %d", os.Getpid())
	}
	return func() { f.Close() }, nil
}
