package kernels

import (
	"math/bits"
	"sync"
)

// This file holds the cache-blocked driver of the assembly micro-kernels
// (GotoBLAS/BLIS-style). One product C (+)= op(A)·op(B) of m×k by k×n:
//
//   - The kernels read A[i, l] at a[i·rsA + l·csA], which serves A (NT, NN)
//     and Aᵀ (TN) alike. A is read in place; Aᵀ, whose rows lie far apart,
//     is copied per block into panels of mr rows (path.packA). Packing A
//     too was measured: it did not speed the kernel up, and cost the copy.
//   - op(B) is packed into panels of nr columns, kc rows each, so that the
//     kernel streams a panel linearly from L1. If B is small (k·n ≤
//     prepackLimit) it is packed once for the whole product, by all workers;
//     otherwise each task packs its own columns, one kc-block at a time.
//     Products of few rows read a B that is not transposed in place
//     (inPlaceRows).
//   - C is cut into tasks of mT rows × nT columns that the pool's workers take
//     in turn. Within a task, for each kc-block: for each block of mc rows
//     (kept in L2), for each panel (in L1), for each mr rows: one kernel call.

// Block sizes (variables only so that benchmarks can tune them).
var (
	gemmKC = 192 // depth of a block: a 192×32 panel is 24 KiB, in L1 with A's rows
	gemmMC = 192 // rows of A per block, kept in L2 across panels
)

const (
	gemmMaxNT = 768 // widest task
	gemmMaxMT = 576 // tallest task
	gemmMinMT = 192 // shortest task that prepacked B is split into, if m allows: one block of gemmMC rows
)

// inPlaceRows is the most rows of A for which an untransposed B is read in
// place instead of packed: each element of B then serves at most
// inPlaceRows/mr kernel calls, too few to repay copying it (for the input
// gradient of a 64-token logits chunk, 64×512 by k = vocabulary, packing B
// was a fifth of the time). The kernel's loads of B step by the row length,
// a constant stride that Intel's L1 stride prefetcher follows only up to
// 2 KiB (inPlaceMaxLd floats): with 576 columns reading in place was 12%
// slower than packing. Panels narrower than nr are still packed: the kernel
// loads whole rows of nr columns.
var inPlaceRows = 96

const inPlaceMaxLd = 512

// prepackLimit is the most elements of B packed once for a whole product (a
// variable so that tests can reach the per-task packing).
var prepackLimit = 1 << 22

// transposeNT reports whether C = A·Bᵀ (A [m,k], B [n,k]) is better
// computed as Cᵀ = B·Aᵀ, reading B where it lies and packing only A: when B
// is too large to pack at once, A is not, and A has few rows against the
// depth (4m < k). Untransposed, every call packs all of B (n·k elements);
// transposed, it writes C through a transposition (m·n elements, at a
// stride of n). On the 135m logits (n 49152, k 576, AMD Zen 5) the
// untransposed product was 20% faster at m = 768 in float32 and 30% in
// bfloat16, and the transposed one 15-60% faster at m = 32-64; at k 2048
// the transposed one still led at m = 256.
func transposeNT(m, n, k int) bool {
	return n*k > prepackLimit && m*k <= prepackLimit && 4*m < k
}

