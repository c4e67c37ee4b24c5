package safetensors

import (
	"os"
	"syscall"
)

// mapBytes maps size bytes of fh read-only and shared: pages are read from
// the file on first touch, and the kernel may drop clean ones under memory
// pressure.
func mapBytes(fh *os.File, size int64) ([]byte, error) {
	return syscall.Mmap(int(fh.Fd()), 0, int(size), syscall.PROT_READ, syscall.MAP_SHARED)
}
