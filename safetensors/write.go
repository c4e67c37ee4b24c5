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

// byteSize checks t and returns the number of bytes its data takes on disk.
func (t *Tensor) byteSize() (int64, error) {
	if t.Name == metadataKey {
		return 0, fmt.Errorf("tensor name %q is reserved for metadata", t.Name)
	}
	if !utf8.ValidString(t.Name) {
		return 0, fmt.Errorf("tensor name %q is not valid UTF-8", t.Name)
	}
	if !t.DType.IsFloat() {
		return 0, fmt.Errorf("tensor %q: cannot write dtype %q from float32 data (want F32, F16, BF16 or F64)", t.Name, t.DType)
	}
	n := 1
	for _, d := range t.Shape {
		if d < 0 {
			return 0, fmt.Errorf("tensor %q: shape %v has a negative dimension", t.Name, t.Shape)
		}
		if d != 0 && n > math.MaxInt/d {
			return 0, fmt.Errorf("tensor %q: shape %v has too many elements", t.Name, t.Shape)
		}
		n *= d
	}
	if n != len(t.Data) {
		return 0, fmt.Errorf("tensor %q: shape %v needs %d elements but Data has %d", t.Name, t.Shape, n, len(t.Data))
	}
	return int64(n) * int64(t.DType.Size()), nil
}

// encode writes tensors, sorted by name, and metadata as a safetensors file
// to w.
func encode(w io.Writer, tensors []Tensor, metadata map[string]string) error {
	sorted := make([]*Tensor, len(tensors))
	for i := range tensors {
		sorted[i] = &tensors[i]
	}
	slices.SortFunc(sorted, func(a, b *Tensor) int { return cmp.Compare(a.Name, b.Name) })

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
	var off int64
	for i, t := range sorted {
		if i > 0 && t.Name == sorted[i-1].Name {
			return fmt.Errorf("tensor %q appears twice", t.Name)
		}
		size, err := t.byteSize()
		if err != nil {
			return err
		}
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
	for _, t := range sorted {
		for data := t.Data; len(data) > 0; {
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
	err := atomicfile.Write(path, func(w io.Writer) error { return encode(w, tensors, metadata) })
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
	if dir == "" {
		dir = "."
	}
	fail := func(err error) error { return fmt.Errorf("safetensors: %s: %w", dir, err) }
	sizes := make([]int64, len(tensors))
	var total int64
	seen := make(map[string]bool, len(tensors))
	for i := range tensors {
		t := &tensors[i]
		if seen[t.Name] {
			return fail(fmt.Errorf("tensor %q appears twice", t.Name))
		}
		seen[t.Name] = true
		size, err := t.byteSize()
		if err != nil {
			return fail(err)
		}
		sizes[i] = size
		total += size
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fail(err)
	}

	var shards [][]Tensor
	if maxShardBytes > 0 && total > maxShardBytes {
		var cur []Tensor
		var curSize int64
		for i, t := range tensors {
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
		if err := Write(filepath.Join(dir, SingleFileName), tensors, metadata); err != nil {
			return err
		}
		keep[SingleFileName] = true
	} else {
		idx := index{Metadata: map[string]any{"total_size": total}, WeightMap: make(map[string]string, len(tensors))}
		for k, shard := range shards {
			name := fmt.Sprintf("model-%05d-of-%05d.safetensors", k+1, len(shards))
			if err := Write(filepath.Join(dir, name), shard, metadata); err != nil {
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
