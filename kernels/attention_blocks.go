package kernels

import "math"

// Attention on the micro-kernel paths, as small matrix products over blocks
// of queries (attnBlockRows; flash-attention style): for one sequence, head and
// block of queries t0..t1, the scores S = Q_blk·K[start:t1]ᵀ are computed
// with the blocked product, masked and turned into probabilities P row by
// row with the vector exp, and O = P·V. Only the block's rows of scores are
// ever held (a block × sequence length per worker). The arithmetic of each
// element is that of the row-by-row loops (float32 scores times scale, exp of
// the difference with the row maximum or lse, probabilities times 1/Σ);
// only the float32 summation order of the products and the exp differ.

// AttentionForwardBlocked and AttentionBackwardBlocked compute what
// AttentionForward and AttentionBackward do, with the block products on the
// micro-kernel paths (the row loops on the portable path), in about a
// quarter of the CPU time. The model uses them. Their float32 summation order
// differs from the row loops', which moves near-zero gradients by float32
// noise; the golden AdamW-step test accounts for how AdamW's first step,
// g/(|g| + ε), amplifies such noise (see train/multistep_test.go).
//
// In the BF16 precision, where the CPU has a native bfloat16 kernel (AMX-BF16
// or AVX512_BF16, see NativeBF16), their products run on it as PyTorch's
// bf16 autocast runs attention's:
// queries, keys, values, probabilities and their gradients rounded to
// bfloat16, the sums in float32; the softmax and its gradient stay float32.
// Elsewhere the BF16 precision's attention is float32.
func AttentionForwardBlocked(p *Pool, out, lse, q, k, v []float32, sh AttnShape) {
	if pr := p.Profile(); pr != nil {
		defer pr.Stop(pr.Start(), PartAttention, attnFlops(sh, 2))
	}
	if path := gemmImpl; path != nil {
		attentionForwardBlocks(p, path, attnBF16(p), out, lse, q, k, v, sh)
		return
	}
	AttentionForward(p, out, lse, q, k, v, sh)
}

// AttentionBackwardBlocked is AttentionBackward with block products; see
// AttentionForwardBlocked.
func AttentionBackwardBlocked(p *Pool, dq, dk, dv, dout, q, k, v, out, lse []float32, sh AttnShape) {
	if pr := p.Profile(); pr != nil {
		defer pr.Stop(pr.Start(), PartAttention, attnFlops(sh, 5))
	}
	if path := gemmImpl; path != nil {
		attentionBackwardBlocks(p, path, attnBF16(p), dq, dk, dv, dout, q, k, v, out, lse, sh)
		return
	}
	AttentionBackward(p, dq, dk, dv, dout, q, k, v, out, lse, sh)
}

// attnBF16 reports whether attention's products run on the bfloat16 kernel.
func attnBF16(p *Pool) bool { return p.Precision() == BF16 && NativeBF16() }

// attnBlockRows is the number of queries per block: a multiple of the
// float32 kernels' row counts (12 and 6), or of the bfloat16 kernel's 32.
func attnBlockRows(bf bool) int {
	if bf {
		return 64 // 96 and 128 measured the same
	}
	return 48
}

// attnProduct runs one serial product C (+)= op(A)·op(B) on the path.
func attnProduct(path *gemmPath, g gemmArgs) { g.run(nil, path) }

// seqOperand describes, as the B of a product, a sequence's keys or values
// x of key/value head kvh: Xᵀ [head size × tokens] (trans, for scores), or
// X [tokens × head size].
func seqOperand(x []float32, sh AttnShape, s, kvh int, bf, trans bool) gemmArgs {
	hd, KV := sh.HeadDim, sh.KVHeads
	lo, hi := sh.Offsets[s], sh.Offsets[s+1]
	g := gemmArgs{ldb: KV * hd, bT: trans, n: hd, k: hi - lo, bf16: bf}
	if x != nil { // nil: only the shape
		g.b = x[(lo*KV+kvh)*hd:]
	}
	if trans {
		g.n, g.k = hi-lo, hd
	}
	return g
}

// packedSeqsLen is the length of packSeqs' output for the sequences seqs.
func packedSeqsLen(path *gemmPath, sh AttnShape, seqs []int, bf, trans bool) int {
	n := 0
	for _, s := range seqs {
		g := seqOperand(nil, sh, s, 0, bf, trans)
		n += roundUp(g.n, path.nr) * g.panelRows(g.k)
	}
	return n
}

