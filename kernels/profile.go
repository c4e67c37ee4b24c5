package kernels

import (
	"fmt"
	"runtime"
	"sync/atomic"
	"time"
)

// Part is a kind of work that a [Profile] times.
type Part int

const (
	// PartGEMM is the matrix products (MatMul*): 2·m·n·k operations each.
	PartGEMM Part = iota
	// PartAttention is AttentionForward(Blocked) and
	// AttentionBackward(Blocked): their products count 2·headDim
	// operations per visible (query, key) pair, head and product (two
	// forward; five backward: the scores again, dP, dV, dQ and dK); the
	// softmax in between is counted in time only.
	PartAttention
	// PartElementwise is the row and element kernels (RMSNorm, RoPE,
	// SwiGLU, GeGLU, Add) and every other parallel loop run on the pool
	// outside the calls above (the model's softmax over the logits, for
	// one): time only.
	PartElementwise
	// PartOptimizer is the optimizer's update, timed by the optimizer
	// itself (see optim.AdamW.Profile): time only.
	PartOptimizer
	// NumParts is the number of parts.
	NumParts
)

// String names the part: "gemm", "attention", "elementwise" or "optimizer".
func (p Part) String() string {
	switch p {
	case PartGEMM:
		return "gemm"
	case PartAttention:
		return "attention"
	case PartElementwise:
		return "elementwise"
	case PartOptimizer:
		return "optimizer"
	}
	return fmt.Sprintf("Part(%d)", int(p))
}

// Profile counts, per [Part], the wall-clock time of the calls that did
// that part's work and their floating-point operations: a training step's
// time split. A Pool carries one with SetProfile; its kernel calls then
// time themselves (a call made inside another timed call is part of the
// outer one's time, so nothing is counted twice). Without a profile the
// calls only test a nil pointer. Regions are begun and ended by one
// goroutine at a time (the pool's caller), as a Pool is used; the
// counters may be read at any time. A nil *Profile ignores everything.
type Profile struct {
	ns, flops [NumParts]atomic.Int64
	depth     atomic.Int32
}

// ProfileMark is the start of a region timed by [Profile.Start].
type ProfileMark struct {
	t     time.Time
	outer bool
}

// Start begins a region of work; pass the mark to Stop when it ends.
func (pr *Profile) Start() ProfileMark {
	if pr == nil {
		return ProfileMark{}
	}
	if pr.depth.Add(1) > 1 {
		return ProfileMark{}
	}
	return ProfileMark{t: time.Now(), outer: true}
}

// Stop ends the region begun at m, adding its time and flops to part's
// counts unless it ran inside another region.
func (pr *Profile) Stop(m ProfileMark, part Part, flops float64) {
	if pr == nil {
		return
	}
	pr.depth.Add(-1)
	if !m.outer {
		return
	}
	pr.Add(part, time.Since(m.t), flops)
}

// Add counts d and flops for part directly.
func (pr *Profile) Add(part Part, d time.Duration, flops float64) {
	if pr == nil || part < 0 || part >= NumParts {
		return
	}
	pr.ns[part].Add(int64(d))
	pr.flops[part].Add(int64(flops))
}

// Time returns the time counted for part.
func (pr *Profile) Time(part Part) time.Duration {
	if pr == nil {
		return 0
	}
	return time.Duration(pr.ns[part].Load())
}

// Flops returns the floating-point operations counted for part.
func (pr *Profile) Flops(part Part) float64 {
	if pr == nil {
		return 0
	}
	return float64(pr.flops[part].Load())
}

// Reset sets every count to zero.
func (pr *Profile) Reset() {
	if pr == nil {
		return
	}
	for i := range pr.ns {
		pr.ns[i].Store(0)
		pr.flops[i].Store(0)
	}
}

// SetProfile makes the pool's kernel calls count their time and work in pr
// (nil: stop counting). A nil Pool has no profile.
func (p *Pool) SetProfile(pr *Profile) {
	if p != nil {
		p.prof = pr
	}
}

// Profile returns the pool's profile (nil if none).
func (p *Pool) Profile() *Profile {
	if p == nil {
		return nil
	}
	return p.prof
}

// gemmFlops is the operation count of an m×n×k product.
func gemmFlops(m, n, k int) float64 { return 2 * float64(m) * float64(n) * float64(k) }

// attnFlops is the operation count of products products of attention over
// sh: 2·headDim per visible (query, key) pair, query head and product.
func attnFlops(sh AttnShape, products int) float64 {
	var pairs float64
	for s := 0; s+1 < len(sh.Offsets); s++ {
		_, np := sh.prefix(s)
		n := sh.Offsets[s+1] - sh.Offsets[s]
		if sh.Window <= 0 {
			pairs += float64(n)*float64(np) + float64(n)*float64(n+1)/2
			continue
		}
		for i := 0; i < n; i++ { // query at position np+i sees min(Window, np+i+1) keys
			pairs += float64(min(sh.Window, np+i+1))
		}
	}
	return pairs * float64(sh.Heads) * float64(2*sh.HeadDim*products)
}

// PeakGFLOPS measures the in-cache rate of the micro-kernel that the path
// in use runs for the precision's products on one core, in GFLOP/s: the
// 12×32 float32 kernel (or the portable loops' block), or the bfloat16
// kernel (VDPBF16PS or AMX) where BF16 runs natively. It takes the best of
// several short runs (about d in all), so that other work on a busy
// machine lowers it little. Multiply by the cores for the machine's peak.
func PeakGFLOPS(prec Precision, d time.Duration) float64 {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	path := gemmImpl
	var run func() float64 // one call, returning its flops
	switch {
	case prec == BF16 && path.nativeBF16():
		rows, kc := 12, path.bfKC
		if path.bfKernel == "amx" {
			rows = 32
		}
		if kc == 0 {
			kc = 4 * gemmKC
		}
		kq := bfRows(kc)
		a, bp, c := make([]float32, roundUp(rows, 32)*kq), make([]float32, kq*32), make([]float32, rows*32)
		run = func() float64 {
			path.blockBF(a, kc, rows, &bp[0], c, 32, 32, false)
			return gemmFlops(rows, 32, kc)
		}
	case path != nil:
		kc := gemmKC
		a, bp, c := make([]float32, path.mr*kc), make([]float32, kc*path.nr), make([]float32, path.mr*path.nr)
		run = func() float64 {
			path.kernel(path.mr, &a[0], 4*kc, 4, &bp[0], 4*path.nr, &c[0], 4*path.nr, kc, path.nr, false)
			return gemmFlops(path.mr, path.nr, kc)
		}
	default:
		const m, n, k = 16, 16, 256
		a, b, c := make([]float32, m*k), make([]float32, n*k), make([]float32, m*n)
		run = func() float64 {
			matMulNTBlock(c, a, b, nil, n, k, 0, m, 0, n)
			return gemmFlops(m, n, k)
		}
	}
	const trials = 10
	best := 0.0
	for range trials {
		var flops float64
		t0 := time.Now()
		for time.Since(t0) < d/trials {
			for range 64 {
				flops += run()
			}
		}
		best = max(best, flops/time.Since(t0).Seconds()/1e9)
	}
	return best
}
