package train

import (
	"bufio"
	"fmt"
	"os"
	"runtime/debug"
	"sort"
	"strconv"
	"strings"

	"github.com/relupo/relupo/data"
)

// availableMemory reads MemAvailable from /proc/meminfo, in bytes; 0 when
// it cannot be known (then no pre-flight refusal is made).
func availableMemory() int64 {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "MemAvailable:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err == nil {
				return kb * 1024
			}
		}
	}
	return 0
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
	c := t.Policy.Config
	tokens := maxMicroTokens(t.Train, t.Config.Loop.BatchSize)
	evalTokens := maxMicroTokens(t.Eval, t.Config.Loop.EvalBatchSize)
	need := c.MemoryEstimate(tokens, true)
	// Evaluation needs no gradient (Workspace.NoGrad) and runs on the
	// training workspace: only the buffers its layers share grow to the
	// evaluation batch, next to everything training holds.
	if extra := c.MemoryEstimate(evalTokens, false) - c.MemoryEstimate(tokens, false); extra > 0 {
		need += extra
	}
	// Between two collections the heap may grow by the collector's target
	// percentage (GOGC; the relupo command sets 20) of what it holds.
	if gc := gcPercent(); gc > 0 {
		need += need * int64(gc) / 100
	}
	if available <= 0 || need <= available || t.Config.Compute.Force {
		return nil
	}
	return fmt.Errorf("memory pre-flight: this run needs about %.1f GB (weights, gradients, AdamW moments and activations for training micro-batches of up to %d tokens and evaluation batches of up to %d, and the garbage collector's headroom) but %.1f GB is available; lower --per-device-train-batch-size, --per-device-eval-batch-size or --max-length, or pass --force to try anyway",
		float64(need)/1e9, tokens, evalTokens, float64(available)/1e9)
}

// gcPercent reports the garbage collector's target percentage (negative
// when collection is off).
func gcPercent() int {
	gc := debug.SetGCPercent(-1)
	debug.SetGCPercent(gc)
	return gc
}
