package kernels

import "math"

// This file holds the products whose weight operand is a matrix of bfloat16
// bit patterns ([]uint16): frozen 2-byte weights, used where they lie
// without a float32 copy. The bits are converted a panel at a time while the
// blocked driver packs them (gemm_blocked.go), so a product needs no more
// memory than its float32 counterpart:
//
//   - in the F32 precision each bfloat16 is widened to the float32 of the
//     same value (exact), and the product is MatMulNT / MatMulNN /
//     MatMulNNAcc on the widened matrix, bit for bit (the same kernels, the
//     same blocks of k, the same order of the sums);
//   - in the BF16 precision with bfloat16 kernels the bits go into the
//     packed bfloat16 operand as they are (they need no rounding); the
//     float32 operand is rounded as in every BF16 product. Without bfloat16
//     kernels the float32 operand is rounded and the weights widened, as
//     the emulated BF16 products do. Either way the result is that of the
//     float32 product on the widened matrix in the BF16 precision, bit for
//     bit, for every weight that is not a bfloat16 subnormal or NaN: the
//     bits are not rounded again, so a subnormal weight is not flushed to
//     zero while packing (the bfloat16 kernels, which treat subnormal
//     inputs as zero, flush it anyway) and a signalling NaN stays
//     signalling.

// WidenBF16 sets dst[i] to the float32 value of the bfloat16 bits src[i]
// for i < len(src): exact, since every bfloat16 is a float32 with the low 16
// bits of its significand zero. It panics if dst is shorter than src.
func WidenBF16(dst []float32, src []uint16) {
	if len(dst) < len(src) {
		panic("kernels: WidenBF16 destination is shorter than its source")
	}
	widenFor(gemmImpl)(dst[:len(src)], src)
}

// NarrowBF16 sets dst[i] to the bfloat16 bits of RoundBF16(src[i]) for
// i < len(src): round to nearest even, float32 subnormals to signed zero,
// NaNs kept NaN (as the CPU's VCVTNEPS2BF16 does, and as the BF16
// precision rounds its operands). It panics if dst is shorter than src.
func NarrowBF16(dst []uint16, src []float32) {
	if len(dst) < len(src) {
		panic("kernels: NarrowBF16 destination is shorter than its source")
	}
	if narrowFast(dst, src) {
		return
	}
	narrowBF16Go(dst[:len(src)], src)
}

func widenBF16Go(dst []float32, src []uint16) {
	dst = dst[:len(src)]
	for i, h := range src {
		dst[i] = math.Float32frombits(uint32(h) << 16)
	}
}

func narrowBF16Go(dst []uint16, src []float32) {
	dst = dst[:len(src)]
	for i, v := range src {
		dst[i] = bf16Bits(v)
	}
}

// widenFor returns the path's widening loop (the portable one for the
// generic path or a path without its own).
func widenFor(path *gemmPath) func(dst []float32, src []uint16) {
	if path != nil && path.widen != nil {
		return path.widen
	}
	return widenBF16Go
}

// MatMulNTH computes C = A·Bᵀ (+ bias) as MatMulNT does, with B [n, k] given
// as bfloat16 bits: the forward pass of a linear layer with a frozen 2-byte
// weight. A is [m, k], C is [m, n], bias is nil or [n]. See the top of
// bf16h.go for how each precision treats B.
func MatMulNTH(p *Pool, c, a []float32, b []uint16, bias []float32, m, n, k int) {
	if pr := p.Profile(); pr != nil {
		defer pr.Stop(pr.Start(), PartGEMM, gemmFlops(m, n, k))
	}
	checkLen("MatMulNTH C", c, m*n)
	checkLen("MatMulNTH A", a, m*k)
	checkLen16("MatMulNTH B", b, n*k)
	if bias != nil {
		checkLen("MatMulNTH bias", bias, n)
	}
	if m <= skinnyRows && vec512 {
		matMulNTSkinnyH(p, c, a, b, bias, m, n, k)
		return
	}
	var native bool
	if m > skinnyRows { // decoding stays float32 whatever the precision
		var release func()
		a, native, release = bf16OperandH(p, a)
		defer release()
	}
	if path := gemmImpl; path != nil {
		g := gemmArgs{c: c, ldc: n, a: a, rsA: k, csA: 1, b16: b, ldb: k, bT: true,
			m: m, n: n, k: k, overwrite: true, bias: bias, bf16: native}
		if transposeNT(m, n, k) {
			// As MatMulNT: Cᵀ = B·Aᵀ, with B in the place of A, which the
			// tasks widen (or pack as bfloat16) a block at a time.
			g = gemmArgs{c: c, ldc: n, a16: b, rsA: k, csA: 1, b: a, ldb: k, bT: true,
				m: n, n: m, k: k, overwrite: true, bias: bias, transC: true, bf16: native}
		}
		g.run(p, path)
		return
	}
	matMulNTGoH(p, c, a, b, bias, m, n, k)
}

