package train

import (
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/relupo/relupo/kernels"
	"github.com/relupo/relupo/model"
	"github.com/relupo/relupo/safetensors"
)

// TestHostileOptions checks that options which would lose data or exhaust
// the machine are refused with a message naming them.
func TestHostileOptions(t *testing.T) {
	dir := t.TempDir()
	modelDir := filepath.Join(dir, "model")
	if err := os.Mkdir(modelDir, 0o755); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(modelDir, link); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		edit func(*Options)
		want string // "" means valid
	}{
		{"valid", func(o *Options) {}, ""},
		{"output is the model", func(o *Options) { o.OutputDir = modelDir }, "is the input model's folder"},
		{"output is the model, unclean path", func(o *Options) { o.OutputDir = modelDir + "/./" }, "is the input model's folder"},
		{"output is a link to the model", func(o *Options) { o.OutputDir = link }, "is the input model's folder"},
		{"negative save_total_limit", func(o *Options) { o.SaveTotalLimit = -1 }, "save_total_limit must be ≥ 0"},
		{"a million threads", func(o *Options) { o.Threads = 1000000 }, "threads 1000000 is more than"},
		{"threads at the cap", func(o *Options) { o.Threads = kernels.MaxWorkers() }, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			o := DefaultOptions()
			o.Model, o.Data, o.OutputDir = modelDir, []string{filepath.Join(dir, "d.jsonl")}, filepath.Join(dir, "out")
			c.edit(&o)
			_, err := o.Config()
			switch {
			case c.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
				t.Fatalf("got %v, want an error containing %q", err, c.want)
			}
		})
	}
}

// TestOutputLock checks that a second run cannot take an output folder
// another run holds, and can once it is released.
func TestOutputLock(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "out")
	release, err := lockDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lockDir(dir); err == nil || !strings.Contains(err.Error(), "in use by another relupo run") {
		t.Fatalf("second lock: got %v, want the folder in use", err)
	}
	// A Trainer's run refuses the held folder before touching it.
	tr := &Trainer{Config: Config{Output: OutputConfig{Dir: dir}}}
	if err := tr.lockOutput(); err == nil {
		t.Fatal("a Trainer took a held output folder")
	}
	release()
	again, err := lockDir(dir)
	if err != nil {
		t.Fatalf("after release: %v", err)
	}
	again()
	// The lock file alone does not make the folder another run's.
	if err := checkOutput(dir, false, false); err != nil {
		t.Fatalf("a folder holding only the lock file: %v", err)
	}
}

