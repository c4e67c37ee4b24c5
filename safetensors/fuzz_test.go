package safetensors

import (
	"bytes"
	"testing"
)

// FuzzOpen feeds arbitrary file bytes to the header parser and reads every
// tensor of whatever it accepts. It must never panic, and what it accepts
// must be self-consistent.
func FuzzOpen(f *testing.F) {
	var valid bytes.Buffer
	srcs, err := sources([]Tensor{
		{Name: "a", DType: F32, Shape: []int{2, 2}, Data: []float32{1, 2, 3, 4}},
		{Name: "b", DType: F16, Shape: []int{3}, Data: []float32{1, -2, 65504}},
		{Name: "c", DType: BF16, Shape: []int{}, Data: []float32{0.5}},
	})
	if err == nil {
		err = encode(&valid, srcs, map[string]string{"format": "pt"})
	}
	if err != nil {
		f.Fatal(err)
	}
	f.Add(valid.Bytes())
	f.Add(headerFile(`{"i": {"dtype": "I64", "shape": [2], "data_offsets": [0, 16]}, "z": {"dtype": "F32", "shape": [0], "data_offsets": [16, 16]}}`, 16))
	for _, c := range corruptFiles {
		f.Add(c.data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := newFile("fuzz.safetensors", bytes.NewReader(data), int64(len(data)))
		if err != nil {
			return
		}
		var covered int64
		for _, name := range file.Names() {
			ti, ok := file.Info(name)
			if !ok || ti.Begin < file.dataOff || ti.End > int64(len(data)) || ti.End-ti.Begin != int64(ti.NumElements()*ti.DType.Size()) {
				t.Fatalf("accepted inconsistent tensor %+v in a %d-byte file", ti, len(data))
			}
			covered += ti.End - ti.Begin
			raw, err := file.Raw(name)
			if err != nil || !bytes.Equal(raw, data[ti.Begin:ti.End]) {
				t.Fatalf("Raw(%q) = %d bytes, %v", name, len(raw), err)
			}
			if v, err := file.Float32(name); err == nil && len(v) != ti.NumElements() {
				t.Fatalf("Float32(%q) gave %d values for %d elements", name, len(v), ti.NumElements())
			}
			if v, err := file.Int64s(name); err == nil && len(v) != ti.NumElements() {
				t.Fatalf("Int64s(%q) gave %d values for %d elements", name, len(v), ti.NumElements())
			}
		}
		if covered != int64(len(data))-file.dataOff {
			t.Fatalf("tensors cover %d bytes of a %d-byte data section", covered, int64(len(data))-file.dataOff)
		}
	})
}
