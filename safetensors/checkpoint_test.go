package safetensors

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// modelTensors returns a few tensors in model order, not name order.
func modelTensors(dtype DType) []Tensor {
	mk := func(name string, shape ...int) Tensor {
		n := 1
		for _, d := range shape {
			n *= d
		}
		data := make([]float32, n)
		for i := range data {
			data[i] = float32(len(name)*1000+i) / 64
		}
		return Tensor{Name: name, DType: dtype, Shape: shape, Data: data}
	}
	return []Tensor{
		mk("model.embed_tokens.weight", 32, 8), // 256 elements
		mk("model.layers.0.self_attn.q_proj.weight", 8, 8),
		mk("model.layers.0.mlp.up_proj.weight", 16, 8),
		mk("model.layers.0.input_layernorm.weight", 8),
		mk("model.layers.1.self_attn.q_proj.weight", 8, 8),
		mk("model.norm.weight", 8),
		mk("lm_head.weight", 32, 8),
	}
}

func checkpointFiles(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func checkCheckpoint(t *testing.T, dir string, tensors []Tensor) {
	t.Helper()
	c, err := OpenCheckpoint(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var want []string
	for _, tensor := range tensors {
		want = append(want, tensor.Name)
	}
	slices.Sort(want)
	if got := c.Names(); !slices.Equal(got, want) {
		t.Errorf("Names() = %q, want %q", got, want)
	}
	for _, tensor := range tensors {
		ti, ok := c.Info(tensor.Name)
		if !ok || !slices.Equal(ti.Shape, tensor.Shape) || ti.DType != tensor.DType {
			t.Errorf("Info(%q) = %+v, %v", tensor.Name, ti, ok)
		}
		got, err := c.Float32(tensor.Name)
		if err != nil {
			t.Fatal(err)
		}
		want := make([]float32, len(tensor.Data))
		for i, v := range tensor.Data {
			want[i] = roundTo(tensor.DType, v)
		}
		if !sameBits(got, want) {
			t.Errorf("Float32(%q) differs from what was written", tensor.Name)
		}
	}
	if got := c.DType(); got != tensors[0].DType {
		t.Errorf("DType() = %s, want %s", got, tensors[0].DType)
	}
	if got := c.Metadata()["format"]; got != "pt" {
		t.Errorf(`Metadata()["format"] = %q, want "pt"`, got)
	}
	if _, err := c.Float32("nope"); err == nil || !strings.Contains(err.Error(), `no tensor "nope"`) {
		t.Errorf("Float32(nope) error = %v", err)
	}
}

func TestWriteCheckpoint(t *testing.T) {
	meta := map[string]string{"format": "pt"}
	tensors := modelTensors(BF16)
	// Bytes per tensor: 512, 128, 256, 16, 128, 16, 512 (1568 in all).
	tests := []struct {
		name     string
		maxShard int64
		files    []string
		shardOf  map[string]string // a few tensors' shards
	}{
		{"unsharded", 0, []string{SingleFileName}, nil},
		{"limit above total", 1568, []string{SingleFileName}, nil},
		{"three shards", 600, []string{"model-00001-of-00003.safetensors", "model-00002-of-00003.safetensors", "model-00003-of-00003.safetensors", IndexFileName},
			map[string]string{
				"model.embed_tokens.weight":              "model-00001-of-00003.safetensors",
				"model.layers.0.self_attn.q_proj.weight": "model-00002-of-00003.safetensors",
				"model.norm.weight":                      "model-00002-of-00003.safetensors",
				"lm_head.weight":                         "model-00003-of-00003.safetensors",
			}},
		{"tensors larger than the limit", 100, []string{
			"model-00001-of-00007.safetensors", "model-00002-of-00007.safetensors", "model-00003-of-00007.safetensors", "model-00004-of-00007.safetensors",
			"model-00005-of-00007.safetensors", "model-00006-of-00007.safetensors", "model-00007-of-00007.safetensors", IndexFileName},
			map[string]string{"model.layers.0.input_layernorm.weight": "model-00004-of-00007.safetensors", "model.norm.weight": "model-00006-of-00007.safetensors"}},
		{"two shards", 1000, []string{"model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors", IndexFileName}, nil},
	}
	// All cases save into one folder in turn, so each also checks that the
	// files of the previous save are gone.
	dir := filepath.Join(t.TempDir(), "ckpt")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	keep := filepath.Join(dir, "config.json")
	if err := os.WriteFile(keep, []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := WriteCheckpoint(dir, tensors, meta, tt.maxShard); err != nil {
				t.Fatal(err)
			}
			want := append([]string{"config.json"}, tt.files...)
			slices.Sort(want)
			if got := checkpointFiles(t, dir); !slices.Equal(got, want) {
				t.Errorf("files = %q, want %q", got, want)
			}
			checkCheckpoint(t, dir, tensors)
			if len(tt.files) == 1 {
				return
			}
			raw, err := os.ReadFile(filepath.Join(dir, IndexFileName))
			if err != nil {
				t.Fatal(err)
			}
			var idx struct {
				Metadata struct {
					TotalSize int64 `json:"total_size"`
				} `json:"metadata"`
				WeightMap map[string]string `json:"weight_map"`
			}
			if err := json.Unmarshal(raw, &idx); err != nil {
				t.Fatal(err)
			}
			if idx.Metadata.TotalSize != 1568 {
				t.Errorf("total_size = %d, want 1568", idx.Metadata.TotalSize)
			}
			if len(idx.WeightMap) != len(tensors) {
				t.Errorf("weight_map has %d tensors, want %d", len(idx.WeightMap), len(tensors))
			}
			for name, shard := range tt.shardOf {
				if idx.WeightMap[name] != shard {
					t.Errorf("weight_map[%q] = %q, want %q", name, idx.WeightMap[name], shard)
				}
			}
			for _, shard := range tt.files[:len(tt.files)-1] {
				st, _ := os.Stat(filepath.Join(dir, shard))
				if tt.maxShard >= 512 && st.Size() > tt.maxShard+1024 {
					t.Errorf("shard %s is %d bytes, more than the limit allows", shard, st.Size())
				}
			}
		})
	}
	if _, err := os.Stat(keep); err != nil {
		t.Errorf("an unrelated file was removed: %v", err)
	}
}

