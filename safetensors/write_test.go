package safetensors

import (
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// sampleValues covers exact values, rounding ties for F16 and BF16,
// subnormals, overflow, infinities and NaN.
var sampleValues = []float32{
	0, float32(math.Copysign(0, -1)), 1, -2.5, 0.1, 1e-3, 3.14159265,
	1 + 0x1p-11, 1 + 3*0x1p-11, // F16 ties
	math.Float32frombits(0x3f808000), math.Float32frombits(0x3f818000), // BF16 ties
	0x1p-24, 0x1p-25, 3 * 0x1p-25, 1e-40, // F16 subnormals, an F32 subnormal
	65504, 65520, 1e6, -1e30, math.MaxFloat32,
	float32(math.Inf(1)), float32(math.Inf(-1)), float32(math.NaN()),
}

// roundTo returns v as it reads back after being written as dtype.
func roundTo(dtype DType, v float32) float32 {
	switch dtype {
	case F16:
		return F16ToF32(F32ToF16(v))
	case BF16:
		return BF16ToF32(F32ToBF16(v))
	}
	return v
}

func sameBits(a, b []float32) bool {
	return slices.EqualFunc(a, b, func(x, y float32) bool { return math.Float32bits(x) == math.Float32bits(y) })
}

func TestWriteRoundTrip(t *testing.T) {
	n := len(sampleValues)
	for _, dtype := range []DType{F32, F16, BF16, F64} {
		t.Run(string(dtype), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "model.safetensors")
			big := make([]float32, 300000) // larger than one read chunk
			for i := range big {
				big[i] = float32(i%1000)*0.37 - 100
			}
			tensors := []Tensor{
				{Name: "values", DType: dtype, Shape: []int{n}, Data: sampleValues},
				{Name: "big", DType: dtype, Shape: []int{3, 100000}, Data: big},
				{Name: "scalar", DType: dtype, Shape: []int{}, Data: []float32{42}},
				{Name: "empty", DType: dtype, Shape: []int{0, 4}, Data: nil},
			}
			meta := map[string]string{"format": "pt", "note": `quotes " and <tags> & unicode é`}
			if err := Write(path, tensors, meta); err != nil {
				t.Fatal(err)
			}
			f, err := Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if got, want := f.Names(), []string{"big", "empty", "scalar", "values"}; !slices.Equal(got, want) {
				t.Errorf("Names() = %q, want %q", got, want)
			}
			if got := f.Metadata(); len(got) != 2 || got["format"] != "pt" || got["note"] != meta["note"] {
				t.Errorf("Metadata() = %q, want %q", got, meta)
			}
			for _, tensor := range tensors {
				ti, ok := f.Info(tensor.Name)
				if !ok || ti.DType != dtype || !slices.Equal(ti.Shape, tensor.Shape) || ti.NumElements() != len(tensor.Data) {
					t.Errorf("Info(%q) = %+v, %v", tensor.Name, ti, ok)
				}
				got, err := f.Float32(tensor.Name)
				if err != nil {
					t.Fatal(err)
				}
				want := make([]float32, len(tensor.Data))
				for i, v := range tensor.Data {
					want[i] = roundTo(dtype, v)
				}
				if !sameBits(got, want) {
					t.Errorf("Float32(%q) = %v, want %v", tensor.Name, got[:min(len(got), 30)], want[:min(len(want), 30)])
				}
			}
			// The data is laid out in name order, right after an 8-byte-aligned header.
			var prev int64 = -1
			for _, name := range f.Names() {
				ti, _ := f.Info(name)
				if ti.Begin < prev {
					t.Errorf("tensor %q starts at %d, before the previous one ends", name, ti.Begin)
				}
				prev = ti.End
			}
			raw, _ := os.ReadFile(path)
			if hl := binary.LittleEndian.Uint64(raw); hl%8 != 0 {
				t.Errorf("header length %d is not a multiple of 8", hl)
			}
		})
	}
}

