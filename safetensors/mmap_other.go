//go:build !linux

package safetensors

import (
	"io"
	"os"
)

// mapBytes reads the whole file: without mmap, a Mapping is a plain copy.
func mapBytes(fh *os.File, size int64) ([]byte, error) {
	b := make([]byte, size)
	if _, err := io.ReadFull(fh, b); err != nil {
		return nil, err
	}
	return b, nil
}
