package data

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"

	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
	"github.com/relupo/relupo/safetensors"
)

// Arrow IPC files: what Hugging Face datasets writes with save_to_disk
// (data-00000-of-00001.arrow) and keeps in its cache, in the stream format,
// and the random-access file format ("ARROW1"). The reader is ours, on the
// bounds-checked FlatBuffers reader of flatbuf.go: every length in the
// metadata is checked against the bytes that hold it before anything is
// allocated for it, so a damaged file is an error naming the file and the
// row, never a crash (apache/arrow-go, tried first, can be made to allocate
// hundreds of gigabytes by one flipped byte of a schema).
//
// Read: the column types datasets writes (integers, floating point, bool,
// strings and binary, 32- and 64-bit offset lists, fixed-size lists, structs
// and maps, and, in columns no format reads, decimals and temporal types),
// string and binary views (polars' default),
// uncompressed or with LZ4-frame or ZSTD buffers (Feather v2, pandas'
// to_feather, compresses with LZ4 by default; decompression is bounded, see
// arrowMaxRatio). A dictionary-encoded column (a pandas categorical) is
// read past when no format reads it. Refused with a clear error:
// dictionary-encoded columns a format reads, big-endian data, unions, list
// views and run-end encoding.

// arrowStreamMarker starts every message of the stream format since Arrow
// 0.15.
const arrowStreamMarker = 0xFFFFFFFF

// arrowMagic starts and ends the file format.
const arrowMagic = "ARROW1"

// isArrow reports whether a file's first four bytes start an Arrow IPC
// stream (a message marker) or file.
func isArrow(b []byte) bool {
	return len(b) >= 4 && (binary.LittleEndian.Uint32(b) == arrowStreamMarker || string(b[:4]) == arrowMagic[:4])
}

// Arrow type ids (the Type union of Schema.fbs).
const (
	atNull = iota + 1
	atInt
	atFloat
	atBinary
	atUtf8
	atBool
	atDecimal
	atDate
	atTime
	atTimestamp
	atInterval
	atList
	atStruct
	atUnion
	atFixedSizeBinary
	atFixedSizeList
	atMap
	atDuration
	atLargeBinary
	atLargeUtf8
	atLargeList
	atRunEndEncoded
	atBinaryView
	atUtf8View
)

var arrowTypeNames = map[byte]string{atNull: "null", atInt: "int", atFloat: "floating point", atBinary: "binary",
	atUtf8: "utf8", atBool: "bool", atDecimal: "decimal", atDate: "date", atTime: "time", atTimestamp: "timestamp",
	atInterval: "interval", atList: "list", atStruct: "struct", atUnion: "union", atFixedSizeBinary: "fixed-size binary",
	atFixedSizeList: "fixed-size list", atMap: "map", atDuration: "duration", atLargeBinary: "large binary",
	atLargeUtf8: "large utf8", atLargeList: "large list", 22: "run-end encoded", 23: "binary view", 24: "utf8 view",
	25: "list view", 26: "large list view"}

// Limits on what a schema may hold: a Field can name itself as its child,
// so depth and count are bounded, not trusted.
const (
	arrowMaxDepth  = 64
	arrowMaxFields = 1 << 16
)

// arrowMaxRowValues bounds the values one row may decode to. Arrays of
// nulls, or of structs without fields, take no bytes however many values
// they claim, so a damaged list's offsets could otherwise make one row
// billions of values. A tokenized pair or a conversation is far below it.
// A batch may decode to at most 8 values per byte of its body plus 4 per
// row and column read (batchBudget), so a damaged batch costs time in
// proportion to its size, not to what it claims.
const arrowMaxRowValues = 1 << 20

// arrowField is a field of the schema.
type arrowField struct {
	name     string
	typ      byte
	width    int // bytes per value of a fixed-width type; bits for int
	signed   bool
	listSize int // fixed-size list
	children []*arrowField
	dict     bool // dictionary-encoded: the batches hold its integer indices
}

// hasDict reports whether f or a field inside it is dictionary-encoded.
func (f *arrowField) hasDict() bool {
	return f.dict || slices.ContainsFunc(f.children, (*arrowField).hasDict)
}

func (f *arrowField) typeName() string {
	if n, ok := arrowTypeNames[f.typ]; ok {
		return n
	}
	return fmt.Sprintf("type %d", f.typ)
}