// TestWriteBits checks the exact bytes written for F16 and BF16.
func TestWriteBits(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.safetensors")
	vals := []float32{1, 1 + 0x1p-11, 65520, float32(math.NaN())}
	err := Write(path, []Tensor{
		{Name: "h", DType: F16, Shape: []int{4}, Data: vals},
		{Name: "b", DType: BF16, Shape: []int{4}, Data: []float32{1, math.Float32frombits(0x3f818000), math.MaxFloat32, float32(math.NaN())}},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for name, want := range map[string][]uint16{"h": {0x3c00, 0x3c00, 0x7c00, 0x7e00}, "b": {0x3f80, 0x3f82, 0x7f80, 0x7fc0}} {
		raw, err := f.Raw(name)
		if err != nil {
			t.Fatal(err)
		}
		got := make([]uint16, len(raw)/2)
		for i := range got {
			got[i] = binary.LittleEndian.Uint16(raw[2*i:])
		}
		if !slices.Equal(got, want) {
			t.Errorf("Raw(%q) = %#04x, want %#04x", name, got, want)
		}
	}
	if len(f.Metadata()) != 0 {
		t.Errorf("Metadata() = %v, want none", f.Metadata())
	}
	raw, _ := os.ReadFile(path)
	if strings.Contains(string(raw), metadataKey) {
		t.Error("empty metadata was written")
	}
}

func TestWriteErrors(t *testing.T) {
	tests := []struct {
		name    string
		tensors []Tensor
		want    string
	}{
		{"duplicate names", []Tensor{{Name: "a", DType: F32, Shape: []int{1}, Data: []float32{1}}, {Name: "a", DType: F32, Shape: []int{1}, Data: []float32{2}}}, `tensor "a" appears twice`},
		{"integer dtype", []Tensor{{Name: "ids", DType: I64, Shape: []int{1}, Data: []float32{1}}}, `tensor "ids": cannot write dtype "I64"`},
		{"no dtype", []Tensor{{Name: "a", Shape: []int{1}, Data: []float32{1}}}, `cannot write dtype ""`},
		{"data does not match shape", []Tensor{{Name: "a", DType: F32, Shape: []int{2, 3}, Data: make([]float32, 5)}}, "shape [2 3] needs 6 elements but Data has 5"},
		{"negative dimension", []Tensor{{Name: "a", DType: F32, Shape: []int{-1}, Data: nil}}, "negative dimension"},
		{"overflowing shape", []Tensor{{Name: "a", DType: F32, Shape: []int{1 << 40, 1 << 40}, Data: nil}}, "too many elements"},
		{"name not UTF-8", []Tensor{{Name: "w\xff", DType: F32, Shape: []int{1}, Data: []float32{1}}}, "not valid UTF-8"},
		{"reserved name", []Tensor{{Name: "__metadata__", DType: F32, Shape: []int{1}, Data: []float32{1}}}, "reserved"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "model.safetensors")
			old := []byte("previous contents")
			if err := os.WriteFile(path, old, 0o644); err != nil {
				t.Fatal(err)
			}
			err := Write(path, tt.tensors, nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), path) {
				t.Errorf("Write error = %v, want one naming %s and saying %q", err, path, tt.want)
			}
			// A failed write leaves the old file and no temporary files.
			if got, _ := os.ReadFile(path); string(got) != string(old) {
				t.Errorf("file changed to %q", got)
			}
			if entries, _ := os.ReadDir(dir); len(entries) != 1 {
				t.Errorf("folder holds %d entries after a failed write, want 1", len(entries))
			}
		})
	}
	t.Run("missing folder", func(t *testing.T) {
		err := Write(filepath.Join(t.TempDir(), "no", "such", "x.safetensors"), nil, nil)
		if err == nil {
			t.Error("Write into a missing folder succeeded")
		}
	})
}

// TestWriteReplaces checks that Write replaces an existing file whole.
func TestWriteReplaces(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "model.safetensors")
	for i, n := range []int{1000, 3} {
		data := make([]float32, n)
		for j := range data {
			data[j] = float32(i)
		}
		if err := Write(path, []Tensor{{Name: "w", DType: F32, Shape: []int{n}, Data: data}}, nil); err != nil {
			t.Fatal(err)
		}
	}
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if got, _ := f.Float32("w"); !slices.Equal(got, []float32{1, 1, 1}) {
		t.Errorf("after the second write w = %v", got)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("folder holds %d entries, want 1", len(entries))
	}
}