// TestFinalSaveAtomic kills the swap of a new final model into a folder
// holding an earlier model of another shape after every possible
// operation, and checks that the folder never holds a config.json beside
// weights of the other save, and that the next run finishes the swap.
func TestFinalSaveAtomic(t *testing.T) {
	type model map[string]string // file name → content
	oldSingle := model{"config.json": "old", "model.safetensors": "old", "tokenizer.model": "old"}
	oldSharded := model{"config.json": "old", "model-00001-of-00002.safetensors": "old", "model-00002-of-00002.safetensors": "old", "model.safetensors.index.json": "old"}
	newSingle := model{"config.json": "new", "model.safetensors": "new", "README.md": "new"}
	newSharded := model{"config.json": "new", "model-00001-of-00003.safetensors": "new", "model-00002-of-00003.safetensors": "new",
		"model-00003-of-00003.safetensors": "new", "model.safetensors.index.json": "new"}
	write := func(dir string, m model) {
		for name, content := range m {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, c := range []struct {
		name     string
		old, new model
	}{
		{"single over single", oldSingle, newSingle},
		{"single over sharded", oldSharded, newSingle},
		{"sharded over single", oldSingle, newSharded},
		{"sharded over sharded", oldSharded, newSharded},
	} {
		t.Run(c.name, func(t *testing.T) {
			for stop := 0; ; stop++ {
				out := t.TempDir()
				write(out, c.old)
				write(out, model{"metrics.jsonl": "keep"})
				if err := os.Mkdir(filepath.Join(out, finalReady), 0o755); err != nil {
					t.Fatal(err)
				}
				write(filepath.Join(out, finalReady), c.new)
				var names []string
				for name := range c.new {
					names = append(names, name)
				}
				write(filepath.Join(out, finalReady), model{finalManifest: strings.Join(names, "\n")})
				if err := installFinal(out, stop); err != nil {
					t.Fatal(err)
				}
				_, readyLeft := os.Stat(filepath.Join(out, finalReady))
				// A kill here: config.json is absent or matches every weight file.
				entries, _ := os.ReadDir(out)
				cfg, err := os.ReadFile(filepath.Join(out, "config.json"))
				if err == nil {
					for _, e := range entries {
						if strings.HasSuffix(e.Name(), ".safetensors") || strings.HasSuffix(e.Name(), ".index.json") {
							b, _ := os.ReadFile(filepath.Join(out, e.Name()))
							if string(b) != string(cfg) {
								t.Fatalf("killed after %d operations: config.json %q beside %s %q", stop, cfg, e.Name(), b)
							}
						}
					}
				}
				// The next run finishes the swap.
				if err := recoverFinal(out); err != nil {
					t.Fatal(err)
				}
				entries, _ = os.ReadDir(out)
				got := model{}
				for _, e := range entries {
					b, _ := os.ReadFile(filepath.Join(out, e.Name()))
					got[e.Name()] = string(b)
				}
				want := model{"metrics.jsonl": "keep"}
				for k, v := range c.new {
					want[k] = v
				}
				if len(got) != len(want) {
					t.Fatalf("killed after %d operations, then recovered: folder %v, want %v", stop, got, want)
				}
				for k, v := range want {
					if got[k] != v {
						t.Fatalf("killed after %d operations, then recovered: %s = %q, want %q", stop, k, got[k], v)
					}
				}
				if os.IsNotExist(readyLeft) { // the swap ran to its end
					break
				}
			}
		})
	}
}

// TestReferencePassStops checks that the reference log-prob pass over the
// data stops at the next batch once ctx is cancelled.
func TestReferencePassStops(t *testing.T) {
	exs := tinyExamples(12, 9)
	c := Config{Loop: LoopConfig{EvalBatchSize: 2}}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := c.attachReference(ctx, exs, tinyModel(9), nil)
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "stopped after 2 of 12 pairs") {
		t.Fatalf("got %v, want a stop after the first batch", err)
	}
	if err := c.attachReference(context.Background(), exs, tinyModel(9), nil); err != nil || !allHaveRef(exs) {
		t.Fatalf("uncancelled: %v", err)
	}
}

// TestMemoryProbe: the pre-flight's available memory is the least of
// MemAvailable, the cgroup's limit less its usage (v2 and v1, in the
// process's own cgroup or at the namespace's root) and RLIMIT_AS less the
// address space in use.
func TestMemoryProbe(t *testing.T) {
	const gib = int64(1) << 30
	meminfo := "MemTotal: 25165824 kB\nMemAvailable: 20971520 kB\n" // 20 GiB available
	status := "Name: relupo\nVmSize: 1048576 kB\n"                  // 1 GiB mapped
	for _, c := range []struct {
		name  string
		files map[string]string
		as    uint64 // 0: no RLIMIT_AS
		want  int64
	}{
		{"MemAvailable only", map[string]string{"proc/meminfo": meminfo}, 0, 20 * gib},
		{"cgroup v2 at the root", map[string]string{"proc/meminfo": meminfo, "proc/self/cgroup": "0::/\n",
			"sys/fs/cgroup/memory.max": "4294967296\n", "sys/fs/cgroup/memory.current": "1073741824\n"}, 0, 3 * gib},
		{"cgroup v2 in its own cgroup", map[string]string{"proc/meminfo": meminfo, "proc/self/cgroup": "0::/job/7\n",
			"sys/fs/cgroup/job/7/memory.max": "2147483648\n", "sys/fs/cgroup/memory.max": "max\n"}, 0, 2 * gib},
		{"cgroup v2 without a limit", map[string]string{"proc/meminfo": meminfo, "proc/self/cgroup": "0::/\n",
			"sys/fs/cgroup/memory.max": "max\n"}, 0, 20 * gib},
		{"cgroup v1", map[string]string{"proc/meminfo": meminfo, "proc/self/cgroup": "4:memory:/docker/abc\n0::/\n",
			"sys/fs/cgroup/memory/docker/abc/memory.limit_in_bytes": "6442450944\n", "sys/fs/cgroup/memory/docker/abc/memory.usage_in_bytes": "1073741824\n"}, 0, 5 * gib},
		{"cgroup v1 unlimited", map[string]string{"proc/meminfo": meminfo, "proc/self/cgroup": "4:memory:/\n",
			"sys/fs/cgroup/memory/memory.limit_in_bytes": "9223372036854771712\n"}, 0, 20 * gib},
		{"cgroup limit reached", map[string]string{"proc/meminfo": meminfo, "proc/self/cgroup": "0::/\n",
			"sys/fs/cgroup/memory.max": "1073741824\n", "sys/fs/cgroup/memory.current": "1073741824\n"}, 0, 1},
		{"RLIMIT_AS", map[string]string{"proc/meminfo": meminfo, "proc/self/status": status}, uint64(9 * gib), 8 * gib},
		{"nothing readable", map[string]string{}, 0, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			root := t.TempDir()
			for name, content := range c.files {
				path := filepath.Join(root, name)
				if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			p := memoryProbe{root: root, rlimitAS: func() (uint64, bool) { return c.as, c.as > 0 }}
			if got := p.available(); got != c.want {
				t.Fatalf("available %d, want %d", got, c.want)
			}
		})
	}
}

// TestLogpsNaNWeightsNamed: `relupo logps` on a model with a NaN weight
// said "json: unsupported value: NaN"; the error must name the record and
// the model.
func TestLogpsNaNWeightsNamed(t *testing.T) {
	m, _, err := model.Load(filepath.Join("..", "model", "testdata", "arch", "llama-gqa-tied"))
	if err != nil {
		t.Fatal(err)
	}
	m.Params.Tensors()[1].Data[0] = float32(math.NaN())
	dir := filepath.Join(t.TempDir(), "nan-model")
	if err := m.Save(dir, safetensors.F32, 0); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "pairs.jsonl")
	if err := os.WriteFile(path, []byte(`{"prompt_input_ids": [1, 5], "chosen_input_ids": [7, 8], "rejected_input_ids": [9]}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	o := DefaultOptions()
	o.Model, o.Data = dir, []string{path}
	_, err = Logps(context.Background(), o, nil)
	if err == nil || !strings.Contains(err.Error(), "pairs.jsonl:1: model "+dir+" gives a non-finite log-prob") {
		t.Fatalf("got %v, want the record and the model named", err)
	}
}

// TestEmptyDataNamed: an empty training file is named in the error.
func TestEmptyDataNamed(t *testing.T) {
	empty := filepath.Join(t.TempDir(), "empty.jsonl")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	o := DefaultOptions()
	o.Model, o.Data, o.OutputDir = filepath.Join("..", "model", "testdata", "arch", "llama-gqa-tied"), []string{empty}, filepath.Join(t.TempDir(), "out")
	_, err := Setup(context.Background(), o, nil)
	if err == nil || !strings.Contains(err.Error(), "the training data has no pairs: "+empty+" is empty") {
		t.Fatalf("got %v, want the empty file named", err)
	}
}