// matMulNTGoH is matMulNTGo with each task's block of B widened first: the
// same blocks and sums, so the same result as on the widened B.
func matMulNTGoH(p *Pool, c, a []float32, b []uint16, bias []float32, m, n, k int) {
	jBlocks := (n + nbBlock - 1) / nbBlock
	iBlocks := (m + 63) / 64
	p.For(jBlocks*iBlocks, func(t int) {
		jb, ib := t%jBlocks, t/jBlocks
		j0, j1 := jb*nbBlock, min(jb*nbBlock+nbBlock, n)
		i0, i1 := ib*64, min(ib*64+64, m)
		wb := getBuf((j1 - j0) * k)
		defer putBuf(wb)
		widenBF16Go(*wb, b[j0*k:j1*k])
		var bs []float32
		if bias != nil {
			bs = bias[j0:]
		}
		// Column j of C is column j-j0 of the shifted C, bias and block.
		matMulNTBlock(c[j0:], a, *wb, bs, n, k, i0, i1, 0, j1-j0)
	})
}

// matMulNTSkinnyH is matMulNTSkinny with each row of B widened as it is
// read (dotHFast) or, where that kernel is missing, into a scratch row
// before its dot products: the same sums either way.
func matMulNTSkinnyH(p *Pool, c, a []float32, b []uint16, bias []float32, m, n, k int) {
	if vec512 && k >= 8 { // dotHFast's condition
		p.ForRange(n, 64, func(lo, hi int) {
			for j := lo; j < hi; j++ {
				bj := b[j*k : j*k+k]
				for i := 0; i < m; i++ {
					s, _ := dotHFast(a[i*k:i*k+k], bj)
					if bias != nil {
						s += bias[j]
					}
					c[i*n+j] = s
				}
			}
		})
		return
	}
	widen := widenFor(gemmImpl)
	p.ForRange(n, 64, func(lo, hi int) {
		rb := getBuf(k)
		defer putBuf(rb)
		bj := *rb
		for j := lo; j < hi; j++ {
			widen(bj, b[j*k:j*k+k])
			for i := 0; i < m; i++ {
				s := Dot(a[i*k:i*k+k], bj)
				if bias != nil {
					s += bias[j]
				}
				c[i*n+j] = s
			}
		}
	})
}

// MatMulNNAccH computes C += A·B as MatMulNNAcc does, with B [k, n] given as
// bfloat16 bits: the input gradient of a linear layer with a frozen 2-byte
// weight, dx += dy·W. A is [m, k], C is [m, n].
func MatMulNNAccH(p *Pool, c, a []float32, b []uint16, m, n, k int) {
	if pr := p.Profile(); pr != nil {
		defer pr.Stop(pr.Start(), PartGEMM, gemmFlops(m, n, k))
	}
	checkLen("MatMulNNAccH C", c, m*n)
	checkLen("MatMulNNAccH A", a, m*k)
	checkLen16("MatMulNNAccH B", b, k*n)
	matMulAccH(p, c, a, b, m, n, k, false)
}

// MatMulNNH computes C = A·B as MatMulNN does (C overwritten), with B [k, n]
// given as bfloat16 bits.
func MatMulNNH(p *Pool, c, a []float32, b []uint16, m, n, k int) {
	if pr := p.Profile(); pr != nil {
		defer pr.Stop(pr.Start(), PartGEMM, gemmFlops(m, n, k))
	}
	checkLen("MatMulNNH C", c, m*n)
	checkLen("MatMulNNH A", a, m*k)
	checkLen16("MatMulNNH B", b, k*n)
	matMulAccH(p, c, a, b, m, n, k, true)
}

// widenChunk is the most elements of B the portable products widen at a
// time (1 MiB of float32; a variable so that tests can reach the slabs).
var widenChunk = 1 << 18

func matMulAccH(p *Pool, c, a []float32, b []uint16, m, n, k int, overwrite bool) {
	a, native, release := bf16OperandH(p, a)
	defer release()
	if path := gemmImpl; path != nil {
		g := gemmArgs{c: c, ldc: n, a: a, rsA: k, csA: 1, b16: b, ldb: n, m: m, n: n, k: k,
			overwrite: overwrite, bf16: native}
		g.run(p, path)
		return
	}
	if overwrite {
		p.ForRange(len(c), 1<<14, func(lo, hi int) { clear(c[lo:hi]) })
	}
	if m == 0 || n == 0 || k == 0 {
		return
	}
	// Widen B a few rows at a time and accumulate each slab's product.
	// matMulAccGo sums each element in order of l in groups of four
	// aligned at multiples of four (its blocks of k are too), so slabs of
	// a multiple of four rows give the sums of the product on the widened
	// B, bit for bit.
	rows := max(4, widenChunk/n&^3)
	wb := getBuf(min(rows, k) * n)
	defer putBuf(wb)
	for l0 := 0; l0 < k; l0 += rows {
		l1 := min(l0+rows, k)
		w := (*wb)[:(l1-l0)*n]
		p.ForRange(len(w), 1<<14, func(lo, hi int) { widenBF16Go(w[lo:hi], b[l0*n+lo:l0*n+hi]) })
		matMulAccGo(p, c, a[l0:], k, 1, w, m, n, l1-l0)
	}
}

