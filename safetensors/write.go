package safetensors

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"unicode/utf8"

	"github.com/relupo/relupo/internal/atomicfile"
)

// Tensor is one tensor to write. Data holds the elements in row-major order
// as float32 and is converted to DType, which must be F32, F16, BF16 or F64,
// when written.
type Tensor struct {
	Name  string
	DType DType
	Shape []int
	Data  []float32
}

// The file names of a Hugging Face checkpoint.
const (
	// SingleFileName is the weights file of an unsharded checkpoint.
	SingleFileName = "model.safetensors"
	// IndexFileName is the index of a sharded checkpoint.
	IndexFileName = "model.safetensors.index.json"
)

// shardName matches the shard files WriteCheckpoint writes.
var shardName = regexp.MustCompile(`^model-[0-9]{5}-of-[0-9]{5}\.safetensors$`)

// A Source is a tensor to write whose data is produced only when its bytes
// are written, so that a checkpoint larger than memory can be written one
// tensor at a time (WriteCheckpointFrom).
type Source struct {
	Name  string
	DType DType // F32, F16, BF16 or F64
	Shape []int
	// Data returns the elements in row-major order as float32. It is called
	// once, when the tensor's bytes are written, and the slice is not kept.
	Data func() ([]float32, error)
}

// source is t as a Source whose data is t.Data.
func (t *Tensor) source() Source {
	data := t.Data
	return Source{Name: t.Name, DType: t.DType, Shape: t.Shape, Data: func() ([]float32, error) { return data, nil }}
}

// elements checks s's name, dtype and shape and returns its element count.
func (s *Source) elements() (int, error) {
	if s.Name == metadataKey {
		return 0, fmt.Errorf("tensor name %q is reserved for metadata", s.Name)
	}
	if !utf8.ValidString(s.Name) {
		return 0, fmt.Errorf("tensor name %q is not valid UTF-8", s.Name)
	}
	if !s.DType.IsFloat() {
		return 0, fmt.Errorf("tensor %q: cannot write dtype %q from float32 data (want F32, F16, BF16 or F64)", s.Name, s.DType)
	}
	if s.Data == nil {
		return 0, fmt.Errorf("tensor %q: no Data function", s.Name)
	}
	n := 1
	for _, d := range s.Shape {
		if d < 0 {
			return 0, fmt.Errorf("tensor %q: shape %v has a negative dimension", s.Name, s.Shape)
		}
		if d != 0 && n > math.MaxInt/d {
			return 0, fmt.Errorf("tensor %q: shape %v has too many elements", s.Name, s.Shape)
		}
		n *= d
	}
	return n, nil
}

// sources checks tensors, each against its own data, and returns them as
// Sources.
func sources(tensors []Tensor) ([]Source, error) {
	srcs := make([]Source, len(tensors))
	for i := range tensors {
		t := &tensors[i]
		srcs[i] = t.source()
		n, err := srcs[i].elements()
		if err != nil {
			return nil, err
		}
		if n != len(t.Data) {
			return nil, fmt.Errorf("tensor %q: shape %v needs %d elements but Data has %d", t.Name, t.Shape, n, len(t.Data))
		}
	}
	return srcs, nil
}

