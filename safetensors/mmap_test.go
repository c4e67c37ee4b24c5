package safetensors

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// TestMapped checks that a mapped tensor's bytes equal Raw's copy, for
// every dtype and in a sharded checkpoint, that the mapping outlives the
// closed File, and that one file is mapped once.
func TestMapped(t *testing.T) {
	dir := t.TempDir()
	ts := []Tensor{
		{Name: "a", DType: BF16, Shape: []int{3, 5}, Data: []float32{1, -2, 3.5, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}},
		{Name: "b", DType: F32, Shape: []int{2}, Data: []float32{0.25, -7}},
		{Name: "c", DType: F16, Shape: []int{1, 3}, Data: []float32{1, 2, 3}},
		{Name: "empty", DType: BF16, Shape: []int{0}, Data: nil},
	}
	for _, shard := range []int64{0, 16} {
		sub := filepath.Join(dir, map[bool]string{true: "single", false: "sharded"}[shard == 0])
		if err := os.MkdirAll(sub, 0o755); err != nil {
			t.Fatal(err)
		}
		limit := shard
		if limit == 0 {
			limit = 1 << 20
		}
		if err := WriteCheckpoint(sub, ts, nil, limit); err != nil {
			t.Fatal(err)
		}
		ck, err := OpenCheckpoint(sub)
		if err != nil {
			t.Fatal(err)
		}
		got := map[string][]byte{}
		for _, tn := range ts {
			want, err := ck.Raw(tn.Name)
			if err != nil {
				t.Fatal(err)
			}
			b, err := ck.Mapped(tn.Name)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(b, want) {
				t.Errorf("%s: tensor %s: mapped bytes %v, read %v", sub, tn.Name, b, want)
			}
			got[tn.Name] = b
		}
		if _, err := ck.Mapped("missing"); err == nil {
			t.Errorf("%s: mapping a missing tensor: no error", sub)
		}
		if shard > 0 && len(ck.files) < 2 {
			t.Fatalf("%s: %d shards, want several", sub, len(ck.files))
		}
		f := ck.files[0]
		m1, err := f.Map()
		if err != nil {
			t.Fatal(err)
		}
		if m2, _ := f.Map(); m1 != m2 {
			t.Errorf("%s: the file was mapped twice", sub)
		}
		if err := ck.Close(); err != nil {
			t.Fatal(err)
		}
		for _, tn := range ts {
			raw, _ := encodeValues(tn)
			if !bytes.Equal(got[tn.Name], raw) {
				t.Errorf("%s: tensor %s changed after Close", sub, tn.Name)
			}
		}
	}
}

// encodeValues returns a tensor's bytes as the writer stores them.
func encodeValues(tn Tensor) ([]byte, error) {
	return appendData(nil, tn.DType, tn.Data), nil
}