// packSeqs packs the keys or values x of key/value head kvh (seqOperand)
// for each sequence in seqs, one after the other in dst, as the kernel's
// panels of B (gemmArgs.packedB), and returns each sequence's packing. Every
// block of queries and every query head of a group then reads one packing
// of a sequence's keys (or values) instead of each packing its own; a block
// whose product is shallower than the sequence reads the first steps of
// each panel (gemmArgs.packedK).
func packSeqs(path *gemmPath, dst, x []float32, sh AttnShape, seqs []int, kvh int, bf, trans bool) [][]float32 {
	nr := path.nr
	out := make([][]float32, len(seqs))
	for j, s := range seqs {
		g := seqOperand(x, sh, s, kvh, bf, trans)
		rows := g.panelRows(g.k)
		size := roundUp(g.n, nr) * rows
		out[j], dst = dst[:size], dst[size:]
		for q := 0; q*nr < g.n; q++ {
			g.packPanel(path, out[j][q*rows*nr:(q+1)*rows*nr], q*nr, 0, g.k)
		}
	}
	return out
}

// packHeads packs the keys or values x of every sequence for each key/value
// head, by the pool's workers, into a scratch buffer: out[kvh][s] (see
// packSeqs). Give buf back with putBuf when done with out.
func packHeads(p *Pool, path *gemmPath, x []float32, sh AttnShape, bf, trans bool) (out [][][]float32, buf *[]float32) {
	seqs := make([]int, len(sh.Offsets)-1)
	for s := range seqs {
		seqs[s] = s
	}
	per := packedSeqsLen(path, sh, seqs, bf, trans)
	buf = getBuf(sh.KVHeads * per)
	out = make([][][]float32, sh.KVHeads)
	p.For(sh.KVHeads, func(kvh int) {
		out[kvh] = packSeqs(path, (*buf)[kvh*per:(kvh+1)*per], x, sh, seqs, kvh, bf, trans)
	})
	return out, buf
}

func attentionForwardBlocks(p *Pool, path *gemmPath, bf bool, out, lse, q, k, v []float32, sh AttnShape) {
	hd, H, KV := sh.HeadDim, sh.Heads, sh.KVHeads
	scale, sc := sh.scale(), sh.SoftCap
	g := sh.group()
	blk := attnBlockRows(bf)
	// Kᵀ of every sequence and key/value head, packed once: kt[kvh][s];
	// for the bfloat16 kernel V too (the float32 kernel reads it in place).
	kt, ktBuf := packHeads(p, path, k, sh, bf, true)
	defer putBuf(ktBuf)
	var vp [][][]float32
	if bf {
		var vBuf *[]float32
		vp, vBuf = packHeads(p, path, v, sh, bf, false)
		defer putBuf(vBuf)
	}
	type task struct{ s, h, t0, t1 int }
	var tasks []task
	for s := 0; s+1 < len(sh.Offsets); s++ {
		lo, hi := sh.Offsets[s], sh.Offsets[s+1]
		// Longest blocks first, so that the last tasks to run are short.
		for t := lo + (hi-lo-1)/blk*blk; t >= lo; t -= blk {
			for h := 0; h < H; h++ {
				tasks = append(tasks, task{s, h, t, min(t+blk, hi)})
			}
		}
	}
	p.For(len(tasks), func(i int) {
		tk := tasks[i]
		start := sh.Offsets[tk.s]
		pfx0, np := sh.prefix(tk.s)
		kvh := tk.h / g
		// Score columns: the prefix's keys first, then the sequence's own;
		// the block computes columns c0..nk (all of them without a window),
		// w per row: own keys from o0, at column ownCol of a row.
		nq, nown := tk.t1-tk.t0, tk.t1-start
		nk := np + nown
		c0 := blockCol0(sh, path.nr, np, np+tk.t0-start)
		w, o0 := nk-c0, max(c0-np, 0)
		ownCol := max(c0, np) - c0
		sb := getBuf(nq * w)
		defer putBuf(sb)
		S := *sb
		qBlk := q[(tk.t0*H+tk.h)*hd:]
		if c0 < np {
			attnProduct(path, gemmArgs{c: S, ldc: w,
				a: qBlk, rsA: H * hd, csA: 1,
				b: k[((pfx0+c0)*KV+kvh)*hd:], ldb: KV * hd, bT: true, packedB: packedCols(kt[kvh][sh.Prefix[tk.s]], path, bf, hd, c0),
				m: nq, n: np - c0, k: hd, overwrite: true, bf16: bf})
		}
		attnProduct(path, gemmArgs{c: S[ownCol:], ldc: w,
			a: qBlk, rsA: H * hd, csA: 1,
			b: k[((start+o0)*KV+kvh)*hd:], ldb: KV * hd, bT: true, packedB: packedCols(kt[kvh][tk.s], path, bf, hd, o0),
			m: nq, n: nown - o0, k: hd, overwrite: true, bf16: bf})
		for i := 0; i < nq; i++ {
			t := tk.t0 + i
			n := np + t - start + 1
			lo := sh.firstKey(n - 1)
			row := S[i*w : i*w+w]
			r := row[lo-c0 : n-c0]
			var mx float32
			var sum float64
			if sc > 0 {
				for j, x := range r {
					r[j] = softcap(x*scale, sc)
				}
				mx = maxOf(r)
				sum = expAffine(r, r, 1, mx, 1)
			} else {
				mx = maxOf(r) * scale // = max of the scaled scores: scale > 0
				sum = expAffine(r, r, scale, mx, 1)
			}
			scal(r, float32(1/sum))
			clear(row[:lo-c0])
			clear(row[n-c0:])
			lse[t*H+tk.h] = mx + float32(math.Log(sum))
		}
		o := out[(tk.t0*H+tk.h)*hd:]
		pv := gemmArgs{c: o, ldc: H * hd, rsA: w, csA: 1, ldb: KV * hd, m: nq, n: hd, overwrite: true, bf16: bf}
		if c0 < np {
			pv.a, pv.b, pv.k = S, v[((pfx0+c0)*KV+kvh)*hd:], np-c0
			if bf && c0 == 0 {
				pv.packedB = vp[kvh][sh.Prefix[tk.s]]
			}
			attnProduct(path, pv)
			pv.overwrite, pv.packedB = false, nil
		}
		pv.a, pv.b, pv.k = S[ownCol:], v[((start+o0)*KV+kvh)*hd:], nown-o0
		if bf && o0 == 0 {
			pv.packedB, pv.packedK = vp[kvh][tk.s], sh.Offsets[tk.s+1]-start
		}
		attnProduct(path, pv)
	})
}