// encode writes srcs, sorted by name, and metadata as a safetensors file to
// w, calling each source's Data once, in the order of the file.
func encode(w io.Writer, srcs []Source, metadata map[string]string) error {
	sorted := make([]*Source, len(srcs))
	for i := range srcs {
		sorted[i] = &srcs[i]
	}
	slices.SortFunc(sorted, func(a, b *Source) int { return cmp.Compare(a.Name, b.Name) })

	var hdr bytes.Buffer
	hdr.WriteByte('{')
	if len(metadata) > 0 {
		m, err := json.Marshal(metadata)
		if err != nil {
			return err
		}
		hdr.WriteString(`"__metadata__":`)
		hdr.Write(m)
	}
	counts := make([]int, len(sorted))
	var off int64
	for i, t := range sorted {
		if i > 0 && t.Name == sorted[i-1].Name {
			return fmt.Errorf("tensor %q appears twice", t.Name)
		}
		n, err := t.elements()
		if err != nil {
			return err
		}
		counts[i] = n
		size := int64(n) * int64(t.DType.Size())
		if hdr.Len() > 1 {
			hdr.WriteByte(',')
		}
		name, _ := json.Marshal(t.Name) // a string always marshals
		hdr.Write(name)
		hdr.WriteString(`:{"dtype":"`)
		hdr.WriteString(string(t.DType))
		hdr.WriteString(`","shape":[`)
		for j, d := range t.Shape {
			if j > 0 {
				hdr.WriteByte(',')
			}
			hdr.WriteString(strconv.Itoa(d))
		}
		fmt.Fprintf(&hdr, `],"data_offsets":[%d,%d]}`, off, off+size)
		off += size
	}
	hdr.WriteByte('}')
	// Pad with spaces so that the data section starts 8-byte aligned.
	for hdr.Len()%8 != 0 {
		hdr.WriteByte(' ')
	}
	if hdr.Len() > maxHeaderSize {
		return fmt.Errorf("header of %d bytes exceeds the %d-byte limit", hdr.Len(), maxHeaderSize)
	}

	var lenBuf [8]byte
	binary.LittleEndian.PutUint64(lenBuf[:], uint64(hdr.Len()))
	if _, err := w.Write(lenBuf[:]); err != nil {
		return err
	}
	if _, err := w.Write(hdr.Bytes()); err != nil {
		return err
	}
	buf := make([]byte, 0, 64<<10)
	for i, t := range sorted {
		data, err := t.Data()
		if err != nil {
			return fmt.Errorf("tensor %q: %w", t.Name, err)
		}
		if len(data) != counts[i] {
			return fmt.Errorf("tensor %q: shape %v needs %d elements but its data has %d", t.Name, t.Shape, counts[i], len(data))
		}
		for len(data) > 0 {
			n := min(len(data), cap(buf)/t.DType.Size())
			buf = appendData(buf[:0], t.DType, data[:n])
			if _, err := w.Write(buf); err != nil {
				return err
			}
			data = data[n:]
		}
	}
	return nil
}

// appendData appends vals converted to dtype, little-endian, to buf.
func appendData(buf []byte, dtype DType, vals []float32) []byte {
	le := binary.LittleEndian
	switch dtype {
	case F32:
		for _, v := range vals {
			buf = le.AppendUint32(buf, math.Float32bits(v))
		}
	case F16:
		for _, v := range vals {
			buf = le.AppendUint16(buf, F32ToF16(v))
		}
	case BF16:
		for _, v := range vals {
			buf = le.AppendUint16(buf, F32ToBF16(v))
		}
	case F64:
		for _, v := range vals {
			buf = le.AppendUint64(buf, math.Float64bits(float64(v)))
		}
	}
	return buf
}

// Write writes tensors, sorted by name, and metadata (omitted when empty) as
// a safetensors file at path. The header is padded so that the data starts
// 8-byte aligned. The file is replaced atomically: the data goes to a
// temporary file in the same folder, which is synced and renamed over path,
// and then the folder is synced. On error path is left as it was.
func Write(path string, tensors []Tensor, metadata map[string]string) error {
	srcs, err := sources(tensors)
	if err != nil {
		return fmt.Errorf("safetensors: %s: %w", path, err)
	}
	return writeFile(path, srcs, metadata)
}

// writeFile is Write for sources.
func writeFile(path string, srcs []Source, metadata map[string]string) error {
	err := atomicfile.Write(path, func(w io.Writer) error { return encode(w, srcs, metadata) })
	if err != nil {
		return fmt.Errorf("safetensors: %w", err) // atomicfile names the path
	}
	return nil
}

// index is the JSON layout of model.safetensors.index.json.
type index struct {
	Metadata  map[string]any    `json:"metadata"`
	WeightMap map[string]string `json:"weight_map"`
}

