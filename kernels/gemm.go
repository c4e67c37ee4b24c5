package kernels

// This file holds the portable matrix products. All matrices are row-major
// float32 slices. Accumulation inside one dot product is in float32, as in
// BLAS; the summation order differs from PyTorch's, which is why results agree
// to float32 rounding (about 1e-6 relative per product), not bit for bit.

const (
	nbBlock = 64  // columns of C (rows of B) kept hot in cache by MatMulNT
	kcBlock = 256 // depth of a panel in the accumulating products
	ncBlock = 512 // width of a panel of C in the accumulating products
)

// MatMulNT computes C = A·Bᵀ (+ bias), the forward pass of a linear layer
// y = x·Wᵀ + b with W stored [out, in] as PyTorch's nn.Linear does.
// A is [m, k], B is [n, k], C is [m, n]; bias is nil or [n]. C is overwritten.
func MatMulNT(p *Pool, c, a, b, bias []float32, m, n, k int) {
	if pr := p.Profile(); pr != nil {
		defer pr.Stop(pr.Start(), PartGEMM, gemmFlops(m, n, k))
	}
	checkLen("MatMulNT C", c, m*n)
	checkLen("MatMulNT A", a, m*k)
	checkLen("MatMulNT B", b, n*k)
	if bias != nil {
		checkLen("MatMulNT bias", bias, n)
	}
	if m <= skinnyRows && vec512 {
		matMulNTSkinny(p, c, a, b, bias, m, n, k)
		return
	}
	var native bool
	if m > skinnyRows { // decoding stays float32 whatever the precision
		var release func()
		a, b, native, release = bf16Operands(p, a, b)
		defer release()
	}
	if path := gemmImpl; path != nil {
		g := gemmArgs{c: c, ldc: n, a: a, rsA: k, csA: 1, b: b, ldb: k, bT: true,
			m: m, n: n, k: k, overwrite: true, bias: bias, bf16: native}
		if transposeNT(m, n, k) {
			// A wide, short product (the logits of a chunk of tokens):
			// compute Cᵀ = B·Aᵀ, reading the large B in place and packing
			// the small A.
			g = gemmArgs{c: c, ldc: n, a: b, rsA: k, csA: 1, b: a, ldb: k, bT: true,
				m: n, n: m, k: k, overwrite: true, bias: bias, transC: true, bf16: native}
		}
		g.run(p, path)
		return
	}
	matMulNTGo(p, c, a, b, bias, m, n, k)
}

func matMulNTGo(p *Pool, c, a, b, bias []float32, m, n, k int) {
	jBlocks := (n + nbBlock - 1) / nbBlock
	iBlocks := (m + 63) / 64
	p.For(jBlocks*iBlocks, func(t int) {
		jb, ib := t%jBlocks, t/jBlocks
		j0, j1 := jb*nbBlock, min(jb*nbBlock+nbBlock, n)
		i0, i1 := ib*64, min(ib*64+64, m)
		matMulNTBlock(c, a, b, bias, n, k, i0, i1, j0, j1)
	})
}

