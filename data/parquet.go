package data

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/format"
)

// parquetBatch is how many rows are read from a row group at a time.
const parquetBatch = 32

// parquetSource reads the rows of a Parquet file one row group at a time and
// assembles each row into a record. Only the top-level columns that some
// format reads are assembled; the others appear as unread{}.
type parquetSource struct {
	name   string
	groups []parquet.RowGroup
	fields []pqField // top-level fields in leaf-column order

	group int           // next row group
	rows  parquet.Rows  // rows of the current row group, or nil
	buf   []parquet.Row // read buffer
	batch []record      // assembled rows of the current batch
	pos   int           // next row in batch
	row   int64         // index of the next row in the file
	done  bool
}

// pqField is a top-level field and the range of leaf columns under it.
type pqField struct {
	name        string
	node        parquet.Node
	col0, ncols int
	read        bool
}

// openParquet reads the footer of a Parquet file and prepares to stream it.
func openParquet(f io.ReaderAt, size int64, name string) (src *parquetSource, err error) {
	defer func() {
		if p := recover(); p != nil {
			src, err = nil, fmt.Errorf("data: %s: invalid Parquet file: %v", name, p)
		}
	}()
	pf, err := parquet.OpenFile(f, size, parquet.SkipPageIndex(true), parquet.SkipBloomFilters(true))
	if err != nil {
		return nil, fmt.Errorf("data: %s: invalid Parquet file: %w", name, err)
	}
	s := &parquetSource{name: name, groups: pf.RowGroups()}
	col := 0
	var paths [][]string
	for _, fld := range pf.Schema().Fields() {
		n := leafCount(fld)
		s.fields = append(s.fields, pqField{
			name: fld.Name(), node: fld, col0: col, ncols: n,
			read: slices.Contains(knownKeys, fld.Name()),
		})
		paths = appendLeafPaths(paths, []string{fld.Name()}, fld)
		col += n
	}
	// The assembly below relies on leaf columns being numbered depth-first
	// in field order; check that against the file's own column list.
	want := pf.Schema().Columns()
	if len(want) != len(paths) {
		return nil, fmt.Errorf("data: %s: unsupported Parquet schema (%d leaf columns, %d expected)", name, len(paths), len(want))
	}
	for i := range want {
		if !slices.Equal(want[i], paths[i]) {
			return nil, fmt.Errorf("data: %s: unsupported Parquet schema (column %d is %s, expected %s)", name, i, strings.Join(want[i], "."), strings.Join(paths[i], "."))
		}
	}
	return s, nil
}

func leafCount(n parquet.Node) int {
	if n.Leaf() {
		return 1
	}
	c := 0
	for _, f := range n.Fields() {
		c += leafCount(f)
	}
	return c
}

func appendLeafPaths(paths [][]string, path []string, n parquet.Node) [][]string {
	if n.Leaf() {
		return append(paths, slices.Clone(path))
	}
	for _, f := range n.Fields() {
		paths = appendLeafPaths(paths, append(path, f.Name()), f)
	}
	return paths
}

func (s *parquetSource) next() (record, string, error) {
	for s.pos >= len(s.batch) {
		if s.done {
			return nil, "", io.EOF
		}
		if err := s.readBatch(); err != nil {
			s.done = true
			return nil, "", err
		}
	}
	rec := s.batch[s.pos]
	s.batch[s.pos] = nil
	s.pos++
	src := fmt.Sprintf("%s:row %d", s.name, s.row)
	s.row++
	return rec, src, nil
}

// readBatch reads and assembles the next rows, moving to the next row group
// when the current one is exhausted. It may leave the batch empty.
func (s *parquetSource) readBatch() (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = &RecordError{Source: fmt.Sprintf("%s:row %d", s.name, s.row), Err: fmt.Errorf("invalid Parquet data: %v", p)}
		}
	}()
	s.batch, s.pos = s.batch[:0], 0
	if s.rows == nil {
		if s.group >= len(s.groups) {
			s.done = true
			return nil
		}
		s.rows = s.groups[s.group].Rows()
		s.group++
	}
	if s.buf == nil {
		s.buf = make([]parquet.Row, parquetBatch)
	}
	n, err := s.rows.ReadRows(s.buf)
	for i := range n {
		rec, aerr := s.assemble(s.buf[i])
		if aerr != nil {
			return &RecordError{Source: fmt.Sprintf("%s:row %d", s.name, s.row+int64(i)), Err: aerr}
		}
		s.batch = append(s.batch, rec)
	}
	if err == io.EOF || (n == 0 && err == nil) {
		cerr := s.rows.Close()
		s.rows = nil
		if cerr != nil {
			return fmt.Errorf("data: %s: %w", s.name, cerr)
		}
		return nil
	}
	if err != nil {
		return &RecordError{Source: fmt.Sprintf("%s:row %d", s.name, s.row+int64(n)), Err: fmt.Errorf("reading Parquet: %w", err)}
	}
	return nil
}

