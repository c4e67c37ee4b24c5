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
	"slices"
	"strings"
	"sync"
	"unicode/utf8"
)

// maxHeaderSize bounds the JSON header, as the official reader does.
const maxHeaderSize = 100_000_000

// metadataKey is the header entry that holds the file's metadata.
const metadataKey = "__metadata__"

// chunkSize is how many bytes of tensor data are read and converted at once.
const chunkSize = 1 << 20

// TensorInfo describes one tensor in a header.
type TensorInfo struct {
	Name  string
	DType DType
	Shape []int
	// Begin and End are absolute byte offsets of the tensor's data in the
	// file: the data is bytes [Begin, End).
	Begin, End int64
}

// NumElements returns the number of elements of the tensor: the product of
// its shape, 1 for a scalar.
func (ti TensorInfo) NumElements() int {
	n := 1
	for _, d := range ti.Shape {
		n *= d
	}
	return n
}

// ByteSize returns the number of bytes the tensor's data occupies.
func (ti TensorInfo) ByteSize() int64 { return ti.End - ti.Begin }

func (ti TensorInfo) clone() TensorInfo {
	ti.Shape = slices.Clone(ti.Shape)
	return ti
}

// File is one opened safetensors file. Its methods may be called from
// several goroutines at once.
type File struct {
	path    string
	r       io.ReaderAt
	closer  io.Closer
	size    int64
	infos   map[string]TensorInfo
	names   []string
	meta    map[string]string
	dataOff int64

	mapMu   sync.Mutex
	mapping *Mapping // made by Map on first use
}

// Open opens the safetensors file at path and validates its whole header:
// the JSON itself, every tensor's dtype, shape and byte range, and that the
// tensors tile the data section exactly. The caller must Close the File.
func Open(path string) (*File, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	st, err := fh.Stat()
	if err != nil {
		fh.Close()
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	if !st.Mode().IsRegular() {
		fh.Close()
		return nil, fmt.Errorf("safetensors: %s: not a regular file", path)
	}
	f, err := newFile(path, fh, st.Size())
	if err != nil {
		fh.Close()
		return nil, err
	}
	f.closer = fh
	return f, nil
}

// newFile parses and validates the header of the size-byte file r; path
// names the file in errors.
func newFile(path string, r io.ReaderAt, size int64) (*File, error) {
	fail := func(format string, args ...any) (*File, error) {
		return nil, fmt.Errorf("safetensors: %s: %s", path, fmt.Sprintf(format, args...))
	}
	if size < 8 {
		return fail("file is %d bytes, too short to hold the 8-byte header length", size)
	}
	var lenBuf [8]byte
	if err := readAt(r, lenBuf[:], 0); err != nil {
		return nil, fmt.Errorf("safetensors: %s: reading header length: %w", path, err)
	}
	n := binary.LittleEndian.Uint64(lenBuf[:])
	if n > maxHeaderSize {
		return fail("header length %d exceeds the %d-byte limit", n, maxHeaderSize)
	}
	if n > uint64(size-8) {
		return fail("header length %d exceeds the %d bytes that follow it in the file", n, size-8)
	}
	hdr := make([]byte, n)
	if err := readAt(r, hdr, 8); err != nil {
		return nil, fmt.Errorf("safetensors: %s: reading header: %w", path, err)
	}
	dataOff := 8 + int64(n)
	infos, meta, err := parseHeader(hdr, size-dataOff)
	if err != nil {
		return nil, fmt.Errorf("safetensors: %s: %w", path, err)
	}
	f := &File{path: path, r: r, size: size, infos: make(map[string]TensorInfo, len(infos)), meta: meta, dataOff: dataOff}
	for _, ti := range infos {
		ti.Begin += dataOff
		ti.End += dataOff
		f.infos[ti.Name] = ti
		f.names = append(f.names, ti.Name)
	}
	slices.Sort(f.names)
	return f, nil
}

// parseHeader decodes and validates a JSON header for a data section of
// dataLen bytes. The offsets it returns are relative to the data section.
func parseHeader(hdr []byte, dataLen int64) ([]TensorInfo, map[string]string, error) {
	if !utf8.Valid(hdr) {
		return nil, nil, errors.New("header is not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(hdr))
	tok, err := dec.Token()
	if err != nil {
		return nil, nil, fmt.Errorf("header is not valid JSON: %v", jsonErr(err))
	}
	if tok != json.Delim('{') {
		return nil, nil, errors.New("header is not a JSON object")
	}
	var (
		infos []TensorInfo
		meta  map[string]string
		seen  = make(map[string]bool)
	)
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, nil, fmt.Errorf("header is not valid JSON: %v", jsonErr(err))
		}
		name, ok := tok.(string)
		if !ok {
			return nil, nil, errors.New("header is not valid JSON: object key is not a string")
		}
		if seen[name] {
			if name == metadataKey {
				return nil, nil, fmt.Errorf("header has %q twice", metadataKey)
			}
			return nil, nil, fmt.Errorf("tensor %q appears twice in the header", name)
		}
		seen[name] = true
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, nil, fmt.Errorf("header is not valid JSON: %v", jsonErr(err))
		}
		if name == metadataKey {
			if isNull(raw) {
				continue
			}
			if err := json.Unmarshal(raw, &meta); err != nil {
				return nil, nil, fmt.Errorf("%q must map strings to strings: %v", metadataKey, err)
			}
			continue
		}
		ti, err := parseEntry(name, raw, dataLen)
		if err != nil {
			return nil, nil, fmt.Errorf("tensor %q: %w", name, err)
		}
		infos = append(infos, ti)
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return nil, nil, fmt.Errorf("header is not valid JSON: %v", jsonErr(err))
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, nil, errors.New("header has data after its JSON object")
	}
	if err := checkLayout(infos, dataLen); err != nil {
		return nil, nil, err
	}
	return infos, meta, nil
}