func TestWriteCheckpointErrors(t *testing.T) {
	dir := t.TempDir()
	good := modelTensors(F32)
	if err := WriteCheckpoint(dir, good, map[string]string{"format": "pt"}, 0); err != nil {
		t.Fatal(err)
	}
	bad := append(slices.Clone(good), Tensor{Name: "lm_head.weight", DType: F32, Shape: []int{1}, Data: []float32{0}})
	for _, max := range []int64{0, 100} {
		if err := WriteCheckpoint(dir, bad, nil, max); err == nil || !strings.Contains(err.Error(), `tensor "lm_head.weight" appears twice`) {
			t.Errorf("maxShardBytes %d: error = %v, want a duplicate tensor", max, err)
		}
	}
	// The failed saves left the earlier one alone.
	if got := checkpointFiles(t, dir); !slices.Equal(got, []string{SingleFileName}) {
		t.Errorf("files = %q", got)
	}
	checkCheckpoint(t, dir, good)
}

// shardedDir writes a two-shard checkpoint and returns its folder.
func shardedDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := WriteCheckpoint(dir, modelTensors(F16), map[string]string{"format": "pt"}, 1000); err != nil {
		t.Fatal(err)
	}
	return dir
}

func writeIndex(t *testing.T, dir string, weightMap map[string]string) {
	t.Helper()
	raw, err := json.Marshal(map[string]any{"metadata": map[string]any{"total_size": 1}, "weight_map": weightMap})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, IndexFileName), raw, 0o644); err != nil {
		t.Fatal(err)
	}
}

func readWeightMap(t *testing.T, dir string) map[string]string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(dir, IndexFileName))
	if err != nil {
		t.Fatal(err)
	}
	var idx struct {
		WeightMap map[string]string `json:"weight_map"`
	}
	if err := json.Unmarshal(raw, &idx); err != nil {
		t.Fatal(err)
	}
	return idx.WeightMap
}