// gemmPath is one set of micro-kernels: kernel computes C[rows×cols] +=
// op(A)[rows×kc]·Bp[kc×cols] (rows ≤ mr, cols ≤ nr) with byte strides (with
// store, C = the product: C is neither read nor needs clearing), and the
// pack functions write a kc×nr panel from B's rows (packN, op(B)[l, j] =
// src[l·ld + j]) or from Bᵀ's rows (packT, op(B)[l, j] = src[j·ld + l]),
// zero-filling columns past cols (or leaving them alone: the kernel never
// stores the columns past cols).
type gemmPath struct {
	name   string
	mr, nr int
	kernel func(rows int, a *float32, rsA, csA int, b *float32, ldb int, c *float32, ldc int, kc, cols int, store bool)
	packN  func(dst, src []float32, ld, kc, cols int)
	packT  func(dst, src []float32, ld, kc, cols int)
	// packA copies rows [0, rows) of op(A) = Aᵀ, steps [0, kc), from
	// src[l·ld + i] into panels of mr rows (see the Go version, packA).
	packA func(dst, src []float32, ld, kc, rows int)
	// transpose sets dst[j·ldd + i] = src[i·lds + j] for i < rows, j < cols.
	transpose func(dst, src []float32, ldd, lds, rows, cols int)

	// The bfloat16 kernels (nil where the CPU has no AVX512_BF16): blockBF
	// computes C[rows×cols] (+)= A·Bp for a packed block of A (bfRows(kc)
	// words a row, zero rows up to a multiple of 32) and a packed panel of
	// nr = 32 columns (bf16.go); the pack functions write those from op(B)
	// and op(A). bfKernel names blockBF ("amx" or "vdpbf16ps"); bfReady, if
	// not nil, must report true before it runs (amxEnable); bfKC is the
	// depth of a block of k for it (0: 4·gemmKC).
	blockBF          func(a []float32, kc, rows int, bp *float32, c []float32, ldc, cols int, store bool)
	packNBF, packTBF func(dst, src []float32, ld, kc, cols int)
	packABF          func(dst, src []float32, rsA, csA, kc, rows int)
	bfKernel         string
	bfReady          func() bool
	bfKC             int

	// The packers of operands given as bfloat16 bits (bf16h.go), with the
	// layouts and contracts of the ones above: packNH and packTH widen a
	// panel of B to float32 as packN and packT copy one; packNBFH,
	// packTBFH and packABFH (a row-major A, row i at src[i·ld:]) move the
	// bits into the pair layouts of packNBF, packTBF and packABF. widen
	// widens a row. Each may be nil: the portable versions are used.
	packNH, packTH     func(dst []float32, src []uint16, ld, kc, cols int)
	packNBFH, packTBFH func(dst []float32, src []uint16, ld, kc, cols int)
	packABFH           func(dst []float32, src []uint16, ld, kc, rows int)
	widen              func(dst []float32, src []uint16)
}

// gemmArgs describes C (+)= op(A)·op(B) for the blocked driver.
type gemmArgs struct {
	c        []float32
	ldc      int
	a        []float32
	rsA, csA int // op(A)[i, l] = a[i·rsA + l·csA]
	b        []float32
	ldb      int  // op(B)[l, j] = b[l·ldb + j], or b[j·ldb + l] if bT
	bT       bool // B is stored transposed ([n, k])
	m, n, k  int
	// overwrite sets C = product (+ bias) instead of accumulating.
	overwrite bool
	bias      []float32 // with overwrite: bias[j] (bias[i] if transC), or nil
	// transC stores element (i, j) of the product at c[j·ldc + i]; it
	// requires overwrite.
	transC bool
	// inPlaceB reads full panels of B (not transposed) where they lie.
	inPlaceB bool
	// bf16 runs the product on the path's bfloat16 block kernel, with A and
	// B packed as rounded pairs along k (bf16.go).
	bf16 bool
	// packedB, if not nil, is op(B) already packed as run would pack it
	// for the whole product (panel q at q·panelRows(k)·nr), or for a wider
	// one, or a deeper one of packedK ≥ k steps (panel q at
	// q·panelRows(packedK)·nr, of which the product reads its first k
	// steps): run then reads it instead of packing B. A bfloat16 product
	// reads a deeper packing's steps up to k rounded up to 32, which A's
	// zero padding cancels; they must be finite.
	packedB []float32
	packedK int
	// b16 holds B as bfloat16 bits instead of b (MatMulNTH, MatMulNNH):
	// the packers widen it, or move the bits into the bfloat16 panels.
	// a16 holds a row-major A as bfloat16 bits instead of a (csA = 1; the
	// weight of MatMulNTH's transposed evaluation): the tasks widen it a
	// block at a time, or pack it as bfloat16.
	a16, b16 []uint16
}

// packedRows is the number of rows of a panel of B packed for the whole
// product: by run, for k steps, or packedB, for packedK if deeper.
func (g *gemmArgs) packedRows() int {
	if g.packedB == nil {
		return g.panelRows(g.k)
	}
	return g.panelRows(max(g.k, g.packedK))
}

// panelRows is the number of rows a packed panel of B has for kc steps of k.
func (g *gemmArgs) panelRows(kc int) int {
	if g.bf16 {
		return bfRows(kc)
	}
	return kc
}

// rowAlign is the multiple of rows that tasks are cut at: the micro-kernel's
// rows, or the bfloat16 kernel's 32.
func (g *gemmArgs) rowAlign(path *gemmPath) int {
	if g.bf16 {
		return 32
	}
	return path.mr
}

// bufPools[c] holds scratch buffers of capacity 2^c. Keeping each size
// class apart lets a request reuse a buffer of its own class: one pool for
// all sizes would hand small buffers to large requests, which then drop
// them and allocate, so a training step made ~15-30 MB of garbage.
var bufPools [48]sync.Pool