// jsonErr makes the decoder's bare EOF errors readable.
func jsonErr(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return errors.New("unexpected end of JSON")
	}
	return err
}

func isNull(raw json.RawMessage) bool {
	return bytes.Equal(bytes.TrimSpace(raw), []byte("null"))
}

// parseEntry decodes one tensor entry and checks it against itself and the
// size of the data section.
func parseEntry(name string, raw json.RawMessage, dataLen int64) (TensorInfo, error) {
	fields, err := objectFields(raw)
	if err != nil {
		return TensorInfo{}, err
	}
	for _, k := range []string{"dtype", "shape", "data_offsets"} {
		if v, ok := fields[k]; !ok || isNull(v) {
			return TensorInfo{}, fmt.Errorf("entry has no %q", k)
		}
	}
	var dt string
	if err := json.Unmarshal(fields["dtype"], &dt); err != nil {
		return TensorInfo{}, fmt.Errorf("dtype is not a string: %s", abbrev(fields["dtype"]))
	}
	dtype := DType(dt)
	if dtype.Size() == 0 {
		return TensorInfo{}, fmt.Errorf("unknown dtype %q", dt)
	}
	var shape []int64
	if err := json.Unmarshal(fields["shape"], &shape); err != nil {
		return TensorInfo{}, fmt.Errorf("shape is not a list of integers: %s", abbrev(fields["shape"]))
	}
	var offs []int64
	if err := json.Unmarshal(fields["data_offsets"], &offs); err != nil || len(offs) != 2 {
		return TensorInfo{}, fmt.Errorf("data_offsets is not a pair of integers: %s", abbrev(fields["data_offsets"]))
	}
	ti := TensorInfo{Name: name, DType: dtype, Shape: make([]int, len(shape)), Begin: offs[0], End: offs[1]}
	// Multiply in order and fail on the first overflow, as the official
	// reader does, so that [huge, huge, 0] is rejected too.
	elems := int64(1)
	for i, d := range shape {
		if d < 0 {
			return TensorInfo{}, fmt.Errorf("shape %v has a negative dimension", shape)
		}
		if d > math.MaxInt || d != 0 && elems > math.MaxInt64/d {
			return TensorInfo{}, fmt.Errorf("shape %v has more elements than fit in an int64", shape)
		}
		elems *= d
		ti.Shape[i] = int(d)
	}
	size := int64(dtype.Size())
	if elems > math.MaxInt64/size || elems > math.MaxInt {
		return TensorInfo{}, fmt.Errorf("%s %v is too large: its byte size overflows an int64", dtype, shape)
	}
	need := elems * size
	switch b, e := ti.Begin, ti.End; {
	case b < 0 || e < 0:
		return TensorInfo{}, fmt.Errorf("data_offsets [%d, %d] are negative", b, e)
	case b > e:
		return TensorInfo{}, fmt.Errorf("data_offsets [%d, %d] begin after they end", b, e)
	case e > dataLen:
		return TensorInfo{}, fmt.Errorf("data_offsets [%d, %d] end beyond the %d-byte data section", b, e, dataLen)
	case e-b != need:
		return TensorInfo{}, fmt.Errorf("data_offsets [%d, %d] hold %d bytes but %s %v needs %d", b, e, e-b, dtype, shape, need)
	}
	return ti, nil
}