// blockCol0 returns the first key column that a block of queries, the
// first at position pos, computes: the first column any of its queries sees
// (0 without a window), rounded down to a panel boundary of the keys it
// falls in (the prefix's, columns 0..np, or the sequence's own), so that
// their packing can be read from there (packedCols).
func blockCol0(sh AttnShape, nr, np, pos int) int {
	lo := sh.firstKey(pos)
	if lo < np {
		return lo / nr * nr
	}
	return np + (lo-np)/nr*nr
}

// packedCols returns the part of packSeqs' packing of Kᵀ or Vᵀ (depth rows
// each panel) that starts at column c, a multiple of path.nr.
func packedCols(packed []float32, path *gemmPath, bf bool, depth, c int) []float32 {
	if packed == nil || c == 0 {
		return packed
	}
	g := gemmArgs{bf16: bf}
	return packed[c/path.nr*g.panelRows(depth)*path.nr:]
}

func attentionBackwardBlocks(p *Pool, path *gemmPath, bf bool, dq, dk, dv, dout, q, k, v, out, lse []float32, sh AttnShape) {
	KV := sh.KVHeads
	g := sh.group()
	// One task per (group of sequences sharing rows, key/value head): no two
	// tasks write the same rows of dk or dv. Largest groups first.
	groups := sh.groups()
	size := func(gr []int) int {
		n := 0
		for _, s := range gr {
			n += sh.Offsets[s+1] - sh.Offsets[s]
		}
		return n
	}
	for i := 1; i < len(groups); i++ {
		for j := i; j > 0 && size(groups[j]) > size(groups[j-1]); j-- {
			groups[j], groups[j-1] = groups[j-1], groups[j]
		}
	}
	p.For(len(groups)*KV, func(i int) {
		kvh, gr := i%KV, groups[i/KV]
		// Kᵀ and Vᵀ of the group's sequences for this head, packed once
		// for every query head and block that reads them (for the
		// bfloat16 kernel K as well); the group's first sequence is the
		// others' prefix.
		n := packedSeqsLen(path, sh, gr, bf, true)
		kb, vb := getBuf(n), getBuf(n)
		defer putBuf(kb)
		defer putBuf(vb)
		kt, vt := packSeqs(path, *kb, k, sh, gr, kvh, bf, true), packSeqs(path, *vb, v, sh, gr, kvh, bf, true)
		var kn [][]float32
		if bf {
			knb := getBuf(packedSeqsLen(path, sh, gr, bf, false))
			defer putBuf(knb)
			kn = packSeqs(path, *knb, k, sh, gr, kvh, bf, false)
		}
		seq := func(j int) seqPacking {
			sp := seqPacking{kt: kt[j], vt: vt[j]}
			if kn != nil {
				sp.k = kn[j]
			}
			return sp
		}
		for j, s := range gr {
			attentionBackwardSeq(path, bf, s, kvh, g, dq, dk, dv, dout, q, k, v, out, lse, sh, seq(j), seq(0))
		}
	})
}