// bf16OperandH prepares the float32 operand of a product with a bfloat16 B
// under the pool's precision, as bf16Operands does for both operands: for
// BF16 with bfloat16 kernels it reports native; for BF16 without them it
// returns a copy of a rounded to bfloat16 (B needs no rounding).
func bf16OperandH(p *Pool, a []float32) (ra []float32, native bool, release func()) {
	if p.Precision() != BF16 {
		return a, false, func() {}
	}
	if NativeBF16() {
		return a, true, func() {}
	}
	ca := getBuf(len(a))
	roundBF16Slice(p, *ca, a)
	return *ca, false, func() { putBuf(ca) }
}

func checkLen16(what string, s []uint16, want int) {
	if len(s) < want {
		panic("kernels: " + what + " is shorter than its shape")
	}
}

// The portable packers of a bfloat16 B (and of the bfloat16 A of
// MatMulNTH's transposed evaluation), with the layouts of their float32
// counterparts: packNHGo and packTHGo widen as packNGo and packTGo copy;
// packNBFHGo, packTBFHGo and packABFHGo move the bits into the pair layouts
// of packNBFGo, packTBFGo and packABFGo (bf16.go).

func packNHGo(dst []float32, src []uint16, ld, kc, cols int) {
	nr := len(dst) / kc
	for l := 0; l < kc; l++ {
		d := dst[l*nr : l*nr+nr]
		widenBF16Go(d, src[l*ld:l*ld+cols])
		clear(d[cols:])
	}
}

func packTHGo(dst []float32, src []uint16, ld, kc, cols int) {
	nr := len(dst) / kc
	if cols < nr {
		clear(dst)
	}
	for j := 0; j < cols; j++ {
		for l, h := range src[j*ld : j*ld+kc] {
			dst[l*nr+j] = math.Float32frombits(uint32(h) << 16)
		}
	}
}

// pairH is the 32-bit word of a bfloat16 pair (lo in the low half).
func pairH(lo, hi uint16) float32 { return math.Float32frombits(uint32(lo) | uint32(hi)<<16) }

func packNBFHGo(dst []float32, src []uint16, ld, kc, cols int) {
	rows := bfRows(kc)
	nr := len(dst) / rows
	for s := 0; s < rows; s++ {
		d := dst[s*nr : s*nr+nr]
		switch {
		case 2*s+1 < kc:
			r0, r1 := src[2*s*ld:2*s*ld+cols], src[(2*s+1)*ld:(2*s+1)*ld+cols]
			for j, h := range r0 {
				d[j] = pairH(h, r1[j])
			}
		case 2*s < kc:
			for j, h := range src[2*s*ld : 2*s*ld+cols] {
				d[j] = pairH(h, 0)
			}
		default:
			clear(d[:cols])
		}
		clear(d[cols:])
	}
}

func packTBFHGo(dst []float32, src []uint16, ld, kc, cols int) {
	rows := bfRows(kc)
	nr := len(dst) / rows
	if cols < nr {
		clear(dst)
	}
	for j := 0; j < cols; j++ {
		packRowBFH(dst[j:], nr, rows, src[j*ld:j*ld+kc])
	}
}

// packRowBFH writes the pairs (row[2s], row[2s+1]) to dst[s·stride] for
// s < rows, zero past the end of row.
func packRowBFH(dst []float32, stride, rows int, row []uint16) {
	kc := len(row)
	s := 0
	for ; 2*s+1 < kc; s++ {
		dst[s*stride] = pairH(row[2*s], row[2*s+1])
	}
	if kc%2 == 1 {
		dst[s*stride] = pairH(row[kc-1], 0)
		s++
	}
	for ; s < rows; s++ {
		dst[s*stride] = 0
	}
}

// packABFHGo packs rows [0, rows) and steps [0, kc) of a row-major
// bfloat16 A (row i at src[i·ld:]) as packABFGo packs a float32 one with
// csA = 1, zeroing the rows up to the next multiple of 32.
func packABFHGo(dst []float32, src []uint16, ld, kc, rows int) {
	kq := bfRows(kc)
	clear(dst[rows*kq : roundUp(rows, 32)*kq])
	for i := 0; i < rows; i++ {
		packRowBFH(dst[i*kq:], 1, kq, src[i*ld:i*ld+kc])
	}
}