// parseArrowField reads a Field table; budget counts the fields still
// allowed.
func parseArrowField(t fbTable, depth int, budget *int) (*arrowField, error) {
	if depth > arrowMaxDepth {
		return nil, fmt.Errorf("the schema nests deeper than %d levels", arrowMaxDepth)
	}
	if *budget--; *budget < 0 {
		return nil, fmt.Errorf("the schema has more than %d fields", arrowMaxFields)
	}
	f := &arrowField{}
	var err error
	if f.name, err = t.str(0); err != nil {
		return nil, err
	}
	typ, tt, err := t.union(2)
	if err != nil {
		return nil, err
	}
	f.typ = typ
	if dt, isDict, err := t.table(4); err != nil {
		return nil, err
	} else if isDict {
		// A batch holds the indices (signed int32 when indexType is
		// absent); the values come in dictionary batches, which are only
		// needed for a column some format reads (refused in setSchema).
		f.dict, f.typ, f.width, f.signed = true, atInt, 4, true
		if it, ok, err := dt.table(1); err != nil {
			return nil, err
		} else if ok {
			bits, err := it.int(0, 4, 0)
			if err != nil {
				return nil, err
			}
			s, err := it.int(1, 1, 0)
			if err != nil {
				return nil, err
			}
			if bits != 8 && bits != 16 && bits != 32 && bits != 64 {
				return nil, fmt.Errorf("column %q: dictionary indices of %d bits", f.name, bits)
			}
			f.width, f.signed = int(bits)/8, s != 0
		}
		return f, nil
	}
	kids, err := t.tables(5)
	if err != nil {
		return nil, err
	}
	for _, k := range kids {
		c, err := parseArrowField(k, depth+1, budget)
		if err != nil {
			return nil, err
		}
		f.children = append(f.children, c)
	}
	if err := f.setLayout(tt); err != nil {
		return nil, err
	}
	return f, nil
}

// setLayout reads the type table tt's parameters and checks the children a
// nested type needs.
func (f *arrowField) setLayout(tt fbTable) error {
	var err error
	need := 0
	switch f.typ {
	case atNull, atBinary, atUtf8, atBool, atLargeBinary, atLargeUtf8, atStruct, atBinaryView, atUtf8View:
	case atInt:
		var bits int64
		if bits, err = tt.int(0, 4, 0); err == nil {
			f.width = int(bits) / 8
			var s int64
			s, err = tt.int(1, 1, 0)
			f.signed = s != 0
			if bits != 8 && bits != 16 && bits != 32 && bits != 64 {
				return fmt.Errorf("column %q: int of %d bits", f.name, bits)
			}
		}
	case atFloat:
		var p int64
		p, err = tt.int(0, 2, 0)
		f.width = map[int64]int{0: 2, 1: 4, 2: 8}[p]
		if err == nil && f.width == 0 {
			return fmt.Errorf("column %q: unknown floating-point precision %d", f.name, p)
		}
	case atDecimal:
		var bits int64
		bits, err = tt.int(2, 4, 128)
		f.width = int(bits) / 8
		if err == nil && bits != 32 && bits != 64 && bits != 128 && bits != 256 {
			return fmt.Errorf("column %q: decimal of %d bits", f.name, bits)
		}
	case atDate:
		var u int64
		u, err = tt.int(0, 2, 1)
		f.width = map[bool]int{true: 4, false: 8}[u == 0]
	case atTime:
		var bits int64
		bits, err = tt.int(1, 4, 32)
		f.width = int(bits) / 8
		if err == nil && bits != 32 && bits != 64 {
			return fmt.Errorf("column %q: time of %d bits", f.name, bits)
		}
	case atTimestamp, atDuration:
		f.width = 8
	case atInterval:
		var u int64
		u, err = tt.int(0, 2, 0)
		f.width = map[int64]int{0: 4, 1: 8, 2: 16}[u]
		if err == nil && f.width == 0 {
			return fmt.Errorf("column %q: unknown interval unit %d", f.name, u)
		}
	case atFixedSizeBinary:
		var w int64
		w, err = tt.int(0, 4, 0)
		if err == nil && (w < 1 || w > 1<<30) {
			return fmt.Errorf("column %q: fixed-size binary of %d bytes", f.name, w)
		}
		f.width = int(w)
	case atList, atLargeList, atMap:
		need = 1
	case atFixedSizeList:
		var n int64
		n, err = tt.int(0, 4, 0)
		if err == nil && (n < 0 || n > 1<<30) {
			return fmt.Errorf("column %q: fixed-size list of %d items", f.name, n)
		}
		f.listSize, need = int(n), 1
	case 0:
		return fmt.Errorf("column %q has no type", f.name)
	default:
		return fmt.Errorf("column %q has Arrow type %s, which relupo does not read (cast it, e.g. to string or a list, and save again)", f.name, f.typeName())
	}
	if err != nil {
		return err
	}
	if need > 0 && len(f.children) != need || f.typ == atMap && f.children[0].typ != atStruct {
		return fmt.Errorf("column %q: a %s with %d child fields", f.name, f.typeName(), len(f.children))
	}
	return nil
}