// getBuf returns a scratch buffer of length n (with arbitrary contents);
// give it back with putBuf.
func getBuf(n int) *[]float32 {
	c := bits.Len(uint(max(n, 1) - 1))
	if v, ok := bufPools[c].Get().(*[]float32); ok {
		*v = (*v)[:n]
		return v
	}
	s := make([]float32, n, 1<<c)
	return &s
}

func putBuf(b *[]float32) { bufPools[bits.Len(uint(cap(*b)-1))].Put(b) }

// packPanel packs columns [j0, j0+nr) ∩ [0, n) of op(B), rows [l0, l0+kc),
// into dst.
func (g *gemmArgs) packPanel(path *gemmPath, dst []float32, j0, l0, kc int) {
	cols := min(path.nr, g.n-j0)
	if g.b16 != nil {
		packT, packN := path.packTHOrGo(), path.packNHOrGo()
		if g.bf16 {
			packT, packN = path.packTBFHOrGo(), path.packNBFHOrGo()
		}
		if g.bT {
			packT(dst, g.b16[j0*g.ldb+l0:], g.ldb, kc, cols)
		} else {
			packN(dst, g.b16[l0*g.ldb+j0:], g.ldb, kc, cols)
		}
		return
	}
	packT, packN := path.packT, path.packN
	if g.bf16 {
		packT, packN = path.packTBF, path.packNBF
	}
	if g.bT {
		packT(dst, g.b[j0*g.ldb+l0:], g.ldb, kc, cols)
	} else {
		packN(dst, g.b[l0*g.ldb+j0:], g.ldb, kc, cols)
	}
}

func roundUp(x, to int) int { return (x + to - 1) / to * to }

// packABlockBF packs rows [i0, i0+rows) and steps [l0, l0+kc) of op(A)
// for the bfloat16 kernel into dst, from A or from its bfloat16 bits.
func (g *gemmArgs) packABlockBF(path *gemmPath, dst []float32, l0, i0, kc, rows int) {
	if g.a16 != nil {
		path.packABFHOrGo()(dst, g.a16[l0+i0*g.rsA:], g.rsA, kc, rows)
		return
	}
	path.packABF(dst, g.a[l0*g.csA+i0*g.rsA:], g.rsA, g.csA, kc, rows)
}

// The path's packers of bfloat16 bits, or the portable ones.

func (p *gemmPath) packNHOrGo() func(dst []float32, src []uint16, ld, kc, cols int) {
	if p.packNH != nil {
		return p.packNH
	}
	return packNHGo
}

func (p *gemmPath) packTHOrGo() func(dst []float32, src []uint16, ld, kc, cols int) {
	if p.packTH != nil {
		return p.packTH
	}
	return packTHGo
}

func (p *gemmPath) packNBFHOrGo() func(dst []float32, src []uint16, ld, kc, cols int) {
	if p.packNBFH != nil {
		return p.packNBFH
	}
	return packNBFHGo
}

func (p *gemmPath) packTBFHOrGo() func(dst []float32, src []uint16, ld, kc, cols int) {
	if p.packTBFH != nil {
		return p.packTBFH
	}
	return packTBFHGo
}

func (p *gemmPath) packABFHOrGo() func(dst []float32, src []uint16, ld, kc, rows int) {
	if p.packABFH != nil {
		return p.packABFH
	}
	return packABFHGo
}