// assemble turns one row into a record.
func (s *parquetSource) assemble(row parquet.Row) (record, error) {
	ncols := 0
	if len(s.fields) > 0 {
		last := s.fields[len(s.fields)-1]
		ncols = last.col0 + last.ncols
	}
	cols := make([][]parquet.Value, ncols)
	row.Range(func(c int, vals []parquet.Value) bool {
		if c >= 0 && c < ncols {
			cols[c] = vals
		}
		return true
	})
	rec := make(record, len(s.fields))
	for _, f := range s.fields {
		if !f.read {
			rec[f.name] = unread{}
			continue
		}
		v, err := assembleNode(f.node, cols[f.col0:f.col0+f.ncols], 0, 0)
		if err != nil {
			return nil, fmt.Errorf("column %q: %w", f.name, err)
		}
		rec[f.name] = v
	}
	return rec, nil
}

var errMalformedRow = errors.New("malformed row (column values missing)")

// assembleNode rebuilds the value of node from the values of its leaf
// columns (Dremel record assembly). d is the definition level and r the
// repetition depth of node's parent. Lists become []any, groups
// map[string]any, strings string, integers int64, floating-point numbers
// float64, and nulls nil.
func assembleNode(node parquet.Node, cols [][]parquet.Value, d, r int) (any, error) {
	for _, c := range cols {
		if len(c) == 0 {
			return nil, errMalformedRow
		}
	}
	switch {
	case node.Repeated():
		if cols[0][0].DefinitionLevel() <= d {
			return []any{}, nil
		}
		d, r = d+1, r+1
		var out []any
		starts := make([]int, len(cols))
		for {
			chunks := make([][]parquet.Value, len(cols))
			more := false
			for i, c := range cols {
				j := starts[i] + 1
				for j < len(c) && c[j].RepetitionLevel() > r {
					j++
				}
				chunks[i] = c[starts[i]:j]
				starts[i] = j
				if j < len(c) {
					more = true
				}
			}
			v, err := assembleValue(node, chunks, d, r)
			if err != nil {
				return nil, err
			}
			out = append(out, v)
			if !more {
				return out, nil
			}
			for i, c := range cols {
				if starts[i] >= len(c) {
					return nil, errMalformedRow
				}
			}
		}
	case node.Optional():
		if cols[0][0].DefinitionLevel() <= d {
			return nil, nil
		}
		return assembleValue(node, cols, d+1, r)
	default:
		return assembleValue(node, cols, d, r)
	}
}

// assembleValue rebuilds a defined value of node (its repetition already
// accounted for in d and r).
func assembleValue(node parquet.Node, cols [][]parquet.Value, d, r int) (any, error) {
	if node.Leaf() {
		return leafValue(cols[0][0])
	}
	fields := node.Fields()
	if isListNode(node) {
		inner := fields[0]
		v, err := assembleNode(inner, cols, d, r)
		if err != nil {
			return nil, err
		}
		elems, _ := v.([]any)
		// Three-level lists wrap each element in a one-field group
		// (list/element, or bag/array_element); unwrap it. Legacy two-level
		// lists whose repeated group is the element itself are kept whole.
		if !inner.Leaf() && len(inner.Fields()) == 1 && inner.Name() != "array" && !strings.HasSuffix(inner.Name(), "_tuple") {
			name := inner.Fields()[0].Name()
			for i, e := range elems {
				if m, ok := e.(map[string]any); ok {
					elems[i] = m[name]
				}
			}
		}
		if elems == nil {
			elems = []any{}
		}
		return elems, nil
	}
	m := make(map[string]any, len(fields))
	off := 0
	for _, f := range fields {
		n := leafCount(f)
		if off+n > len(cols) {
			return nil, errMalformedRow
		}
		v, err := assembleNode(f, cols[off:off+n], d, r)
		if err != nil {
			return nil, err
		}
		m[f.Name()] = v
		off += n
	}
	return m, nil
}

// isListNode reports whether node is a LIST-annotated group with the one
// repeated child the format requires.
func isListNode(node parquet.Node) bool {
	lt := node.Type().LogicalType()
	if lt == nil {
		return false
	}
	if _, ok := lt.Value.(*format.ListType); !ok {
		return false
	}
	fields := node.Fields()
	return len(fields) == 1 && fields[0].Repeated()
}

func leafValue(v parquet.Value) (any, error) {
	if v.IsNull() {
		return nil, nil
	}
	switch v.Kind() {
	case parquet.Boolean:
		return v.Boolean(), nil
	case parquet.Int32:
		return int64(v.Int32()), nil
	case parquet.Int64:
		return v.Int64(), nil
	case parquet.Float:
		return float64(v.Float()), nil
	case parquet.Double:
		return v.Double(), nil
	case parquet.ByteArray, parquet.FixedLenByteArray:
		return string(v.ByteArray()), nil
	}
	return nil, fmt.Errorf("unsupported Parquet type %v", v.Kind())
}