// arrowArray is one field's data in a record batch.
type arrowArray struct {
	field     *arrowField
	length    int
	nulls     int
	validity  []byte // nil: no nulls
	offsets   []byte // variable-size types: int32 or int64 offsets
	data      []byte // values, or the bytes of strings
	children  []*arrowArray
	wide      bool // 64-bit offsets
	offsetEnd int  // the last offset (variable-size types)
}

// arrowBatch walks a RecordBatch's nodes and buffers in schema order.
type arrowBatch struct {
	body            []byte
	nodes, buffers  []byte // the FieldNode and Buffer structs, 16 bytes each
	node, buf       int    // next of each
	nNodes, nBuffer int
	variadicCounts  []int64 // data buffers of each view array, in schema order
	variadic        int     // next of variadicCounts
	codec           int     // -1: uncompressed buffers; else arrowLZ4 or arrowZSTD
	inflated        int64   // bytes decompressed so far in this batch
}

// Arrow's body compression codecs (CompressionType of Message.fbs).
const (
	arrowLZ4  = 0 // LZ4 frame
	arrowZSTD = 1
)

// Bounds on decompressing a batch, which a damaged or hostile length could
// otherwise make huge: a buffer inflates to at most 255 times its
// compressed size (LZ4's own limit) or 1 MiB, and a batch to 2 GiB.
const (
	arrowMaxRatio      = 255
	arrowMaxInflated   = 2 << 30
	arrowMinInflateCap = 1 << 20
)

func (w *arrowBatch) nextNode() (length, nulls int, err error) {
	if w.node >= w.nNodes {
		return 0, 0, errors.New("the record batch has fewer field nodes than the schema needs")
	}
	le := binary.LittleEndian
	l, n := int64(le.Uint64(w.nodes[16*w.node:])), int64(le.Uint64(w.nodes[16*w.node+8:]))
	w.node++
	if l < 0 || l > math.MaxInt32*int64(64) || n < 0 || n > l {
		return 0, 0, fmt.Errorf("a field node claims %d values with %d nulls", l, n)
	}
	return int(l), int(n), nil
}

func (w *arrowBatch) nextBuffer() ([]byte, error) {
	if w.buf >= w.nBuffer {
		return nil, errors.New("the record batch has fewer buffers than the schema needs")
	}
	le := binary.LittleEndian
	off, n := int64(le.Uint64(w.buffers[16*w.buf:])), int64(le.Uint64(w.buffers[16*w.buf+8:]))
	w.buf++
	if off < 0 || n < 0 || off > int64(len(w.body)) || n > int64(len(w.body))-off {
		return nil, fmt.Errorf("a buffer of %d bytes at %d lies outside the %d-byte body", n, off, len(w.body))
	}
	b := w.body[off : off+n : off+n]
	if w.codec < 0 || n == 0 {
		return b, nil
	}
	return w.inflate(b)
}

// inflate decompresses one buffer of a compressed batch: an int64
// uncompressed length (-1: the bytes follow uncompressed), then the
// compressed bytes.
func (w *arrowBatch) inflate(b []byte) ([]byte, error) {
	if len(b) < 8 {
		return nil, errors.New("a compressed buffer shorter than its 8-byte length")
	}
	size, data := int64(binary.LittleEndian.Uint64(b)), b[8:]
	if size == -1 {
		return data, nil
	}
	limit := max(int64(len(data))*arrowMaxRatio, arrowMinInflateCap)
	if size < 0 || size > limit || w.inflated+size > arrowMaxInflated {
		return nil, fmt.Errorf("a compressed buffer of %d bytes claims %d uncompressed (at most %d, and %d for a batch)", len(data), size, limit, int64(arrowMaxInflated))
	}
	w.inflated += size
	out := make([]byte, size)
	var r io.Reader
	switch w.codec {
	case arrowLZ4:
		r = lz4.NewReader(bytes.NewReader(data))
	case arrowZSTD:
		d, err := zstd.NewReader(bytes.NewReader(data), zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(64<<20))
		if err != nil {
			return nil, fmt.Errorf("decompressing a buffer: %w", err)
		}
		defer d.Close()
		r = d
	}
	_, err := io.ReadFull(r, out)
	if err == nil {
		var one [1]byte
		if n, _ := r.Read(one[:]); n > 0 {
			err = errors.New("more data than its stated length")
		}
	}
	if err != nil {
		return nil, fmt.Errorf("decompressing a buffer: %w", err)
	}
	return out, nil
}