func (g *gemmArgs) run(p *Pool, path *gemmPath) {
	m, n, k := g.m, g.n, g.k
	if m == 0 || n == 0 {
		return
	}
	if g.splitK(p, path) {
		return
	}
	mr, nr := g.rowAlign(path), path.nr
	nPan := (n + nr - 1) / nr
	kq := g.packedRows() // rows of a whole packed panel
	var packed []float32
	g.inPlaceB = !g.bT && !g.bf16 && m <= inPlaceRows && g.ldb <= inPlaceMaxLd && g.packedB == nil && g.b16 == nil
	if g.packedB != nil && k > 0 {
		_ = g.packedB[nPan*kq*nr-1]
		packed = g.packedB
	} else if k*n <= prepackLimit && k > 0 && !g.inPlaceB {
		pb := getBuf(nPan * kq * nr)
		defer putBuf(pb)
		packed = *pb
		p.For(nPan, func(q int) {
			g.packPanel(path, packed[q*kq*nr:(q+1)*kq*nr], q*nr, 0, k)
		})
	}
	w := p.Workers()
	want := 3 * w // tasks, so that a slow worker does not hold up the rest
	if w == 1 {
		want = 1
	}
	var mT, nT int
	if packed != nil {
		// Equal widths: a narrow last task would redo the packing of Aᵀ
		// (MatMulTNAcc) and reuse each block of A less.
		// A task of few rows reuses each panel of B for few kernel calls
		// and streams all of B (2.4 MiB for 135m/kv/dW, more than L2)
		// through the cache: keep at least gemmMinMT rows and cut the
		// columns instead.
		nTasks := (n + gemmMaxNT - 1) / gemmMaxNT
		mTasks := max(1, min((want+nTasks-1)/nTasks, m/gemmMinMT))
		nTasks = max(nTasks, min(nPan, (want+mTasks-1)/mTasks))
		nT = roundUp((n+nTasks-1)/nTasks, nr)
		mT = roundUp((m+mTasks-1)/mTasks, mr)
	} else {
		// Each task packs its own columns of B: give it all the rows it can
		// use, so that B is packed as few times as possible.
		nT = max(nr, roundUp((n+want-1)/want, nr))
		nT = min(nT, gemmMaxNT)
		nTasks := (n + nT - 1) / nT
		mTasks := max(1, (want+nTasks-1)/nTasks)
		mT = roundUp((m+mTasks-1)/mTasks, mr)
	}
	maxMT := gemmMaxMT
	if g.transC {
		maxMT = 256 // the task's transposed tile stays in L2
	}
	mT = min(mT, roundUp(maxMT, mr))
	mTasks, nTasks := (m+mT-1)/mT, (n+nT-1)/nT
	var packedA []float32
	if g.bf16 && nTasks > 1 && k > 0 {
		// Every task of a row range would convert the same rows of A to
		// bfloat16 (a tenth of a bf16 training step's time): convert A
		// once, by all workers, as B is above.
		pa := getBuf(g.bfPackedALen(path))
		defer putBuf(pa)
		packedA = *pa
		kcMax, mBlocks := g.kcMax(path), (m+gemmMC-1)/gemmMC
		p.For((k+kcMax-1)/kcMax*mBlocks, func(t int) {
			l0, i0 := t/mBlocks*kcMax, t%mBlocks*gemmMC
			g.packABlockBF(path, packedA[g.bfPackedAOffset(path, l0, i0):], l0, i0,
				min(kcMax, k-l0), min(gemmMC, m-i0))
		})
	}
	p.For(mTasks*nTasks, func(t int) {
		i0, j0 := (t/nTasks)*mT, (t%nTasks)*nT
		g.task(path, packed, packedA, i0, min(i0+mT, m), j0, min(j0+nT, n))
	})
}

// kcMax is the depth of a block: gemmKC steps, or for bfloat16 the path's
// bfKC (a multiple of 32), by default four times gemmKC. The tile kernel
// loads and stores its 32×32 block of C once per block of depth: with
// blocks of 768 steps instead of 384, a training step's products ran 11–22%
// faster (1536: no faster than 768). The VDPBF16PS kernel keeps its panel
// of B in L1 instead (bfKCDP).
func (g *gemmArgs) kcMax(path *gemmPath) int {
	if g.bf16 {
		if path.bfKC > 0 {
			return path.bfKC
		}
		return 4 * gemmKC
	}
	return gemmKC
}

// bfPackedALen is the length of all of A packed for the bfloat16 kernel: for
// each block of kcMax steps, roundUp(m, 32) rows of bfRows(kc) words (the
// layout of path.packABF, one block of rows after the other).
func (g *gemmArgs) bfPackedALen(path *gemmPath) int {
	kcMax := g.kcMax(path)
	full := g.k / kcMax
	n := full * bfRows(kcMax)
	if r := g.k - full*kcMax; r > 0 {
		n += bfRows(r)
	}
	return roundUp(g.m, 32) * n
}

// bfPackedAOffset is where row i0 of the block at step l0 (a multiple of
// kcMax) starts in A packed by run for the bfloat16 kernel.
func (g *gemmArgs) bfPackedAOffset(path *gemmPath, l0, i0 int) int {
	kcMax := g.kcMax(path)
	return l0/kcMax*roundUp(g.m, 32)*bfRows(kcMax) + i0*bfRows(min(kcMax, g.k-l0))
}

