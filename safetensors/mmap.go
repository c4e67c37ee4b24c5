package safetensors

import (
	"fmt"
	"os"
)

// Mapping is a safetensors file's bytes in memory: mapped read-only from
// the file on Linux, read whole elsewhere. It stays valid after the File or
// Checkpoint it came from is closed. Its bytes must not be written.
type Mapping struct {
	data []byte
}

// Bytes returns the file's bytes.
func (m *Mapping) Bytes() []byte { return m.data }

// mapFile maps the file at path, which must still be size bytes long.
func mapFile(path string, size int64) (*Mapping, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	defer fh.Close()
	st, err := fh.Stat()
	if err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	if st.Size() != size {
		return nil, fmt.Errorf("safetensors: %s: the file changed size (%d bytes, %d when opened)", path, st.Size(), size)
	}
	if size == 0 {
		return &Mapping{}, nil
	}
	data, err := mapBytes(fh, size)
	if err != nil {
		return nil, fmt.Errorf("safetensors: %s: mapping the file: %w", path, err)
	}
	return &Mapping{data: data}, nil
}

// Map returns the file mapped into memory (see Mapping); tensor ti's bytes
// are Bytes()[ti.Begin:ti.End].
func (f *File) Map() (*Mapping, error) {
	f.mapMu.Lock()
	defer f.mapMu.Unlock()
	if f.mapping == nil {
		m, err := mapFile(f.path, f.size)
		if err != nil {
			return nil, err
		}
		f.mapping = m
	}
	return f.mapping, nil
}

// Mapped returns the named tensor's bytes inside the mapping of the file
// that holds it (mapped on first use, see Mapping): no copy is made, and
// the bytes must not be written.
func (f *File) Mapped(name string) ([]byte, error) {
	ti, err := f.lookup(name)
	if err != nil {
		return nil, err
	}
	m, err := f.Map()
	if err != nil {
		return nil, err
	}
	return m.data[ti.Begin:ti.End:ti.End], nil
}

// Mapped returns the named tensor's bytes from a mapping of its file, as
// [File.Mapped].
func (c *Checkpoint) Mapped(name string) ([]byte, error) {
	f, err := c.file(name)
	if err != nil {
		return nil, err
	}
	return f.Mapped(name)
}
