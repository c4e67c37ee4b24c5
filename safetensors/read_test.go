package safetensors

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// rawFile builds file bytes from a header length, a header and dataLen zero
// data bytes.
func rawFile(n uint64, header string, dataLen int) []byte {
	b := binary.LittleEndian.AppendUint64(nil, n)
	b = append(b, header...)
	return append(b, make([]byte, dataLen)...)
}

// headerFile builds a file whose header length is right.
func headerFile(header string, dataLen int) []byte {
	return rawFile(uint64(len(header)), header, dataLen)
}

func writeTemp(t *testing.T, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// corruptFiles are hand-made invalid files, with the words their error must
// contain. Tensor-level errors must also name the tensor.
var corruptFiles = []struct {
	name   string
	data   []byte
	want   string
	tensor string
}{
	{"empty file", nil, "too short", ""},
	{"shorter than 8 bytes", []byte{2, 0, 0, 0, 0}, "too short", ""},
	{"header length beyond the file", rawFile(1000, "{}", 0), "header length 1000 exceeds the 2 bytes", ""},
	{"header length beyond the limit", rawFile(1<<62, "{}", 0), "exceeds the 100000000-byte limit", ""},
	{"header length max uint64", rawFile(^uint64(0), "{}", 0), "exceeds the 100000000-byte limit", ""},
	{"header not JSON", headerFile(`{"a":`, 0), "not valid JSON", ""},
	{"header garbage", headerFile("\x00\x01\x02", 0), "not valid JSON", ""},
	{"header empty", headerFile("", 0), "not valid JSON", ""},
	{"header not UTF-8", headerFile("{\"\xff\":1}", 0), "not valid UTF-8", ""},
	{"header is an array", headerFile(`[1, 2]`, 0), "not a JSON object", ""},
	{"header is a string", headerFile(`"x"`, 0), "not a JSON object", ""},
	{"data after the JSON object", headerFile(`{} {}`, 0), "data after its JSON object", ""},
	{"entry not an object", headerFile(`{"w": 5}`, 0), "not a JSON object", "w"},
	{"entry without dtype", headerFile(`{"w": {"shape": [1], "data_offsets": [0, 4]}}`, 4), `no "dtype"`, "w"},
	{"entry without shape", headerFile(`{"w": {"dtype": "F32", "data_offsets": [0, 4]}}`, 4), `no "shape"`, "w"},
	{"entry without data_offsets", headerFile(`{"w": {"dtype": "F32", "shape": [1]}}`, 4), `no "data_offsets"`, "w"},
	{"null shape", headerFile(`{"w": {"dtype": "F32", "shape": null, "data_offsets": [0, 4]}}`, 4), `no "shape"`, "w"},
	{"entry with a field twice", headerFile(`{"w": {"dtype": "F32", "dtype": "F16", "shape": [1], "data_offsets": [0, 4]}}`, 4), `"dtype" twice`, "w"},
	{"dtype not a string", headerFile(`{"w": {"dtype": 4, "shape": [1], "data_offsets": [0, 4]}}`, 4), "dtype is not a string", "w"},
	{"unknown dtype", headerFile(`{"w": {"dtype": "F128", "shape": [1], "data_offsets": [0, 16]}}`, 16), `unknown dtype "F128"`, "w"},
	{"lower-case dtype", headerFile(`{"w": {"dtype": "f32", "shape": [1], "data_offsets": [0, 4]}}`, 4), `unknown dtype "f32"`, "w"},
	{"negative dimension", headerFile(`{"w": {"dtype": "F32", "shape": [-1, 2], "data_offsets": [0, 4]}}`, 4), "negative dimension", "w"},
	{"fractional dimension", headerFile(`{"w": {"dtype": "F32", "shape": [1.5], "data_offsets": [0, 4]}}`, 4), "not a list of integers", "w"},
	{"dimension beyond int64", headerFile(`{"w": {"dtype": "F32", "shape": [99999999999999999999], "data_offsets": [0, 4]}}`, 4), "not a list of integers", "w"},
	{"element count overflows", headerFile(`{"w": {"dtype": "F32", "shape": [4294967296, 4294967296, 4294967296], "data_offsets": [0, 4]}}`, 4), "more elements than fit in an int64", "w"},
	{"overflow before a zero dimension", headerFile(`{"w": {"dtype": "F32", "shape": [4294967296, 4294967296, 4294967296, 0], "data_offsets": [0, 0]}}`, 0), "more elements than fit in an int64", "w"},
	{"byte size overflows", headerFile(`{"w": {"dtype": "F64", "shape": [4611686018427387904], "data_offsets": [0, 8]}}`, 8), "byte size overflows", "w"},
	{"data_offsets not a pair", headerFile(`{"w": {"dtype": "F32", "shape": [1], "data_offsets": [4]}}`, 4), "not a pair of integers", "w"},
	{"data_offsets negative", headerFile(`{"w": {"dtype": "F32", "shape": [1], "data_offsets": [-4, 0]}}`, 4), "negative", "w"},
	{"begin after end", headerFile(`{"w": {"dtype": "F32", "shape": [1], "data_offsets": [8, 4]}}`, 8), "data_offsets [8, 4] begin after they end", "w"},
	{"end beyond the data", headerFile(`{"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}`, 4), "data_offsets [0, 8] end beyond the 4-byte data section", "w"},
	{"size does not match shape", headerFile(`{"lm_head.weight": {"dtype": "F32", "shape": [5, 6], "data_offsets": [0, 100]}}`, 100),
		`tensor "lm_head.weight": data_offsets [0, 100] hold 100 bytes but F32 [5 6] needs 120`, "lm_head.weight"},
	{"size does not match dtype", headerFile(`{"w": {"dtype": "F16", "shape": [2], "data_offsets": [0, 8]}}`, 8), "hold 8 bytes but F16 [2] needs 4", "w"},
	{"overlapping tensors", headerFile(`{"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}`, 12),
		`tensors "a" [0, 8] and "b" [4, 12] overlap`, ""},
	{"same range twice", headerFile(`{"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, "b": {"dtype": "I64", "shape": [1], "data_offsets": [0, 8]}}`, 8),
		"overlap", ""},
	{"empty tensor inside another", headerFile(`{"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, "b": {"dtype": "F32", "shape": [0], "data_offsets": [4, 4]}}`, 8),
		"overlap", ""},
	{"hole between tensors", headerFile(`{"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, "b": {"dtype": "F32", "shape": [2], "data_offsets": [12, 20]}}`, 20),
		"data bytes [8, 12) belong to no tensor", ""},
	{"hole at the start", headerFile(`{"a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}`, 8), "data bytes [0, 4) belong to no tensor", ""},
	{"bytes after the last tensor", headerFile(`{"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}`, 12), "data bytes [8, 12) belong to no tensor", ""},
	{"data but no tensors", headerFile(`{}`, 4), "data bytes [0, 4) belong to no tensor", ""},
	{"duplicate tensor name", headerFile(`{"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}, "a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}`, 8),
		`tensor "a" appears twice`, ""},
	{"duplicate metadata", headerFile(`{"__metadata__": {}, "__metadata__": {}}`, 0), `"__metadata__" twice`, ""},
	{"metadata not strings", headerFile(`{"__metadata__": {"epoch": 1}}`, 0), "must map strings to strings", ""},
	{"metadata not an object", headerFile(`{"__metadata__": [1]}`, 0), "must map strings to strings", ""},
}

func TestOpenCorrupt(t *testing.T) {
	for _, tt := range corruptFiles {
		t.Run(tt.name, func(t *testing.T) {
			path := writeTemp(t, "model.safetensors", tt.data)
			f, err := Open(path)
			if err == nil {
				f.Close()
				t.Fatal("Open succeeded, want an error")
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "safetensors: "+path+": ") {
				t.Errorf("error %q does not start by naming the file", msg)
			}
			if !strings.Contains(msg, tt.want) {
				t.Errorf("error %q does not say %q", msg, tt.want)
			}
			if tt.tensor != "" && !strings.Contains(msg, `tensor "`+tt.tensor+`"`) {
				t.Errorf("error %q does not name tensor %q", msg, tt.tensor)
			}
		})
	}
}

func TestOpenValidEdgeCases(t *testing.T) {
	tests := []struct {
		name  string
		data  []byte
		names []string
		meta  map[string]string
	}{
		{"no tensors", headerFile(`{}`, 0), nil, map[string]string{}},
		{"space padded header", headerFile(`{"__metadata__": {"format": "pt"}}     `, 0), nil, map[string]string{"format": "pt"}},
		{"null metadata", headerFile(`{"__metadata__": null}`, 0), nil, map[string]string{}},
		{"scalar", headerFile(`{"s": {"dtype": "F32", "shape": [], "data_offsets": [0, 4]}}`, 4), []string{"s"}, map[string]string{}},
		{"empty tensors anywhere", headerFile(`{"z": {"dtype": "F32", "shape": [0, 3], "data_offsets": [0, 0]}, "a": {"dtype": "U8", "shape": [3], "data_offsets": [0, 3]}, "e": {"dtype": "BF16", "shape": [0], "data_offsets": [3, 3]}}`, 3),
			[]string{"a", "e", "z"}, map[string]string{}},
		{"unknown fields are ignored", headerFile(`{"w": {"dtype": "I8", "shape": [2], "data_offsets": [0, 2], "note": "x"}}`, 2), []string{"w"}, map[string]string{}},
		{"unsorted offsets", headerFile(`{"b": {"dtype": "I32", "shape": [1], "data_offsets": [4, 8]}, "a": {"dtype": "I32", "shape": [1], "data_offsets": [0, 4]}}`, 8), []string{"a", "b"}, map[string]string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := Open(writeTemp(t, "x.safetensors", tt.data))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if got := f.Names(); !slices.Equal(got, tt.names) {
				t.Errorf("Names() = %q, want %q", got, tt.names)
			}
			if got := f.Metadata(); len(got) != len(tt.meta) || got["format"] != tt.meta["format"] {
				t.Errorf("Metadata() = %v, want %v", got, tt.meta)
			}
			for _, n := range tt.names {
				ti, _ := f.Info(n)
				raw, err := f.Raw(n)
				if err != nil || int64(len(raw)) != ti.End-ti.Begin {
					t.Errorf("Raw(%q) = %d bytes, %v; want %d", n, len(raw), err, ti.End-ti.Begin)
				}
			}
		})
	}
}