// objectFields decodes a JSON object into its raw fields, rejecting a key
// that appears twice.
func objectFields(raw json.RawMessage) (map[string]json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, fmt.Errorf("entry is not a JSON object: %s", abbrev(raw))
	}
	fields := make(map[string]json.RawMessage)
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("entry is not valid JSON: %v", jsonErr(err))
		}
		k, _ := tok.(string)
		if _, dup := fields[k]; dup {
			return nil, fmt.Errorf("entry has %q twice", k)
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, fmt.Errorf("entry is not valid JSON: %v", jsonErr(err))
		}
		fields[k] = v
	}
	return fields, nil
}

// abbrev shortens raw JSON for an error message.
func abbrev(raw []byte) string {
	const max = 60
	s := strings.TrimSpace(string(raw))
	if len(s) > max {
		return s[:max] + "..."
	}
	return s
}

// checkLayout requires the tensors' byte ranges to cover [0, dataLen)
// exactly: no two may overlap and no byte may be left over. Overlaps would
// let one write change two tensors; the official safetensors library also
// rejects holes and trailing bytes (MetadataIncompleteBuffer), so files it
// cannot load are rejected here as well.
func checkLayout(infos []TensorInfo, dataLen int64) error {
	sorted := slices.Clone(infos)
	slices.SortFunc(sorted, func(a, b TensorInfo) int {
		return cmp.Or(cmp.Compare(a.Begin, b.Begin), cmp.Compare(a.End, b.End), strings.Compare(a.Name, b.Name))
	})
	var end int64
	prev := -1 // index in sorted of the tensor that ends at end
	for i, ti := range sorted {
		switch {
		case ti.Begin < end:
			p := sorted[prev]
			return fmt.Errorf("tensors %q [%d, %d] and %q [%d, %d] overlap", p.Name, p.Begin, p.End, ti.Name, ti.Begin, ti.End)
		case ti.Begin > end:
			return fmt.Errorf("data bytes [%d, %d) belong to no tensor; tensors must fill the data section without gaps", end, ti.Begin)
		}
		if ti.End > end || prev < 0 {
			end, prev = ti.End, i
		}
	}
	if end != dataLen {
		return fmt.Errorf("data bytes [%d, %d) belong to no tensor; tensors must fill the data section without gaps", end, dataLen)
	}
	return nil
}

// Close closes the file. Reads after Close fail.
func (f *File) Close() error {
	if f.closer == nil {
		return nil
	}
	return f.closer.Close()
}

// Path returns the path the file was opened with.
func (f *File) Path() string { return f.path }

// Names returns the names of the file's tensors, sorted.
func (f *File) Names() []string { return slices.Clone(f.names) }

// Info returns the description of the named tensor and whether it exists.
func (f *File) Info(name string) (TensorInfo, bool) {
	ti, ok := f.infos[name]
	return ti.clone(), ok
}

// Metadata returns a copy of the file's "__metadata__" entry; it is empty if
// the file has none.
func (f *File) Metadata() map[string]string {
	m := make(map[string]string, len(f.meta))
	for k, v := range f.meta {
		m[k] = v
	}
	return m
}

func (f *File) lookup(name string) (TensorInfo, error) {
	ti, ok := f.infos[name]
	if !ok {
		return TensorInfo{}, fmt.Errorf("safetensors: %s: no tensor %q", f.path, name)
	}
	return ti, nil
}