func matMulNTBlock(c, a, b, bias []float32, n, k, i0, i1, j0, j1 int) {
	i := i0
	for ; i+2 <= i1; i += 2 {
		a0 := a[i*k : i*k+k]
		a1 := a[(i+1)*k : (i+1)*k+k]
		j := j0
		for ; j+4 <= j1; j += 4 {
			b0 := b[j*k : j*k+k]
			b1 := b[(j+1)*k : (j+1)*k+k]
			b2 := b[(j+2)*k : (j+2)*k+k]
			b3 := b[(j+3)*k : (j+3)*k+k]
			var s00, s01, s02, s03, s10, s11, s12, s13 float32
			a1 := a1[:len(a0)]
			b0, b1, b2, b3 = b0[:len(a0)], b1[:len(a0)], b2[:len(a0)], b3[:len(a0)]
			for l, x0 := range a0 {
				x1 := a1[l]
				y0, y1, y2, y3 := b0[l], b1[l], b2[l], b3[l]
				s00 += x0 * y0
				s01 += x0 * y1
				s02 += x0 * y2
				s03 += x0 * y3
				s10 += x1 * y0
				s11 += x1 * y1
				s12 += x1 * y2
				s13 += x1 * y3
			}
			if bias != nil {
				s00 += bias[j]
				s10 += bias[j]
				s01 += bias[j+1]
				s11 += bias[j+1]
				s02 += bias[j+2]
				s12 += bias[j+2]
				s03 += bias[j+3]
				s13 += bias[j+3]
			}
			c0 := c[i*n+j : i*n+j+4]
			c1 := c[(i+1)*n+j : (i+1)*n+j+4]
			c0[0], c0[1], c0[2], c0[3] = s00, s01, s02, s03
			c1[0], c1[1], c1[2], c1[3] = s10, s11, s12, s13
		}
		for ; j < j1; j++ {
			bj := b[j*k : j*k+k]
			s0, s1 := Dot(a0, bj), Dot(a1, bj)
			if bias != nil {
				s0 += bias[j]
				s1 += bias[j]
			}
			c[i*n+j], c[(i+1)*n+j] = s0, s1
		}
	}
	for ; i < i1; i++ {
		ai := a[i*k : i*k+k]
		for j := j0; j < j1; j++ {
			s := Dot(ai, b[j*k:j*k+k])
			if bias != nil {
				s += bias[j]
			}
			c[i*n+j] = s
		}
	}
}

// skinnyRows is the largest m that MatMulNT serves with dot products
// (decoding a few sequences a token at a time): each weight row is read once
// and used for every row of A while it is in cache, with no packing.
const skinnyRows = 4