// TestReadDTypes writes every readable dtype by hand and reads it back.
func TestReadDTypes(t *testing.T) {
	le := binary.LittleEndian
	var data []byte
	var hdr []string
	add := func(name string, dt DType, n int, b []byte) {
		hdr = append(hdr, `"`+name+`": {"dtype": "`+string(dt)+`", "shape": [`+itoa(n)+`], "data_offsets": [`+itoa(len(data))+`, `+itoa(len(data)+len(b))+`]}`)
		data = append(data, b...)
	}
	add("f64", F64, 2, le.AppendUint64(le.AppendUint64(nil, 0x3ff0000000000000), 0x3fd5555555555555)) // 1, 1/3
	add("i64", I64, 2, le.AppendUint64(le.AppendUint64(nil, 1<<40), uint64(1<<64-5)))                 // 2^40, -5
	add("i32", I32, 2, le.AppendUint32(le.AppendUint32(nil, 7), 1<<32-7))
	add("u32", U32, 1, le.AppendUint32(nil, 1<<32-1))
	add("i16", I16, 1, le.AppendUint16(nil, 0xffff))
	add("u16", U16, 1, le.AppendUint16(nil, 0xffff))
	add("i8", I8, 2, []byte{0x80, 0x7f})
	add("u8", U8, 1, []byte{0xff})
	add("bool", BOOL, 2, []byte{1, 0})
	add("f8", F8E4M3, 1, []byte{0x38})
	header := "{" + strings.Join(hdr, ", ") + "}"
	f, err := Open(writeTemp(t, "x.safetensors", append(headerFile(header, 0), data...)))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()

	ints := map[string][]int64{
		"i64": {1 << 40, -5}, "i32": {7, -7}, "u32": {1<<32 - 1}, "i16": {-1}, "u16": {0xffff},
		"i8": {-128, 127}, "u8": {255}, "bool": {1, 0},
	}
	for name, want := range ints {
		t.Run(name, func(t *testing.T) {
			got, err := f.Int64s(name)
			if err != nil || !slices.Equal(got, want) {
				t.Errorf("Int64s(%q) = %v, %v; want %v", name, got, err, want)
			}
			if _, err := f.Float32(name); err == nil || !strings.Contains(err.Error(), "not a floating-point type") || !strings.Contains(err.Error(), `tensor "`+name+`"`) {
				t.Errorf("Float32(%q) error = %v, want one naming the tensor and its dtype", name, err)
			}
		})
	}
	t.Run("f64", func(t *testing.T) {
		got, err := f.Float32("f64")
		if err != nil || !slices.Equal(got, []float32{1, float32(1.0 / 3)}) {
			t.Errorf("Float32(f64) = %v, %v", got, err)
		}
		if _, err := f.Int64s("f64"); err == nil || !strings.Contains(err.Error(), "dtype F64 is not an integer type") {
			t.Errorf("Int64s(f64) error = %v", err)
		}
	})
	t.Run("f8 is neither", func(t *testing.T) {
		_, err := f.Float32("f8")
		if err == nil || !strings.Contains(err.Error(), "dtype F8_E4M3") || !strings.Contains(err.Error(), f.Path()) {
			t.Errorf("Float32(f8) error = %v, want one naming file, tensor and dtype", err)
		}
	})
	t.Run("missing tensor", func(t *testing.T) {
		for _, fn := range []func(string) error{
			func(n string) error { _, err := f.Float32(n); return err },
			func(n string) error { _, err := f.Raw(n); return err },
			func(n string) error { _, err := f.Int64s(n); return err },
		} {
			if err := fn("nope"); err == nil || !strings.Contains(err.Error(), `no tensor "nope"`) {
				t.Errorf("error = %v, want no tensor", err)
			}
		}
		if _, ok := f.Info("nope"); ok {
			t.Error("Info(nope) found a tensor")
		}
	})
}

func itoa(n int) string { return strconv.Itoa(n) }
