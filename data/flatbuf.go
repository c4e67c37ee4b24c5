package data

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// A minimal, bounds-checked reader of FlatBuffers, for the metadata of
// Arrow IPC files (arrow.go). Every offset and length is checked against the
// buffer before it is followed or allocated for, so damaged metadata is an
// error, never a panic or a huge allocation.

var errFlatbuf = errors.New("damaged metadata (a FlatBuffers offset or length points outside it)")

// fbTable is a FlatBuffers table: its position in b and its vtable.
type fbTable struct {
	b      []byte
	pos    int // the table's start
	vt     int // its vtable's start
	vtLen  int // the vtable's length in bytes
	tabLen int // the table's inline length in bytes
}

func fbU16(b []byte, at int) (int, bool) {
	if at < 0 || at > len(b)-2 {
		return 0, false
	}
	return int(binary.LittleEndian.Uint16(b[at:])), true
}

func fbU32(b []byte, at int) (uint32, bool) {
	if at < 0 || at > len(b)-4 {
		return 0, false
	}
	return binary.LittleEndian.Uint32(b[at:]), true
}

// fbRoot returns the root table of the FlatBuffer b.
func fbRoot(b []byte) (fbTable, error) {
	off, ok := fbU32(b, 0)
	if !ok {
		return fbTable{}, errFlatbuf
	}
	return fbTableAt(b, int64(off))
}

// fbTableAt returns the table that starts at pos.
func fbTableAt(b []byte, pos int64) (fbTable, error) {
	if pos < 0 || pos > int64(len(b))-4 {
		return fbTable{}, errFlatbuf
	}
	t := fbTable{b: b, pos: int(pos)}
	soff := int64(int32(binary.LittleEndian.Uint32(b[pos:])))
	vt := pos - soff
	if vt < 0 || vt > int64(len(b))-4 {
		return fbTable{}, errFlatbuf
	}
	t.vt = int(vt)
	t.vtLen, _ = fbU16(b, t.vt)
	t.tabLen, _ = fbU16(b, t.vt+2)
	if t.vtLen < 4 || t.vt+t.vtLen > len(b) || t.tabLen < 4 || t.pos+t.tabLen > len(b) {
		return fbTable{}, errFlatbuf
	}
	return t, nil
}

// field returns the position of slot's inline value of size bytes, or
// false when the slot is absent (its default applies).
func (t fbTable) field(slot, size int) (int, bool, error) {
	voff := 4 + 2*slot
	if voff+2 > t.vtLen {
		return 0, false, nil
	}
	fo, _ := fbU16(t.b, t.vt+voff)
	if fo == 0 {
		return 0, false, nil
	}
	if fo+size > t.tabLen {
		return 0, false, errFlatbuf
	}
	return t.pos + fo, true, nil
}

// int returns slot's integer of size 1, 2, 4 or 8 bytes (signed), or def.
func (t fbTable) int(slot, size int, def int64) (int64, error) {
	at, ok, err := t.field(slot, size)
	if err != nil || !ok {
		return def, err
	}
	le := binary.LittleEndian
	switch size {
	case 1:
		return int64(int8(t.b[at])), nil
	case 2:
		return int64(int16(le.Uint16(t.b[at:]))), nil
	case 4:
		return int64(int32(le.Uint32(t.b[at:]))), nil
	}
	return int64(le.Uint64(t.b[at:])), nil
}

// ref follows slot's offset to what it points at, or returns false when the
// slot is absent.
func (t fbTable) ref(slot int) (int64, bool, error) {
	at, ok, err := t.field(slot, 4)
	if err != nil || !ok {
		return 0, false, err
	}
	off, _ := fbU32(t.b, at)
	target := int64(at) + int64(off)
	if target > int64(len(t.b))-4 {
		return 0, false, errFlatbuf
	}
	return target, true, nil
}

// table returns slot's sub-table, or false when absent.
func (t fbTable) table(slot int) (fbTable, bool, error) {
	at, ok, err := t.ref(slot)
	if err != nil || !ok {
		return fbTable{}, false, err
	}
	sub, err := fbTableAt(t.b, at)
	return sub, err == nil, err
}

// vector returns the start and length of slot's vector of elem-byte
// elements (length 0 when absent), checked to lie inside the buffer.
func (t fbTable) vector(slot, elem int) (start, n int, err error) {
	at, ok, err := t.ref(slot)
	if err != nil || !ok {
		return 0, 0, err
	}
	count, _ := fbU32(t.b, int(at))
	start64 := at + 4
	if int64(count)*int64(elem) > int64(len(t.b))-start64 {
		return 0, 0, errFlatbuf
	}
	return int(start64), int(count), nil
}

// str returns slot's string, or "" when absent.
func (t fbTable) str(slot int) (string, error) {
	start, n, err := t.vector(slot, 1)
	if err != nil {
		return "", err
	}
	return string(t.b[start : start+n]), nil
}

// tables returns the tables of slot's vector of tables.
func (t fbTable) tables(slot int) ([]fbTable, error) {
	start, n, err := t.vector(slot, 4)
	if err != nil {
		return nil, err
	}
	out := make([]fbTable, n)
	for i := range out {
		at := start + 4*i
		off, _ := fbU32(t.b, at)
		if out[i], err = fbTableAt(t.b, int64(at)+int64(off)); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// union returns the type tag (slot typeSlot) and table (slot typeSlot+1)
// of a union field; tag 0 means none.
func (t fbTable) union(typeSlot int) (byte, fbTable, error) {
	tag, err := t.int(typeSlot, 1, 0)
	if err != nil || tag == 0 {
		return 0, fbTable{}, err
	}
	sub, ok, err := t.table(typeSlot + 1)
	if err != nil {
		return 0, fbTable{}, err
	}
	if !ok {
		return 0, fbTable{}, fmt.Errorf("%w (a union without its value)", errFlatbuf)
	}
	return byte(tag), sub, nil
}