// seqPacking is one sequence's keys and values of one key/value head packed
// by packSeqs: Kᵀ and Vᵀ, and K for the bfloat16 kernel (nil for the float32
// one, which reads K in place).
type seqPacking struct{ kt, vt, k []float32 }

// attentionBackwardSeq is the backward pass of one sequence and key/value
// head, block of queries by block of queries, given the sequence's packed
// keys and values of the head and its prefix's (unused without one).
func attentionBackwardSeq(path *gemmPath, bf bool, s, kvh, g int, dq, dk, dv, dout, q, k, v, out, lse []float32, sh AttnShape,
	own, pfx seqPacking) {
	hd, H, KV := sh.HeadDim, sh.Heads, sh.KVHeads
	scale, sc := sh.scale(), sh.SoftCap
	start, end := sh.Offsets[s], sh.Offsets[s+1]
	if end == start {
		return
	}
	pfx0, np := sh.prefix(s)
	blk := attnBlockRows(bf)
	bufLen := min(blk, end-start) * (np + end - start)
	pb, db := getBuf(bufLen), getBuf(bufLen)
	defer putBuf(pb)
	defer putBuf(db)
	// rows of key/value head kvh from key row r
	at := func(x []float32, r int) []float32 { return x[(r*KV+kvh)*hd:] }
	for h := kvh * g; h < (kvh+1)*g; h++ {
		for t0 := start; t0 < end; t0 += blk {
			t1 := min(t0+blk, end)
			nq, nown := t1-t0, t1-start
			nk := np + nown
			// Columns c0..nk (see attentionForwardBlocks): the prefix's
			// from c0, the sequence's own from o0, at column ownCol.
			c0 := blockCol0(sh, path.nr, np, np+t0-start)
			w, o0 := nk-c0, max(c0-np, 0)
			ownCol := max(c0, np) - c0
			P, dP := (*pb)[:nq*w], (*db)[:nq*w]
			qBlk, doBlk := q[(t0*H+h)*hd:], dout[(t0*H+h)*hd:]
			// Scores and dout·v for the prefix's keys and the sequence's own.
			if c0 < np {
				attnProduct(path, gemmArgs{c: P, ldc: w,
					a: qBlk, rsA: H * hd, csA: 1, b: at(k, pfx0+c0), ldb: KV * hd, bT: true, packedB: packedCols(pfx.kt, path, bf, hd, c0),
					m: nq, n: np - c0, k: hd, overwrite: true, bf16: bf})
				attnProduct(path, gemmArgs{c: dP, ldc: w,
					a: doBlk, rsA: H * hd, csA: 1, b: at(v, pfx0+c0), ldb: KV * hd, bT: true, packedB: packedCols(pfx.vt, path, bf, hd, c0),
					m: nq, n: np - c0, k: hd, overwrite: true, bf16: bf})
			}
			attnProduct(path, gemmArgs{c: P[ownCol:], ldc: w,
				a: qBlk, rsA: H * hd, csA: 1, b: at(k, start+o0), ldb: KV * hd, bT: true, packedB: packedCols(own.kt, path, bf, hd, o0),
				m: nq, n: nown - o0, k: hd, overwrite: true, bf16: bf})
			attnProduct(path, gemmArgs{c: dP[ownCol:], ldc: w,
				a: doBlk, rsA: H * hd, csA: 1, b: at(v, start+o0), ldb: KV * hd, bT: true, packedB: packedCols(own.vt, path, bf, hd, o0),
				m: nq, n: nown - o0, k: hd, overwrite: true, bf16: bf})
			for i := 0; i < nq; i++ {
				t := t0 + i
				n := np + t - start + 1
				lo := sh.firstKey(n - 1)
				row := (t*H + h) * hd
				dsum := Dot(dout[row:row+hd], out[row:row+hd]) // D_t = dout·out
				pr, dr := P[i*w+lo-c0:i*w+n-c0], dP[i*w+lo-c0:i*w+n-c0]
				if sc > 0 {
					softcapBwdRow(pr, dr, scale, sc, lse[t*H+h], dsum)
				} else {
					expAffine(pr, pr, scale, lse[t*H+h], 1)
					softmaxBwdRow(dr, pr, dsum, scale)
				}
				clear(P[i*w : i*w+lo-c0])
				clear(dP[i*w : i*w+lo-c0])
				clear(P[i*w+n-c0 : i*w+w])
				clear(dP[i*w+n-c0 : i*w+w])
			}
			// dV += Pᵀ·dO, dQ += dS·K, dK += dSᵀ·Q, for the prefix's rows
			// and the sequence's own. A packing of K reaches from its
			// first row only.
			if c0 < np {
				var pk []float32
				if c0 == 0 {
					pk = pfx.k
				}
				attnProduct(path, gemmArgs{c: at(dv, pfx0+c0), ldc: KV * hd,
					a: P, rsA: 1, csA: w, b: doBlk, ldb: H * hd,
					m: np - c0, n: hd, k: nq, bf16: bf})
				attnProduct(path, gemmArgs{c: dq[(t0*H+h)*hd:], ldc: H * hd,
					a: dP, rsA: w, csA: 1, b: at(k, pfx0+c0), ldb: KV * hd, packedB: pk,
					m: nq, n: hd, k: np - c0, bf16: bf})
				attnProduct(path, gemmArgs{c: at(dk, pfx0+c0), ldc: KV * hd,
					a: dP, rsA: 1, csA: w, b: qBlk, ldb: H * hd,
					m: np - c0, n: hd, k: nq, bf16: bf})
			}
			var ok []float32
			if o0 == 0 {
				ok = own.k
			}
			attnProduct(path, gemmArgs{c: at(dv, start+o0), ldc: KV * hd,
				a: P[ownCol:], rsA: 1, csA: w, b: doBlk, ldb: H * hd,
				m: nown - o0, n: hd, k: nq, bf16: bf})
			attnProduct(path, gemmArgs{c: dq[(t0*H+h)*hd:], ldc: H * hd,
				a: dP[ownCol:], rsA: w, csA: 1, b: at(k, start+o0), ldb: KV * hd, packedB: ok, packedK: end - start,
				m: nq, n: hd, k: nown - o0, bf16: bf})
			attnProduct(path, gemmArgs{c: at(dk, start+o0), ldc: KV * hd,
				a: dP[ownCol:], rsA: 1, csA: w, b: qBlk, ldb: H * hd,
				m: nown - o0, n: hd, k: nq, bf16: bf})
		}
	}
}