// read reads field f's array (and its children's), checking that every
// buffer is as long as the values it must hold.
func (w *arrowBatch) read(f *arrowField) (*arrowArray, error) {
	a := &arrowArray{field: f}
	var err error
	if a.length, a.nulls, err = w.nextNode(); err != nil {
		return nil, err
	}
	fail := func(format string, args ...any) error {
		return fmt.Errorf("column %q: "+format, append([]any{f.name}, args...)...)
	}
	if f.typ == atNull {
		return a, nil
	}
	if a.validity, err = w.nextBuffer(); err != nil {
		return nil, err
	}
	if a.nulls == 0 {
		a.validity = nil
	} else if len(a.validity) < (a.length+7)/8 {
		return nil, fail("%d nulls but a validity bitmap of %d bytes for %d values", a.nulls, len(a.validity), a.length)
	}
	switch f.typ {
	case atBool:
		if a.data, err = w.nextBuffer(); err == nil && len(a.data) < (a.length+7)/8 {
			err = fail("%d bytes of bits for %d values", len(a.data), a.length)
		}
	case atInt, atFloat, atDecimal, atDate, atTime, atTimestamp, atDuration, atInterval, atFixedSizeBinary:
		if a.data, err = w.nextBuffer(); err == nil && a.length > len(a.data)/f.width {
			err = fail("%d bytes of data for %d values of %d bytes", len(a.data), a.length, f.width)
		}
	case atBinary, atUtf8, atLargeBinary, atLargeUtf8, atList, atLargeList, atMap:
		a.wide = f.typ == atLargeBinary || f.typ == atLargeUtf8 || f.typ == atLargeList
		if err = a.readOffsets(w); err != nil {
			return nil, err
		}
		if f.typ == atList || f.typ == atLargeList || f.typ == atMap {
			err = a.readChildren(w, a.offsetEnd)
		} else if a.data, err = w.nextBuffer(); err == nil && len(a.data) < a.offsetEnd {
			err = fail("offsets reach %d but the data has %d bytes", a.offsetEnd, len(a.data))
		}
	case atBinaryView, atUtf8View:
		err = a.readViews(w)
	case atFixedSizeList:
		if f.listSize > arrowMaxRowValues || a.length > math.MaxInt32*64/max(f.listSize, 1) {
			return nil, fail("%d lists of %d items", a.length, f.listSize)
		}
		err = a.readChildren(w, a.length*f.listSize)
	case atStruct:
		err = a.readChildren(w, a.length)
	}
	if err != nil {
		return nil, err
	}
	return a, nil
}

// readViews reads a view array's 16-byte views and its data buffers (as
// many as the batch's variadicBufferCounts gives it), checking that every
// view lies inside its buffer. A view is a length, then up to 12 bytes of
// data inline, or a 4-byte prefix, a buffer index and an offset.
func (a *arrowArray) readViews(w *arrowBatch) error {
	var err error
	if a.data, err = w.nextBuffer(); err != nil {
		return err
	}
	if a.length > len(a.data)/16 {
		return fmt.Errorf("column %q: %d bytes of views for %d values", a.field.name, len(a.data), a.length)
	}
	if w.variadic >= len(w.variadicCounts) {
		return fmt.Errorf("column %q: the record batch gives no count of its data buffers", a.field.name)
	}
	n := w.variadicCounts[w.variadic]
	w.variadic++
	if n < 0 || n > int64(w.nBuffer) {
		return fmt.Errorf("column %q: %d data buffers", a.field.name, n)
	}
	for range n {
		b, err := w.nextBuffer()
		if err != nil {
			return err
		}
		a.children = append(a.children, &arrowArray{data: b})
	}
	le := binary.LittleEndian
	for i := range a.length {
		v := a.data[16*i:]
		size := int64(int32(le.Uint32(v)))
		if size < 0 {
			return fmt.Errorf("column %q: value %d has length %d", a.field.name, i, size)
		}
		if size <= 12 {
			continue
		}
		buf, off := int64(int32(le.Uint32(v[8:]))), int64(int32(le.Uint32(v[12:])))
		if buf < 0 || buf >= n || off < 0 || off > int64(len(a.children[buf].data))-size {
			return fmt.Errorf("column %q: value %d's %d bytes at %d of data buffer %d lie outside the %d buffers", a.field.name, i, size, off, buf, n)
		}
	}
	return nil
}