func TestOpenCheckpointCorrupt(t *testing.T) {
	const shard1, shard2 = "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"
	tests := []struct {
		name   string
		break_ func(t *testing.T, dir string)
		want   []string
	}{
		{"no weights", func(t *testing.T, dir string) {
			os.Remove(filepath.Join(dir, IndexFileName))
		}, []string{"no weights"}},
		{"missing shard", func(t *testing.T, dir string) {
			os.Remove(filepath.Join(dir, shard2))
		}, []string{shard2, "no such file", IndexFileName}},
		{"tensor not in its shard", func(t *testing.T, dir string) {
			wm := readWeightMap(t, dir)
			wm["lm_head.weight"] = shard1
			writeIndex(t, dir, wm)
		}, []string{`tensor "lm_head.weight": shard ` + shard1 + " does not hold it"}},
		{"tensor missing from every shard", func(t *testing.T, dir string) {
			wm := readWeightMap(t, dir)
			wm["model.layers.9.mlp.up_proj.weight"] = shard2
			writeIndex(t, dir, wm)
		}, []string{`tensor "model.layers.9.mlp.up_proj.weight": shard ` + shard2 + " does not hold it"}},
		{"tensor the index does not list", func(t *testing.T, dir string) {
			wm := readWeightMap(t, dir)
			delete(wm, "lm_head.weight")
			writeIndex(t, dir, wm)
		}, []string{`tensor "lm_head.weight"`, "does not list it"}},
		{"tensor in two shards", func(t *testing.T, dir string) {
			// Rewrite shard 2 to also hold a tensor of shard 1.
			tensors := modelTensors(F16)
			err := Write(filepath.Join(dir, shard2), []Tensor{tensors[0], tensors[len(tensors)-1]}, nil)
			if err != nil {
				t.Fatal(err)
			}
			writeIndex(t, dir, map[string]string{"model.embed_tokens.weight": shard1, "lm_head.weight": shard2})
			// Shard 1 holds more tensors than listed; keep only the duplicate.
			if err := Write(filepath.Join(dir, shard1), tensors[:1], nil); err != nil {
				t.Fatal(err)
			}
		}, []string{`tensor "model.embed_tokens.weight": appears in two shards`, shard1, shard2}},
		{"path traversal", func(t *testing.T, dir string) {
			wm := readWeightMap(t, dir)
			wm["lm_head.weight"] = "../" + shard2
			writeIndex(t, dir, wm)
		}, []string{`shard "../` + shard2 + `" is not a plain file name`}},
		{"subfolder", func(t *testing.T, dir string) {
			wm := readWeightMap(t, dir)
			wm["lm_head.weight"] = "sub/x.safetensors"
			writeIndex(t, dir, wm)
		}, []string{`shard "sub/x.safetensors" is not a plain file name`}},
		{"absolute path", func(t *testing.T, dir string) {
			wm := readWeightMap(t, dir)
			wm["lm_head.weight"] = filepath.Join(dir, shard2)
			writeIndex(t, dir, wm)
		}, []string{"is not a plain file name"}},
		{"dot dot", func(t *testing.T, dir string) {
			wm := readWeightMap(t, dir)
			wm["lm_head.weight"] = ".."
			writeIndex(t, dir, wm)
		}, []string{`shard ".." is not a plain file name`}},
		{"empty shard name", func(t *testing.T, dir string) {
			wm := readWeightMap(t, dir)
			wm["lm_head.weight"] = ""
			writeIndex(t, dir, wm)
		}, []string{`shard "" is not a plain file name`}},
		{"tensor listed twice", func(t *testing.T, dir string) {
			raw := `{"weight_map": {"lm_head.weight": "` + shard2 + `", "lm_head.weight": "` + shard1 + `"}}`
			os.WriteFile(filepath.Join(dir, IndexFileName), []byte(raw), 0o644)
		}, []string{`weight_map lists tensor "lm_head.weight" twice`}},
		{"index not JSON", func(t *testing.T, dir string) {
			os.WriteFile(filepath.Join(dir, IndexFileName), []byte(`{"weight_map": {`), 0o644)
		}, []string{"index is not valid JSON"}},
		{"index without weight_map", func(t *testing.T, dir string) {
			os.WriteFile(filepath.Join(dir, IndexFileName), []byte(`{"metadata": {"total_size": 3}}`), 0o644)
		}, []string{`no "weight_map"`}},
		{"shard name not a string", func(t *testing.T, dir string) {
			os.WriteFile(filepath.Join(dir, IndexFileName), []byte(`{"weight_map": {"a": 1}}`), 0o644)
		}, []string{`tensor "a": shard is not a file name string`}},
		{"corrupt shard", func(t *testing.T, dir string) {
			os.WriteFile(filepath.Join(dir, shard1), []byte("short"), 0o644)
		}, []string{shard1, "too short"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := shardedDir(t)
			tt.break_(t, dir)
			c, err := OpenCheckpoint(dir)
			if err == nil {
				c.Close()
				t.Fatal("OpenCheckpoint succeeded, want an error")
			}
			if !strings.Contains(err.Error(), dir) {
				t.Errorf("error %q does not name the folder", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}

func TestCheckpointDType(t *testing.T) {
	dir := t.TempDir()
	tensors := []Tensor{
		{Name: "norm", DType: F32, Shape: []int{4}, Data: make([]float32, 4)},
		{Name: "w", DType: BF16, Shape: []int{2, 4}, Data: make([]float32, 8)},
	}
	if err := WriteCheckpoint(dir, tensors, nil, 0); err != nil {
		t.Fatal(err)
	}
	c, err := OpenCheckpoint(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got := c.DType(); got != BF16 {
		t.Errorf("DType() = %s, want BF16", got)
	}
	if got := c.Files(); len(got) != 1 || filepath.Base(got[0]) != SingleFileName {
		t.Errorf("Files() = %q", got)
	}
}

// WriteCheckpointFrom writes the bytes WriteCheckpoint writes, calling each
// source once; a source that fails, or returns the wrong number of elements,
// leaves the earlier save as it was.
func TestWriteCheckpointFrom(t *testing.T) {
	meta := map[string]string{"format": "pt"}
	tensors := modelTensors(BF16)
	for _, maxShard := range []int64{0, 600} {
		t.Run(fmt.Sprint("maxShard ", maxShard), func(t *testing.T) {
			want, got := t.TempDir(), t.TempDir()
			if err := WriteCheckpoint(want, tensors, meta, maxShard); err != nil {
				t.Fatal(err)
			}
			calls := map[string]int{}
			srcs := make([]Source, len(tensors))
			for i, tensor := range tensors {
				srcs[i] = Source{Name: tensor.Name, DType: tensor.DType, Shape: tensor.Shape, Data: func() ([]float32, error) {
					calls[tensor.Name]++
					return slices.Clone(tensor.Data), nil
				}}
			}
			if err := WriteCheckpointFrom(got, srcs, meta, maxShard); err != nil {
				t.Fatal(err)
			}
			for _, tensor := range tensors {
				if calls[tensor.Name] != 1 {
					t.Errorf("Data of %q called %d times, want once", tensor.Name, calls[tensor.Name])
				}
			}
			names := checkpointFiles(t, want)
			if g := checkpointFiles(t, got); !slices.Equal(g, names) {
				t.Fatalf("files = %q, want %q", g, names)
			}
			for _, name := range names {
				a, _ := os.ReadFile(filepath.Join(want, name))
				b, _ := os.ReadFile(filepath.Join(got, name))
				if !bytes.Equal(a, b) {
					t.Errorf("%s differs from WriteCheckpoint's", name)
				}
			}
		})
	}

	boom := errors.New("boom")
	for _, tc := range []struct {
		name string
		data func() ([]float32, error)
		want string
	}{
		{"data fails", func() ([]float32, error) { return nil, boom }, `tensor "model.norm.weight": boom`},
		{"short data", func() ([]float32, error) { return make([]float32, 7), nil }, `tensor "model.norm.weight": shape [8] needs 8 elements but its data has 7`},
		{"no data function", nil, `tensor "model.norm.weight": no Data function`},
	} {
		for _, maxShard := range []int64{0, 600} {
			t.Run(fmt.Sprint(tc.name, " maxShard ", maxShard), func(t *testing.T) {
				dir := t.TempDir()
				good := modelTensors(F32)
				if err := WriteCheckpoint(dir, good, meta, 0); err != nil {
					t.Fatal(err)
				}
				srcs, err := sources(modelTensors(BF16))
				if err != nil {
					t.Fatal(err)
				}
				for i := range srcs {
					if srcs[i].Name == "model.norm.weight" {
						srcs[i].Data = tc.data
					}
				}
				err = WriteCheckpointFrom(dir, srcs, meta, maxShard)
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("error = %v, want %q", err, tc.want)
				}
				// Shards written before the failure may remain, but the
				// index, written last, is not, so the earlier save is
				// what a loader finds; no temporary file is left.
				for _, f := range checkpointFiles(t, dir) {
					if f != SingleFileName && !shardName.MatchString(f) {
						t.Errorf("left %s behind", f)
					}
				}
				checkCheckpoint(t, dir, good)
			})
		}
	}
}