// splitK runs a deep product with a small C (the input gradient of a logits
// chunk: 64 rows, k = vocabulary) as several products over ranges of k, each
// into its own copy of C, and then sums the copies into C. Cutting m or n
// instead would re-read the large A once per task.
func (g *gemmArgs) splitK(p *Pool, path *gemmPath) bool {
	w := p.Workers()
	if w == 1 || g.overwrite || g.transC || g.packedB != nil || g.m*g.n > 1<<17 || g.k < 8*gemmKC {
		return false
	}
	parts := min(2*w, g.k/(4*gemmKC))
	step := roundUp((g.k+parts-1)/parts, gemmKC)
	parts = (g.k + step - 1) / step
	m, n := g.m, g.n
	bufs := getBuf((parts - 1) * m * n)
	defer putBuf(bufs)
	clear(*bufs)
	p.For(parts, func(s int) {
		l0 := s * step
		sub := *g
		sub.k = min(step, g.k-l0)
		if g.a16 != nil {
			sub.a16 = g.a16[l0*g.csA:]
		} else {
			sub.a = g.a[l0*g.csA:]
		}
		switch {
		case g.b16 != nil && g.bT:
			sub.b16 = g.b16[l0:]
		case g.b16 != nil:
			sub.b16 = g.b16[l0*g.ldb:]
		case g.bT:
			sub.b = g.b[l0:]
		default:
			sub.b = g.b[l0*g.ldb:]
		}
		if s > 0 {
			sub.c, sub.ldc = (*bufs)[(s-1)*m*n:s*m*n], n
		}
		sub.run(nil, path)
	})
	p.ForRange(m, 8, func(lo, hi int) {
		for s := 1; s < parts; s++ {
			part := (*bufs)[(s-1)*m*n:]
			for i := lo; i < hi; i++ {
				c, src := g.c[i*g.ldc:i*g.ldc+n], part[i*n:i*n+n]
				for j := range c {
					c[j] += src[j]
				}
			}
		}
	})
	return true
}