// view returns the bytes of view i (checked by readViews).
func (a *arrowArray) view(i int) []byte {
	v := a.data[16*i:]
	size := int(binary.LittleEndian.Uint32(v))
	if size <= 12 {
		return v[4 : 4+size]
	}
	buf, off := binary.LittleEndian.Uint32(v[8:]), int(binary.LittleEndian.Uint32(v[12:]))
	return a.children[buf].data[off : off+size]
}

// readOffsets reads a variable-size array's offsets: length+1 of them,
// non-decreasing from 0 or more.
func (a *arrowArray) readOffsets(w *arrowBatch) error {
	var err error
	if a.offsets, err = w.nextBuffer(); err != nil {
		return err
	}
	size := 4
	if a.wide {
		size = 8
	}
	if a.length == 0 && len(a.offsets) == 0 {
		return nil
	}
	if int64(len(a.offsets)) < int64(a.length+1)*int64(size) {
		return fmt.Errorf("column %q: %d bytes of offsets for %d values", a.field.name, len(a.offsets), a.length)
	}
	prev := a.offset(0)
	if prev < 0 {
		return fmt.Errorf("column %q: a negative offset", a.field.name)
	}
	for i := 1; i <= a.length; i++ {
		o := a.offset(i)
		if o < prev {
			return fmt.Errorf("column %q: offsets decrease at value %d", a.field.name, i)
		}
		prev = o
	}
	if prev > math.MaxInt32*int64(64) {
		return fmt.Errorf("column %q: an offset of %d", a.field.name, prev)
	}
	a.offsetEnd = int(prev)
	return nil
}

func (a *arrowArray) offset(i int) int64 {
	if a.wide {
		return int64(binary.LittleEndian.Uint64(a.offsets[8*i:]))
	}
	return int64(int32(binary.LittleEndian.Uint32(a.offsets[4*i:])))
}

// readChildren reads the child arrays, each needing at least n values.
func (a *arrowArray) readChildren(w *arrowBatch, n int) error {
	for _, c := range a.field.children {
		ca, err := w.read(c)
		if err != nil {
			return err
		}
		if ca.length < n {
			return fmt.Errorf("column %q: child %q has %d values where %d are needed", a.field.name, c.name, ca.length, n)
		}
		a.children = append(a.children, ca)
	}
	return nil
}

// value returns the value at i as the JSON and Parquet readers give it:
// strings (binary too), int64 (float64 past the int64 range), float64,
// bool, []any, map[string]any and nil. budget counts the values the row may
// still decode to (arrowMaxRowValues).
func (a *arrowArray) value(i int, budget *int) (any, error) {
	f := a.field
	if *budget--; *budget < 0 {
		return nil, errArrowValues
	}
	if f.typ == atNull || a.validity != nil && a.validity[i/8]&(1<<(i%8)) == 0 {
		return nil, nil
	}
	le := binary.LittleEndian
	switch f.typ {
	case atBool:
		return a.data[i/8]&(1<<(i%8)) != 0, nil
	case atInt:
		p := a.data[i*f.width:]
		switch {
		case f.width == 1 && f.signed:
			return int64(int8(p[0])), nil
		case f.width == 1:
			return int64(p[0]), nil
		case f.width == 2 && f.signed:
			return int64(int16(le.Uint16(p))), nil
		case f.width == 2:
			return int64(le.Uint16(p)), nil
		case f.width == 4 && f.signed:
			return int64(int32(le.Uint32(p))), nil
		case f.width == 4:
			return int64(le.Uint32(p)), nil
		case f.signed:
			return int64(le.Uint64(p)), nil
		}
		if u := le.Uint64(p); u > math.MaxInt64 {
			return float64(u), nil
		} else {
			return int64(u), nil
		}
	case atFloat:
		p := a.data[i*f.width:]
		switch f.width {
		case 2:
			return float64(safetensors.F16ToF32(le.Uint16(p))), nil
		case 4:
			return float64(math.Float32frombits(le.Uint32(p))), nil
		}
		return math.Float64frombits(le.Uint64(p)), nil
	case atBinary, atUtf8, atLargeBinary, atLargeUtf8:
		return string(a.data[a.offset(i):a.offset(i+1)]), nil
	case atBinaryView, atUtf8View:
		return string(a.view(i)), nil
	case atList, atLargeList, atMap:
		return a.children[0].values(int(a.offset(i)), int(a.offset(i+1)), budget)
	case atFixedSizeList:
		return a.children[0].values(i*f.listSize, (i+1)*f.listSize, budget)
	case atStruct:
		m := make(map[string]any, len(a.children))
		for _, c := range a.children {
			v, err := c.value(i, budget)
			if err != nil {
				return nil, err
			}
			m[c.field.name] = v
		}
		return m, nil
	}
	return nil, fmt.Errorf("column %q has Arrow type %s, which no data format reads", f.name, f.typeName())
}

