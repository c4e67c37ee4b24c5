package train

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/relupo/relupo/data"
	"github.com/relupo/relupo/model"
)

// availableMemory is what this process may still allocate, in bytes: the
// least of the machine's MemAvailable, what its cgroup's memory limit
// leaves (memory.max under cgroup v2, memory.limit_in_bytes under v1, less
// the usage) and what RLIMIT_AS leaves of the address space. 0 when none
// can be known (then no pre-flight refusal is made).
func availableMemory() int64 {
	return memoryProbe{root: "/", rlimitAS: rlimitAS}.available()
}

// memoryProbe reads the memory limits under root (the file system root;
// a test's folder in tests).
type memoryProbe struct {
	root string
	// rlimitAS returns RLIMIT_AS's soft limit (ok false: none).
	rlimitAS func() (limit uint64, ok bool)
}

func (p memoryProbe) path(parts ...string) string {
	return filepath.Join(append([]string{p.root}, parts...)...)
}

func (p memoryProbe) available() int64 {
	var avail int64
	least := func(n int64) {
		if n > 0 && (avail == 0 || n < avail) {
			avail = n
		}
		if n <= 0 && n != unknown {
			avail = 1 // a limit already reached
		}
	}
	least(p.memAvailable())
	least(p.cgroupLeft())
	if p.rlimitAS != nil {
		if lim, ok := p.rlimitAS(); ok && lim < 1<<62 {
			if vm := p.statusBytes("VmSize:"); vm != unknown {
				least(int64(lim) - vm)
			}
		}
	}
	return avail
}

// unknown marks a figure that could not be read.
const unknown = -1 << 63

// memAvailable reads MemAvailable from /proc/meminfo.
func (p memoryProbe) memAvailable() int64 {
	return p.kbField(p.path("proc", "meminfo"), "MemAvailable:")
}

// statusBytes reads a field such as VmSize from /proc/self/status.
func (p memoryProbe) statusBytes(field string) int64 {
	return p.kbField(p.path("proc", "self", "status"), field)
}

// kbField reads a "Name:   N kB" line of a /proc file, in bytes.
func (p memoryProbe) kbField(path, field string) int64 {
	f, err := os.Open(path)
	if err != nil {
		return unknown
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), field); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err == nil {
				return kb * 1024
			}
		}
	}
	return unknown
}

// cgroupLeft is the process's cgroup memory limit less its usage: cgroup
// v2's memory.max and memory.current, or v1's memory.limit_in_bytes and
// memory.usage_in_bytes, in the process's own cgroup (from
// /proc/self/cgroup) or, inside a container's cgroup namespace, at the
// hierarchy's root.
func (p memoryProbe) cgroupLeft() int64 {
	b, _ := os.ReadFile(p.path("proc", "self", "cgroup"))
	var v2, v1 []string // candidate folders, most specific first
	for _, line := range strings.Split(string(b), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		switch {
		case parts[0] == "0" && parts[1] == "":
			v2 = append(v2, p.path("sys", "fs", "cgroup", parts[2]))
		case slices.Contains(strings.Split(parts[1], ","), "memory"):
			v1 = append(v1, p.path("sys", "fs", "cgroup", "memory", parts[2]))
		}
	}
	v2 = append(v2, p.path("sys", "fs", "cgroup"))
	v1 = append(v1, p.path("sys", "fs", "cgroup", "memory"))
	for _, dir := range v2 {
		if limit := readBytes(filepath.Join(dir, "memory.max")); limit != unknown {
			return limit - max(readBytes(filepath.Join(dir, "memory.current")), 0)
		}
	}
	for _, dir := range v1 {
		if limit := readBytes(filepath.Join(dir, "memory.limit_in_bytes")); limit != unknown {
			if limit >= 1<<62 { // v1's "no limit" is a page-rounded 2^63−1
				return unknown
			}
			return limit - max(readBytes(filepath.Join(dir, "memory.usage_in_bytes")), 0)
		}
	}
	return unknown
}

// readBytes reads a cgroup file holding a byte count; "max" (no limit) and
// a missing file are unknown.
func readBytes(path string) int64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return unknown
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return unknown
	}
	return n
}

// maxMicroTokens bounds the tokens of one micro-batch: the batch's longest
// pairs, each counted as prompt + chosen and prompt + rejected.
func maxMicroTokens(exs []data.Example, batch int) int {
	sizes := make([]int, len(exs))
	for i, e := range exs {
		sizes[i] = 2*len(e.Prompt) + len(e.Chosen) + len(e.Rejected)
	}
	sort.Sort(sort.Reverse(sort.IntSlice(sizes)))
	total := 0
	for _, s := range sizes[:min(batch, len(sizes))] {
		total += s
	}
	return total
}

// preflight refuses a run whose estimated peak memory exceeds what the
// machine has available, unless force is set.
func (t *Trainer) preflight(available int64) error {
	need, tokens, evalTokens := t.memoryNeed()
	if available <= 0 || need <= available || t.Config.Compute.Force {
		return nil
	}
	hint := "; --use-peft (LoRA on a frozen base) and --gradient-checkpointing need much less"
	if t.Policy.LoRA != nil {
		hint = ""
		if !t.Config.Compute.Checkpoint {
			hint = "; --gradient-checkpointing needs less"
		}
	}
	return fmt.Errorf("memory pre-flight: this run needs about %.1f GB (weights, gradients, AdamW moments and activations for training micro-batches of up to %d tokens and evaluation batches of up to %d, and the garbage collector's headroom) but %.1f GB is available (the least of the machine's available memory, the cgroup's memory limit and RLIMIT_AS); lower --per-device-train-batch-size, --per-device-eval-batch-size or --max-length%s, or pass --force to try anyway",
		float64(need)/1e9, tokens, evalTokens, float64(available)/1e9, hint)
}

// memoryNeed estimates the run's peak memory in bytes, with the longest
// training and evaluation micro-batches in tokens.
func (t *Trainer) memoryNeed() (need int64, tokens, evalTokens int) {
	c := t.Policy.Config
	tokens = maxMicroTokens(t.Train, t.Config.Loop.BatchSize)
	evalTokens = maxMicroTokens(t.Eval, t.Config.Loop.EvalBatchSize)
	// The run as it will hold memory: LoRA adapters (only they have
	// gradients and AdamW moments), gradient checkpointing, and a frozen
	// base held as bfloat16.
	mo := model.MemoryOptions{Training: true, Checkpoint: t.Config.Compute.Checkpoint, FrozenBF16: t.Policy.Params.Frozen}
	if a := t.Policy.LoRA; a != nil {
		lc := a.Config
		mo.LoRA = &lc
	}
	need = c.MemoryEstimateFor(tokens, mo)
	// Evaluation needs no gradient (Workspace.NoGrad) and runs on the
	// training workspace: only the buffers its layers share grow to the
	// evaluation batch, next to everything training holds.
	fo := mo
	fo.Training = false
	if extra := c.MemoryEstimateFor(evalTokens, fo) - c.MemoryEstimateFor(tokens, fo); extra > 0 {
		need += extra
	}
	// Between two collections the heap may grow by the collector's target
	// percentage (GOGC; the relupo command sets 20) of what it holds.
	if gc := gcPercent(); gc > 0 {
		need += need * int64(gc) / 100
	}
	return need, tokens, evalTokens
}

// gcPercent reports the garbage collector's target percentage (negative
// when collection is off).
func gcPercent() int {
	gc := debug.SetGCPercent(-1)
	debug.SetGCPercent(gc)
	return gc
}