// task computes rows [i0, i1) and columns [j0, j1) of C. packedA is A
// packed for the bfloat16 kernel by run, or nil for the task to pack its own
// blocks of A.
func (g *gemmArgs) task(path *gemmPath, packed, packedA []float32, i0, i1, j0, j1 int) {
	mr, nr, k := path.mr, path.nr, g.k
	kcMax := g.kcMax(path) // steps of k per block
	c, ldc, ci0, cj0 := g.c, g.ldc, 0, 0
	// The first block of k stores its product instead of adding it to C
	// when C is overwritten without a bias (with k = 0 there is no block).
	store := g.overwrite && g.bias == nil && k > 0
	var tb *[]float32
	if g.transC {
		// Accumulate into a tile and transpose it into C at the end.
		tb = getBuf((i1 - i0) * (j1 - j0))
		defer putBuf(tb)
		c, ldc, ci0, cj0 = *tb, j1-j0, i0, j0
		if !store {
			clear(c)
		}
	} else if g.overwrite && !store {
		for i := i0; i < i1; i++ {
			row := c[i*ldc+j0 : i*ldc+j1]
			if g.bias != nil {
				copy(row, g.bias[j0:j1])
			} else {
				clear(row)
			}
		}
	}
	var own []float32
	if packed == nil && k > 0 {
		ob := getBuf((j1 - j0 + nr - 1) / nr * nr * g.panelRows(min(k, kcMax)))
		defer putBuf(ob)
		own = *ob
	}
	var ap *[]float32
	if g.bf16 && k > 0 && packedA == nil {
		ap = getBuf(roundUp(gemmMC, 32) * bfRows(min(k, kcMax)))
		defer putBuf(ap)
	} else if (g.a16 != nil || g.rsA == 1 && g.csA > 1) && k > 0 {
		ap = getBuf(roundUp(gemmMC, mr) * min(k, kcMax))
		defer putBuf(ap)
	}
	kqAll := g.packedRows() // rows of a panel of packed
	for l0 := 0; l0 < k; l0 += kcMax {
		kc := min(kcMax, k-l0)
		kq := g.panelRows(kc) // rows of this block's panels
		if own != nil {
			for j, q := j0, 0; j < j1; j, q = j+nr, q+1 {
				if !g.inPlaceB || j1-j < nr {
					g.packPanel(path, own[q*kq*nr:(q+1)*kq*nr], j, l0, kc)
				}
			}
		}
		for ic := i0; ic < i1; ic += gemmMC {
			ie := min(ic+gemmMC, i1)
			var a []float32
			rsA, csA, ai0 := g.rsA, g.csA, 0
			if g.a16 == nil {
				a = g.a[l0*g.csA:]
			}
			var abf []float32 // the bfloat16 block of A
			switch {
			case g.bf16:
				if packedA != nil {
					abf = packedA[g.bfPackedAOffset(path, l0, ic):]
				} else {
					abf = *ap
					g.packABlockBF(path, abf, l0, ic, kc, ie-ic)
				}
			case g.a16 != nil:
				// Widen the block's rows of A, row-major, kc a row: the
				// kernel reads it as the float32 A (same values, same
				// order of the sums).
				a, rsA, csA, ai0 = *ap, kc, 1, ic
				widen := widenFor(path)
				for i := ic; i < ie; i++ {
					widen(a[(i-ic)*kc:(i-ic+1)*kc], g.a16[i*g.rsA+l0:i*g.rsA+l0+kc])
				}
			case ap != nil:
				// Aᵀ's rows lie far apart: copy the block into panels of mr
				// rows, [l][mr], so that the kernel reads it linearly.
				a, rsA, csA, ai0 = *ap, 1, mr, ic
				path.packA(a, g.a[l0*g.csA+ic:], g.csA, kc, ie-ic)
			}
			for j, q := j0, 0; j < j1; j, q = j+nr, q+1 {
				cols := min(nr, j1-j)
				var bp *float32
				ldb := nr
				switch {
				case g.inPlaceB && cols == nr:
					bp, ldb = &g.b[l0*g.ldb+j], g.ldb
				case own != nil:
					bp = &own[q*kq*nr]
				default:
					bp = &packed[(j/nr)*kqAll*nr+g.panelRows(l0)*nr]
				}
				if g.bf16 {
					path.blockBF(abf, kc, ie-ic, bp, c[(ic-ci0)*ldc+j-cj0:], ldc, cols, store && l0 == 0)
					continue
				}
				for i := ic; i < ie; i += mr {
					ao := i * rsA
					if ap != nil {
						ao = (i - ai0) * kc
					}
					path.kernel(min(mr, ie-i), &a[ao], 4*rsA, 4*csA,
						bp, 4*ldb, &c[(i-ci0)*ldc+j-cj0], 4*ldc, kc, cols, store && l0 == 0)
				}
			}
		}
	}
	if g.transC {
		// transC is only used to overwrite: C = tileᵀ (+ bias).
		t, w := *tb, j1-j0
		if g.bias != nil {
			for i := i0; i < i1; i++ {
				row, b := t[(i-i0)*w:(i-i0+1)*w], g.bias[i]
				for j := range row {
					row[j] += b
				}
			}
		}
		path.transpose(g.c[j0*g.ldc+i0:], t, g.ldc, w, i1-i0, w)
	}
}

// packNGo and packTGo are the portable panel packers (any nr = len(dst)/kc).
func packNGo(dst, src []float32, ld, kc, cols int) {
	nr := len(dst) / kc
	for l := 0; l < kc; l++ {
		d := dst[l*nr : l*nr+nr]
		copy(d, src[l*ld:l*ld+cols])
		clear(d[cols:])
	}
}

func packTGo(dst, src []float32, ld, kc, cols int) {
	nr := len(dst) / kc
	if cols < nr {
		clear(dst)
	}
	for j := 0; j < cols; j++ {
		s := src[j*ld : j*ld+kc]
		for l, v := range s {
			dst[l*nr+j] = v
		}
	}
}

// packA copies rows [0, rows) of op(A) = Aᵀ, steps [0, kc), into panels of mr
// rows: dst[(i/mr)·kc·mr + l·mr + i%mr] = src[l·ld + i].
func packA(dst, src []float32, ld, kc, rows, mr int) {
	for p0 := 0; p0 < rows; p0 += mr {
		d := dst[p0*kc : p0*kc+kc*mr]
		r := min(mr, rows-p0)
		if r == 12 && mr == 12 {
			for l := 0; l < kc; l++ {
				*(*[12]float32)(d[l*12:]) = *(*[12]float32)(src[l*ld+p0:])
			}
			continue
		}
		for l := 0; l < kc; l++ {
			copy(d[l*mr:l*mr+r], src[l*ld+p0:l*ld+p0+r])
		}
	}
}

func transposeGo(dst, src []float32, ldd, lds, rows, cols int) {
	for j := 0; j < cols; j++ {
		d := dst[j*ldd : j*ldd+rows]
		for i := range d {
			d[i] = src[i*lds+j]
		}
	}
}