// WriteCheckpoint writes tensors and metadata into dir (created if needed)
// as a Hugging Face checkpoint. When maxShardBytes is 0 or negative, or the
// tensors' data totals at most maxShardBytes, it writes model.safetensors.
// Otherwise it splits the tensors, in the order given, into shards of at most
// maxShardBytes of data each (a larger tensor gets a shard of its own), writes
// them as model-0000K-of-0000N.safetensors, each sorted by name and carrying
// metadata, and then model.safetensors.index.json with the total size and
// the weight map.
//
// Each file is replaced atomically. Once the new files are in place, files
// of an earlier save that the new layout does not use (model.safetensors,
// the index, model-*-of-*.safetensors shards) are removed, so loaders never
// mix two saves.
func WriteCheckpoint(dir string, tensors []Tensor, metadata map[string]string, maxShardBytes int64) error {
	srcs, err := sources(tensors)
	if err != nil {
		return fmt.Errorf("safetensors: %s: %w", cmp.Or(dir, "."), err)
	}
	return WriteCheckpointFrom(dir, srcs, metadata, maxShardBytes)
}

// WriteCheckpointFrom is WriteCheckpoint for tensors whose data is produced
// as it is written: each source's Data is called once, while its shard is
// written, so memory holds one tensor's data at a time, not the checkpoint.
// An error from Data leaves the file being written as it was.
func WriteCheckpointFrom(dir string, srcs []Source, metadata map[string]string, maxShardBytes int64) error {
	if dir == "" {
		dir = "."
	}
	fail := func(err error) error { return fmt.Errorf("safetensors: %s: %w", dir, err) }
	sizes := make([]int64, len(srcs))
	var total int64
	seen := make(map[string]bool, len(srcs))
	for i := range srcs {
		t := &srcs[i]
		if seen[t.Name] {
			return fail(fmt.Errorf("tensor %q appears twice", t.Name))
		}
		seen[t.Name] = true
		n, err := t.elements()
		if err != nil {
			return fail(err)
		}
		sizes[i] = int64(n) * int64(t.DType.Size())
		total += sizes[i]
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fail(err)
	}

	var shards [][]Source
	if maxShardBytes > 0 && total > maxShardBytes {
		var cur []Source
		var curSize int64
		for i, t := range srcs {
			if len(cur) > 0 && curSize+sizes[i] > maxShardBytes {
				shards = append(shards, cur)
				cur, curSize = nil, 0
			}
			cur = append(cur, t)
			curSize += sizes[i]
		}
		shards = append(shards, cur)
	}
	if len(shards) > 99999 {
		return fail(fmt.Errorf("%d shards exceed the 99999 that shard names allow", len(shards)))
	}

	keep := make(map[string]bool)
	if shards == nil {
		if err := writeFile(filepath.Join(dir, SingleFileName), srcs, metadata); err != nil {
			return err
		}
		keep[SingleFileName] = true
	} else {
		idx := index{Metadata: map[string]any{"total_size": total}, WeightMap: make(map[string]string, len(srcs))}
		for k, shard := range shards {
			name := fmt.Sprintf("model-%05d-of-%05d.safetensors", k+1, len(shards))
			if err := writeFile(filepath.Join(dir, name), shard, metadata); err != nil {
				return err
			}
			keep[name] = true
			for _, t := range shard {
				idx.WeightMap[t.Name] = name
			}
		}
		// The index goes last, so that it never names a shard not yet written.
		err := atomicfile.Write(filepath.Join(dir, IndexFileName), func(w io.Writer) error {
			enc := json.NewEncoder(w)
			enc.SetEscapeHTML(false)
			enc.SetIndent("", "  ")
			return enc.Encode(idx)
		})
		if err != nil {
			return fail(err)
		}
		keep[IndexFileName] = true
	}
	return removeStale(dir, keep)
}

// removeStale removes the checkpoint files in dir that keep does not list.
// The index goes first, so that no loader follows it to a removed shard.
func removeStale(dir string, keep map[string]bool) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("safetensors: %s: removing stale files: %w", dir, err)
	}
	stale := []string{}
	if !keep[IndexFileName] {
		stale = append(stale, IndexFileName)
	}
	for _, e := range entries {
		n := e.Name()
		if !keep[n] && (n == SingleFileName || shardName.MatchString(n)) {
			stale = append(stale, n)
		}
	}
	var errs []error
	for _, n := range stale {
		if err := os.Remove(filepath.Join(dir, n)); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	if err := atomicfile.SyncDir(dir); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("safetensors: %s: removing stale files: %w", dir, err)
	}
	return nil
}