var errArrowValues = fmt.Errorf("more values than the row's data can hold (at most %d values a row, 8 a byte of the batch)", arrowMaxRowValues)

// values returns the values lo..hi as a list.
func (a *arrowArray) values(lo, hi int, budget *int) ([]any, error) {
	if hi-lo > *budget {
		return nil, errArrowValues
	}
	out := make([]any, 0, hi-lo)
	for j := lo; j < hi; j++ {
		v, err := a.value(j, budget)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

// arrowSource reads the record batches of an Arrow IPC file one at a time
// and yields their rows as records; only the columns some format reads are
// decoded, the others appear as unread{}.
type arrowSource struct {
	name   string
	r      io.ReaderAt
	size   int64
	fields []*arrowField
	read   []bool // per top-level field: decoded

	// Stream format: the offset of the next message. File format: the
	// footer's record batches (blocks), next at block.
	pos    int64
	blocks [][2]int64 // offset, metadata length
	block  int
	file   bool

	cols []*arrowArray // the current batch's top-level arrays
	left int           // values the current batch may still decode to
	rows int           // rows in the current batch
	cur  int           // next row of the current batch
	row  int64         // index of the next row in the file
	err  error

	inflated int64 // bytes decompressed from compressed batches
}

// openArrow reads the schema of the Arrow IPC file (stream or file format)
// of size bytes in r.
func openArrow(r io.ReaderAt, size int64, name string) (*arrowSource, error) {
	s := &arrowSource{name: name, r: r, size: size}
	var head [8]byte
	if _, err := r.ReadAt(head[:], 0); err != nil {
		return nil, s.fail(0, fmt.Errorf("reading: %w", err))
	}
	if string(head[:6]) == arrowMagic {
		if err := s.readFooter(); err != nil {
			return nil, err
		}
		return s, nil
	}
	kind, meta, end, err := s.message(0)
	if err != nil {
		return nil, err
	}
	s.pos = end
	if kind != 1 {
		return nil, s.fail(0, errors.New("the stream does not start with a schema"))
	}
	if err := s.setSchema(meta); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *arrowSource) fail(pos int64, err error) error {
	return fmt.Errorf("data: %s: invalid Arrow IPC file (at byte %d): %w", s.name, pos, err)
}

// message reads the encapsulated message at pos: its header type
// (1 schema, 2 dictionary batch, 3 record batch; 0 at the end of the
// stream), its header table, and the offset just past it and its body.
func (s *arrowSource) message(pos int64) (kind byte, header fbTable, end int64, err error) {
	var pre [8]byte
	n, rerr := s.r.ReadAt(pre[:], pos)
	if n < 8 {
		if n == 0 && rerr == io.EOF {
			return 0, fbTable{}, pos, nil // a stream may end without its end marker
		}
		return 0, fbTable{}, 0, s.fail(pos, errors.New("the file ends inside a message"))
	}
	le := binary.LittleEndian
	if le.Uint32(pre[:]) != arrowStreamMarker {
		return 0, fbTable{}, 0, s.fail(pos, errors.New("no message marker (an Arrow IPC stream from before Arrow 0.15, or not Arrow)"))
	}
	metaLen := int64(int32(le.Uint32(pre[4:])))
	if metaLen == 0 {
		return 0, fbTable{}, pos + 8, nil
	}
	if metaLen < 0 || metaLen > s.size-pos-8 {
		return 0, fbTable{}, 0, s.fail(pos, fmt.Errorf("a message of %d metadata bytes where the file has %d left", metaLen, s.size-pos-8))
	}
	meta := make([]byte, metaLen)
	if _, err := s.r.ReadAt(meta, pos+8); err != nil {
		return 0, fbTable{}, 0, s.fail(pos, fmt.Errorf("reading: %w", err))
	}
	msg, err := fbRoot(meta)
	if err != nil {
		return 0, fbTable{}, 0, s.fail(pos, err)
	}
	kind, header, err = msg.union(1)
	if err == nil && kind == 0 {
		err = errors.New("a message without a header")
	}
	var bodyLen int64
	if err == nil {
		bodyLen, err = msg.int(3, 8, 0)
	}
	if err != nil {
		return 0, fbTable{}, 0, s.fail(pos, err)
	}
	end = pos + 8 + metaLen
	if bodyLen < 0 || bodyLen > s.size-end {
		return 0, fbTable{}, 0, s.fail(pos, fmt.Errorf("a message body of %d bytes where the file has %d left", bodyLen, s.size-end))
	}
	return kind, header, end + bodyLen, nil
}

// setSchema reads the Schema table t.
func (s *arrowSource) setSchema(t fbTable) error {
	if e, err := t.int(0, 2, 0); err != nil || e != 0 {
		if err == nil {
			err = errors.New("big-endian data is not supported")
		}
		return s.fail(0, err)
	}
	fs, err := t.tables(1)
	if err != nil {
		return s.fail(0, err)
	}
	budget := arrowMaxFields
	for _, ft := range fs {
		f, err := parseArrowField(ft, 0, &budget)
		if err != nil {
			return s.fail(0, err)
		}
		read := slices.Contains(knownKeys, f.name)
		if read && f.hasDict() {
			return s.fail(0, fmt.Errorf("column %q is dictionary-encoded, which is not supported for the columns relupo reads (cast it to its value type, e.g. pandas' astype(str) or datasets' cast_column, and save again)", f.name))
		}
		s.fields = append(s.fields, f)
		s.read = append(s.read, read)
	}
	return nil
}

// readFooter reads the file format's footer: the schema and where the
// record batches are.
func (s *arrowSource) readFooter() error {
	s.file = true
	var tail [10]byte
	if s.size < 8+10 {
		return s.fail(0, errors.New("too short for the Arrow file format"))
	}
	if _, err := s.r.ReadAt(tail[:], s.size-10); err != nil {
		return s.fail(s.size-10, fmt.Errorf("reading: %w", err))
	}
	if string(tail[4:]) != arrowMagic {
		return s.fail(s.size-6, errors.New("the file does not end with ARROW1 (truncated?)"))
	}
	n := int64(int32(binary.LittleEndian.Uint32(tail[:])))
	if n <= 0 || n > s.size-18 {
		return s.fail(s.size-10, fmt.Errorf("a footer of %d bytes", n))
	}
	at := s.size - 10 - n
	b := make([]byte, n)
	if _, err := s.r.ReadAt(b, at); err != nil {
		return s.fail(at, fmt.Errorf("reading: %w", err))
	}
	footer, err := fbRoot(b)
	if err != nil {
		return s.fail(at, err)
	}
	schema, ok, err := footer.table(1)
	if err == nil && !ok {
		err = errors.New("the footer has no schema")
	}
	if err != nil {
		return s.fail(at, err)
	}
	if err := s.setSchema(schema); err != nil {
		return err
	}
	if _, _, err := footer.vector(2, 24); err != nil { // dictionaries: only unread columns have them
		return s.fail(at, err)
	}
	start, nb, err := footer.vector(3, 24)
	if err != nil {
		return s.fail(at, err)
	}
	le := binary.LittleEndian
	for i := range nb {
		blk := b[start+24*i:]
		s.blocks = append(s.blocks, [2]int64{int64(le.Uint64(blk)), int64(int32(le.Uint32(blk[8:])))})
	}
	return nil
}

// nextBatch reads the next record batch; false at the end of the data.
func (s *arrowSource) nextBatch() (bool, error) {
	for {
		pos := s.pos
		if s.file {
			if s.block >= len(s.blocks) {
				return false, nil
			}
			pos = s.blocks[s.block][0]
			s.block++
			if pos < 8 || pos >= s.size {
				return false, s.fail(pos, errors.New("a record batch block outside the file"))
			}
		}
		kind, header, end, err := s.message(pos)
		if err != nil {
			return false, err
		}
		s.pos = end
		switch kind {
		case 0:
			return false, nil
		case 1:
			return false, s.fail(pos, errors.New("a second schema in the stream"))
		case 2:
			continue // a dictionary of an unread column (read ones are refused)
		case 3:
			return true, s.readBatch(pos, header, end)
		}
		// Tensors and sparse tensors are not table data; skip them.
	}
}

// readBatch reads the RecordBatch header whose message starts at pos and
// whose body ends at end.
func (s *arrowSource) readBatch(pos int64, t fbTable, end int64) error {
	length, err := t.int(0, 8, 0)
	if err != nil {
		return s.fail(pos, err)
	}
	w := &arrowBatch{codec: -1}
	if bc, has, err := t.table(3); err != nil {
		return s.fail(pos, err)
	} else if has {
		codec, err := bc.int(0, 1, arrowLZ4)
		if err == nil && codec != arrowLZ4 && codec != arrowZSTD {
			err = fmt.Errorf("unknown body compression codec %d", codec)
		}
		if method, merr := bc.int(1, 1, 0); err == nil && (merr != nil || method != 0) {
			err = errors.Join(merr, fmt.Errorf("unknown body compression method %d", method))
		}
		if err != nil {
			return s.fail(pos, err)
		}
		w.codec = int(codec)
	}
	ns, nn, err := t.vector(1, 16)
	if err == nil {
		var bs, nb int
		bs, nb, err = t.vector(2, 16)
		w.nodes, w.nNodes, w.buffers, w.nBuffer = t.b[ns:ns+16*nn], nn, t.b[bs:bs+16*nb], nb
	}
	if err == nil {
		var vs, nv int
		if vs, nv, err = t.vector(4, 8); err == nil {
			for i := range nv {
				w.variadicCounts = append(w.variadicCounts, int64(binary.LittleEndian.Uint64(t.b[vs+8*i:])))
			}
		}
	}
	if err != nil {
		return s.fail(pos, err)
	}
	// The body follows the metadata; its length is in the message.
	metaEnd := pos + 8 + int64(len(t.b))
	body := make([]byte, end-metaEnd)
	if _, err := s.r.ReadAt(body, metaEnd); err != nil {
		return s.fail(metaEnd, fmt.Errorf("reading: %w", err))
	}
	w.body = body
	if length < 0 || length > math.MaxInt32*int64(64) {
		return s.fail(pos, fmt.Errorf("a record batch of %d rows", length))
	}
	s.cols, s.rows, s.cur = make([]*arrowArray, len(s.fields)), int(length), 0
	s.left = 1 << 16
	for i, f := range s.fields {
		a, err := w.read(f)
		if err != nil {
			return s.fail(pos, err)
		}
		if a.length != s.rows {
			return s.fail(pos, fmt.Errorf("column %q has %d values in a batch of %d rows", f.name, a.length, s.rows))
		}
		if s.read[i] {
			s.cols[i] = a
			s.left += 4 * s.rows
		}
	}
	s.left += 8 * (len(body) + int(w.inflated)) // the batch's bytes, decompressed
	s.inflated += w.inflated
	return nil
}

func (s *arrowSource) next() (record, string, error) {
	if s.err != nil {
		return nil, "", s.err
	}
	for s.cur >= s.rows {
		more, err := s.nextBatch()
		if err != nil {
			s.err = err
			return nil, "", err
		}
		if !more {
			s.err = io.EOF
			return nil, "", io.EOF
		}
	}
	src := fmt.Sprintf("%s:row %d", s.name, s.row)
	rec := make(record, len(s.fields))
	budget := min(arrowMaxRowValues, s.left)
	defer func(start int) { s.left -= start - budget }(budget)
	for i, f := range s.fields {
		if !s.read[i] {
			rec[f.name] = unread{}
			continue
		}
		v, err := s.cols[i].value(s.cur, &budget)
		if err != nil {
			s.err = &RecordError{Source: src, Err: err}
			return nil, "", s.err
		}
		rec[f.name] = v
	}
	s.cur++
	s.row++
	return rec, src, nil
}