// matMulNTSkinny computes C = A·Bᵀ (+ bias) for a few rows of A as vector
// dot products, split over the columns of C.
func matMulNTSkinny(p *Pool, c, a, b, bias []float32, m, n, k int) {
	p.ForRange(n, 64, func(lo, hi int) {
		for j := lo; j < hi; j++ {
			bj := b[j*k : j*k+k]
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

// MatMulNNAcc computes C += A·B with A [m, k], B [k, n], C [m, n]. It is the
// input gradient of a linear layer: dx += dy·W.
func MatMulNNAcc(p *Pool, c, a, b []float32, m, n, k int) {
	if pr := p.Profile(); pr != nil {
		defer pr.Stop(pr.Start(), PartGEMM, gemmFlops(m, n, k))
	}
	checkLen("MatMulNNAcc C", c, m*n)
	checkLen("MatMulNNAcc A", a, m*k)
	checkLen("MatMulNNAcc B", b, k*n)
	matMulAcc(p, c, a, k, 1, b, m, n, k, false)
}

// MatMulNN computes C = A·B with A [m, k], B [k, n], C [m, n]: MatMulNNAcc
// into a C that it overwrites, so that C needs no zeroing first.
func MatMulNN(p *Pool, c, a, b []float32, m, n, k int) {
	if pr := p.Profile(); pr != nil {
		defer pr.Stop(pr.Start(), PartGEMM, gemmFlops(m, n, k))
	}
	checkLen("MatMulNN C", c, m*n)
	checkLen("MatMulNN A", a, m*k)
	checkLen("MatMulNN B", b, k*n)
	matMulAcc(p, c, a, k, 1, b, m, n, k, true)
}

// matMulAcc computes C += op(A)·B (C = op(A)·B with overwrite),
// op(A)[i, l] = a[i·rsA + l·csA], under the pool's precision: on the blocked
// path, or with matMulAccGo.
func matMulAcc(p *Pool, c, a []float32, rsA, csA int, b []float32, m, n, k int, overwrite bool) {
	a, b, native, release := bf16Operands(p, a, b)
	defer release()
	if path := gemmImpl; path != nil {
		g := gemmArgs{c: c, ldc: n, a: a, rsA: rsA, csA: csA, b: b, ldb: n, m: m, n: n, k: k,
			overwrite: overwrite, bf16: native}
		g.run(p, path)
		return
	}
	if overwrite {
		p.ForRange(len(c), 1<<14, func(lo, hi int) { clear(c[lo:hi]) })
	}
	matMulAccGo(p, c, a, rsA, csA, b, m, n, k)
}

// matMulAccGo computes C += A·B for an A whose element (i, l) is
// a[i·rsA + l·csA]: row-major A for MatMulNNAcc (rsA = k, csA = 1), Aᵀ of a
// row-major [k, m] matrix for MatMulTNAcc (rsA = 1, csA = m).
func matMulAccGo(p *Pool, c, a []float32, rsA, csA int, b []float32, m, n, k int) {
	jBlocks := (n + ncBlock - 1) / ncBlock
	iBlocks := (m + 15) / 16
	p.For(iBlocks*jBlocks, func(t int) {
		ib, jb := t/jBlocks, t%jBlocks
		i0, i1 := ib*16, min(ib*16+16, m)
		j0, j1 := jb*ncBlock, min(jb*ncBlock+ncBlock, n)
		for l0 := 0; l0 < k; l0 += kcBlock {
			l1 := min(l0+kcBlock, k)
			for i := i0; i < i1; i++ {
				ci := c[i*n+j0 : i*n+j1]
				ai := func(l int) float32 { return a[i*rsA+l*csA] }
				l := l0
				for ; l+4 <= l1; l += 4 {
					axpy4(ci, ai(l), ai(l+1), ai(l+2), ai(l+3),
						b[l*n+j0:l*n+j1], b[(l+1)*n+j0:(l+1)*n+j1],
						b[(l+2)*n+j0:(l+2)*n+j1], b[(l+3)*n+j0:(l+3)*n+j1])
				}
				for ; l < l1; l++ {
					Axpy(ci, ai(l), b[l*n+j0:l*n+j1])
				}
			}
		}
	})
}

// MatMulTNAcc computes C += Aᵀ·B with A [k, m], B [k, n], C [m, n]. It is the
// weight gradient of a linear layer: dW += dyᵀ·x, summed over tokens.
func MatMulTNAcc(p *Pool, c, a, b []float32, m, n, k int) {
	if pr := p.Profile(); pr != nil {
		defer pr.Stop(pr.Start(), PartGEMM, gemmFlops(m, n, k))
	}
	checkLen("MatMulTNAcc C", c, m*n)
	checkLen("MatMulTNAcc A", a, k*m)
	checkLen("MatMulTNAcc B", b, k*n)
	matMulAcc(p, c, a, 1, m, b, m, n, k, false)
}

// axpy4 computes y += a0·x0 + a1·x1 + a2·x2 + a3·x3.
func axpy4(y []float32, a0, a1, a2, a3 float32, x0, x1, x2, x3 []float32) {
	x0, x1, x2, x3 = x0[:len(y)], x1[:len(y)], x2[:len(y)], x3[:len(y)]
	for j := range y {
		y[j] += a0*x0[j] + a1*x1[j] + a2*x2[j] + a3*x3[j]
	}
}

// Axpy computes y += a·x (with fused multiply-adds on the avx512 path).
func Axpy(y []float32, a float32, x []float32) {
	if axpyFast(y, a, x) {
		return
	}
	x = x[:len(y)]
	for j := range y {
		y[j] += a * x[j]
	}
}

// Dot returns Σ a[i]·b[i] over len(a), accumulated in float32 in several
// lanes (four in Go, 64 on the avx512 path).
func Dot(a, b []float32) float32 {
	if s, ok := dotFast(a, b); ok {
		return s
	}
	b = b[:len(a)]
	var s0, s1, s2, s3 float32
	i := 0
	for ; i+4 <= len(a); i += 4 {
		s0 += a[i] * b[i]
		s1 += a[i+1] * b[i+1]
		s2 += a[i+2] * b[i+2]
		s3 += a[i+3] * b[i+3]
	}
	for ; i < len(a); i++ {
		s0 += a[i] * b[i]
	}
	return (s0 + s1) + (s2 + s3)
}

func checkLen(what string, s []float32, want int) {
	if len(s) < want {
		panic("kernels: " + what + " is shorter than its shape")
	}
}