// softcapBwdRow is the softmax backward of a row of soft-capped scores:
// given the raw products pr (q·k) and dr (dout·v), the scale, the cap c, the
// row's lse and d = dout·out, it sets pr to the probabilities
// p = e^(c·tanh(pr·scale/c) − lse) and dr to the gradient of the raw
// products, p·(dr − d)·(1 − tanh²)·scale.
func softcapBwdRow(pr, dr []float32, scale, c, lse, d float32) {
	dr = dr[:len(pr)]
	for j, x := range pr {
		th := tanh32((x * scale) / c)
		pj := float32(math.Exp(float64(c*th - lse)))
		pr[j] = pj
		dr[j] = pj * (dr[j] - d) * (1 - th*th) * scale
	}
}

// scal sets x[i] = x[i]·a.
func scal(x []float32, a float32) {
	if scalFast(x, a) {
		return
	}
	for i := range x {
		x[i] *= a
	}
}

// softmaxBwdRow sets dr[i] = p[i]·(dr[i] − d)·s, rounded in that order:
// a row of scores' gradient from the probabilities p, the gradient dr of
// the probabilities, d = Σ dout·out and the scale s.
func softmaxBwdRow(dr, p []float32, d, s float32) {
	if softmaxBwdFast(dr, p, d, s) {
		return
	}
	p = p[:len(dr)]
	for i, pi := range p {
		dr[i] = pi * (dr[i] - d) * s
	}
}