// Raw returns a copy of the named tensor's data: little-endian elements of
// its dtype, in row-major order.
func (f *File) Raw(name string) ([]byte, error) {
	ti, err := f.lookup(name)
	if err != nil {
		return nil, err
	}
	buf := make([]byte, ti.ByteSize()) // bounded by the file size, checked in Open
	if err := readAt(f.r, buf, ti.Begin); err != nil {
		return nil, fmt.Errorf("safetensors: %s: tensor %q: %w", f.path, name, err)
	}
	return buf, nil
}

// readAt fills buf from r at off. A reader may report io.EOF along with a
// full buffer at the end of the file; that is success.
func readAt(r io.ReaderAt, buf []byte, off int64) error {
	if len(buf) == 0 {
		return nil
	}
	n, err := r.ReadAt(buf, off)
	if n == len(buf) {
		return nil
	}
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF // the file shrank after Open
	}
	return err
}

// each reads the tensor's data in chunks of whole elements and calls fn with
// each chunk and the index of its first element.
func (f *File) each(ti TensorInfo, fn func(chunk []byte, first int)) error {
	size := int64(ti.DType.Size())
	buf := make([]byte, min(ti.ByteSize(), chunkSize))
	for off := ti.Begin; off < ti.End; {
		chunk := buf[:min(int64(len(buf)), ti.End-off)]
		if err := readAt(f.r, chunk, off); err != nil {
			return fmt.Errorf("safetensors: %s: tensor %q: %w", f.path, ti.Name, err)
		}
		fn(chunk, int((off-ti.Begin)/size))
		off += int64(len(chunk))
	}
	return nil
}

// Float32 returns the named tensor's elements converted to a new []float32.
// F32, F16, BF16 and F64 tensors are accepted; F16 and BF16 convert
// exactly, F64 rounds to nearest even. Other dtypes are an error.
func (f *File) Float32(name string) ([]float32, error) {
	ti, err := f.lookup(name)
	if err != nil {
		return nil, err
	}
	if !ti.DType.IsFloat() {
		return nil, fmt.Errorf("safetensors: %s: tensor %q: dtype %s is not a floating-point type (want F32, F16, BF16 or F64)", f.path, name, ti.DType)
	}
	out := make([]float32, ti.NumElements())
	le := binary.LittleEndian
	err = f.each(ti, func(b []byte, first int) {
		dst := out[first:]
		switch ti.DType {
		case F32:
			for i := range len(b) / 4 {
				dst[i] = math.Float32frombits(le.Uint32(b[4*i:]))
			}
		case F16:
			for i := range len(b) / 2 {
				dst[i] = F16ToF32(le.Uint16(b[2*i:]))
			}
		case BF16:
			for i := range len(b) / 2 {
				dst[i] = BF16ToF32(le.Uint16(b[2*i:]))
			}
		case F64:
			for i := range len(b) / 8 {
				dst[i] = float32(math.Float64frombits(le.Uint64(b[8*i:])))
			}
		}
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Int64s returns the named tensor's elements as int64. Signed and unsigned
// integer dtypes up to 32 bits, I64 and BOOL are accepted; others, U64
// included, are an error.
func (f *File) Int64s(name string) ([]int64, error) {
	ti, err := f.lookup(name)
	if err != nil {
		return nil, err
	}
	var conv func(b []byte) int64
	le := binary.LittleEndian
	switch ti.DType {
	case I64:
		conv = func(b []byte) int64 { return int64(le.Uint64(b)) }
	case I32:
		conv = func(b []byte) int64 { return int64(int32(le.Uint32(b))) }
	case U32:
		conv = func(b []byte) int64 { return int64(le.Uint32(b)) }
	case I16:
		conv = func(b []byte) int64 { return int64(int16(le.Uint16(b))) }
	case U16:
		conv = func(b []byte) int64 { return int64(le.Uint16(b)) }
	case I8:
		conv = func(b []byte) int64 { return int64(int8(b[0])) }
	case U8, BOOL:
		conv = func(b []byte) int64 { return int64(b[0]) }
	default:
		return nil, fmt.Errorf("safetensors: %s: tensor %q: dtype %s is not an integer type (want I64, I32, I16, I8, U32, U16, U8 or BOOL)", f.path, name, ti.DType)
	}
	size := ti.DType.Size()
	out := make([]int64, ti.NumElements())
	err = f.each(ti, func(b []byte, first int) {
		for i := range len(b) / size {
			out[first+i] = conv(b[i*size:])
		}
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
