//go:build ignore

// This program writes gemm_amd64.s and gemm_decl_amd64.go, the AVX-512 and AVX2 micro-kernels of the
// matrix products. Run it with `go generate ./kernels/` after editing.
package main

import (
	"bytes"
	"fmt"
	"math/bits"
	"os"
	"strings"
)

var out, decl bytes.Buffer

func p(format string, args ...any) { fmt.Fprintf(&out, format+"\n", args...) }

// ptrs are the four A row pointers: row r is at ptrs[r/3] + (r%3)·rsA.
var ptrs = []string{"AX", "BX", "CX", "DX"}

// stub documents a kernel in the .s file and declares it in the .go file.
func stub(sig string) {
	p("// %s", sig)
	fmt.Fprintf(&decl, "\n//go:noescape\n%s\n", sig)
}

func rowAddr(r int) string {
	switch r % 3 {
	case 0:
		return "(" + ptrs[r/3] + ")"
	case 1:
		return "(" + ptrs[r/3] + ")(SI*1)"
	}
	return "(" + ptrs[r/3] + ")(SI*2)"
}

// prologue loads the arguments shared by both kernels and sets up the A row
// pointers for mr rows.
func prologue(mr int) {
	p("\tMOVQ a+0(FP), AX")
	p("\tMOVQ rsA+8(FP), SI")
	p("\tMOVQ csA+16(FP), DI")
	p("\tMOVQ b+24(FP), R8")
	p("\tMOVQ ldb+32(FP), R9")
	p("\tMOVQ c+40(FP), R11")
	p("\tMOVQ ldc+48(FP), R12")
	p("\tMOVQ kc+56(FP), R10")
	if mr > 3 {
		p("\tLEAQ (SI)(SI*2), R13")
	}
	for g := 1; g*3 < mr; g++ {
		p("\tLEAQ (%s)(R13*1), %s", ptrs[g-1], ptrs[g])
	}
}

func advance(mr int) {
	for g := 0; g*3 < mr; g++ {
		p("\tADDQ DI, %s", ptrs[g])
	}
	p("\tADDQ R9, R8")
}

// step512 writes one step of l of the AVX-512 kernel: load the row of Bp,
// then per row of A a broadcast and two FMAs. The broadcast registers
// Z26…Z31 rotate from rot on, so that the second step of an unrolled trip
// does not wait for the first's registers.
func step512(mr, rot int) {
	p("\tVMOVUPS (R8), Z24")
	p("\tVMOVUPS 64(R8), Z25")
	for r := 0; r < mr; r++ {
		t := 26 + (r+rot)%6
		p("\tVBROADCASTSS %s, Z%d", rowAddr(r), t)
		p("\tVFMADD231PS Z24, Z%d, Z%d", t, 2*r)
		p("\tVFMADD231PS Z25, Z%d, Z%d", t, 2*r+1)
	}
}

func avx512Kernel(mr int) {
	p("")
	stub(fmt.Sprintf("func gemmK512x%d(a *float32, rsA, csA int, b *float32, ldb int, c *float32, ldc int, kc int, mask uint32, store bool)", mr))
	p("TEXT ·gemmK512x%d(SB), NOSPLIT, $0-69", mr)
	prologue(mr)
	// Fetch the C tile while the loop runs: it is only needed at the end.
	p("\tMOVQ R11, R13")
	for r := 0; r < mr; r++ {
		p("\tPREFETCHT0 (R13)")
		p("\tPREFETCHT0 64(R13)")
		if r+1 < mr {
			p("\tADDQ R12, R13")
		}
	}
	for r := 0; r < 2*mr; r++ {
		p("\tVPXORD Z%d, Z%d, Z%d", r, r, r)
	}
	p("\tTESTQ R10, R10")
	p("\tJEQ k512x%d_store", mr)
	// Two steps of l per trip when kc is even, then one.
	p("\tSHRQ $1, R10")
	p("\tJEQ k512x%d_tail", mr)
	// Align the loop to a cache line, so that its speed does not depend on
	// where the linker happens to place the function.
	p("\tPCALIGN $64")
	p("k512x%d_loop2:", mr)
	for u := 0; u < 2; u++ {
		step512(mr, u*mr)
		advance(mr)
	}
	p("\tDECQ R10")
	p("\tJNE k512x%d_loop2", mr)
	p("k512x%d_tail:", mr)
	p("\tMOVQ kc+56(FP), R10")
	p("\tANDQ $1, R10")
	p("\tJEQ k512x%d_store", mr)
	step512(mr, 0)
	p("k512x%d_store:", mr)
	p("\tMOVL mask+64(FP), R13")
	p("\tKMOVW R13, K1")
	p("\tSHRL $16, R13")
	p("\tKMOVW R13, K2")
	// With store, C = the product: C is not read.
	p("\tMOVBLZX store+68(FP), R10")
	p("\tTESTQ R10, R10")
	p("\tJNE k512x%d_overwrite", mr)
	storeC(mr, func(r int) {
		p("\tVMOVUPS.Z (R11), K1, Z24")
		p("\tVMOVUPS.Z 64(R11), K2, Z25")
		p("\tVADDPS Z24, Z%d, Z%d", 2*r, 2*r)
		p("\tVADDPS Z25, Z%d, Z%d", 2*r+1, 2*r+1)
		p("\tVMOVUPS Z%d, K1, (R11)", 2*r)
		p("\tVMOVUPS Z%d, K2, 64(R11)", 2*r+1)
	})
	p("k512x%d_overwrite:", mr)
	storeC(mr, func(r int) {
		p("\tVMOVUPS Z%d, K1, (R11)", 2*r)
		p("\tVMOVUPS Z%d, K2, 64(R11)", 2*r+1)
	})
}

// storeC writes a kernel's end: row(r) for each of the mr rows of C (R11,
// moved down by the row stride R12 between rows), then VZEROUPPER and RET.
func storeC(mr int, row func(r int)) {
	for r := 0; r < mr; r++ {
		row(r)
		if r+1 < mr {
			p("\tADDQ R12, R11")
		}
	}
	p("\tVZEROUPPER")
	p("\tRET")
}

// dpbf16 returns the bytes of VDPBF16PS Zsrc2, Zsrc1, Zdst (AVX512_BF16:
// Zdst.f32[i] += Zsrc1.bf16[2i]·Zsrc2.bf16[2i] + Zsrc1.bf16[2i+1]·Zsrc2.bf16[2i+1]),
// which the Go assembler has no mnemonic for: EVEX.512.F3.0F38.W0 52 /r with
// dst in ModRM.reg (extended by EVEX.R and R'), src1 in EVEX.vvvv (and V')
// and src2 in ModRM.rm (extended by EVEX.B and X). Checked against GNU as
// for registers on both sides of 8 and 16 (see the kernel's header).
func dpbf16(dst, src1, src2 int) string {
	inv := func(x, bit int) int { return (^x >> bit) & 1 }
	p0 := inv(dst, 3)<<7 | inv(src2, 4)<<6 | inv(src2, 3)<<5 | inv(dst, 4)<<4 | 0x2 // map 0F38
	p1 := (^src1&15)<<3 | 0x4 | 0x2                                                 // W0, pp = F3
	p2 := 0x40 | inv(src1, 4)<<3                                                    // L'L = 512 bits
	modrm := 0xc0 | (dst&7)<<3 | src2&7
	var b []string
	for _, x := range []int{0x62, p0, p1, p2, 0x52, modrm} {
		b = append(b, fmt.Sprintf("BYTE $0x%02X", x))
	}
	return strings.Join(b, "; ") + fmt.Sprintf(" // VDPBF16PS Z%d, Z%d, Z%d", src2, src1, dst)
}

// stepBF writes step u of an unrolled trip of the bfloat16 kernel: load the
// pair row u of the panel (32 words, two registers), then per row of A a
// broadcast of its pair word u and two VDPBF16PS.
func stepBF(mr, u int) {
	p("\tVMOVUPS %d(R8), Z24", 128*u)
	p("\tVMOVUPS %d(R8), Z25", 128*u+64)
	for r := 0; r < mr; r++ {
		t := 26 + (r+u*mr)%6
		p("\tVPBROADCASTD %d%s, Z%d", 4*u, rowAddr(r), t)
		p("\t%s", dpbf16(2*r, 24, t))
		p("\t%s", dpbf16(2*r+1, 25, t))
	}
}

// bfUnroll is the number of pair steps per trip of the bfloat16 kernel's
// loop; the packed depth kq is a multiple of 16, so of it too.
const bfUnroll = 4

func bf16Kernel(mr int) {
	p("")
	stub(fmt.Sprintf("func gemmBF512x%d(a *float32, lda int, b *float32, c *float32, ldc int, kq int, mask uint32, store bool)", mr))
	p("TEXT ·gemmBF512x%d(SB), NOSPLIT, $0-53", mr)
	p("\tMOVQ a+0(FP), AX")
	p("\tMOVQ lda+8(FP), SI")
	p("\tMOVQ b+16(FP), R8")
	p("\tMOVQ c+24(FP), R11")
	p("\tMOVQ ldc+32(FP), R12")
	p("\tMOVQ kq+40(FP), R10")
	if mr > 3 {
		p("\tLEAQ (SI)(SI*2), R13")
	}
	for g := 1; g*3 < mr; g++ {
		p("\tLEAQ (%s)(R13*1), %s", ptrs[g-1], ptrs[g])
	}
	p("\tMOVQ R11, R13")
	for r := 0; r < mr; r++ {
		p("\tPREFETCHT0 (R13)")
		p("\tPREFETCHT0 64(R13)")
		if r+1 < mr {
			p("\tADDQ R12, R13")
		}
	}
	for r := 0; r < 2*mr; r++ {
		p("\tVPXORD Z%d, Z%d, Z%d", r, r, r)
	}
	p("\tSHRQ $%d, R10", bits.TrailingZeros(bfUnroll))
	p("\tJEQ kbf512x%d_store", mr)
	p("\tPCALIGN $64")
	p("kbf512x%d_loop:", mr)
	for u := 0; u < bfUnroll; u++ {
		stepBF(mr, u)
	}
	for g := 0; g*3 < mr; g++ {
		p("\tADDQ $%d, %s", 4*bfUnroll, ptrs[g])
	}
	p("\tADDQ $%d, R8", 128*bfUnroll)
	p("\tDECQ R10")
	p("\tJNE kbf512x%d_loop", mr)
	p("kbf512x%d_store:", mr)
	p("\tMOVL mask+48(FP), R13")
	p("\tKMOVW R13, K1")
	p("\tSHRL $16, R13")
	p("\tKMOVW R13, K2")
	p("\tMOVBLZX store+52(FP), R10")
	p("\tTESTQ R10, R10")
	p("\tJNE kbf512x%d_overwrite", mr)
	storeC(mr, func(r int) {
		p("\tVMOVUPS.Z (R11), K1, Z24")
		p("\tVMOVUPS.Z 64(R11), K2, Z25")
		p("\tVADDPS Z24, Z%d, Z%d", 2*r, 2*r)
		p("\tVADDPS Z25, Z%d, Z%d", 2*r+1, 2*r+1)
		p("\tVMOVUPS Z%d, K1, (R11)", 2*r)
		p("\tVMOVUPS Z%d, K2, 64(R11)", 2*r+1)
	})
	p("kbf512x%d_overwrite:", mr)
	storeC(mr, func(r int) {
		p("\tVMOVUPS Z%d, K1, (R11)", 2*r)
		p("\tVMOVUPS Z%d, K2, 64(R11)", 2*r+1)
	})
}

func avx2Kernel(mr int) {
	p("")
	stub(fmt.Sprintf("func gemmK256x%d(a *float32, rsA, csA int, b *float32, ldb int, c *float32, ldc int, kc int, mask *int32, store bool)", mr))
	p("TEXT ·gemmK256x%d(SB), NOSPLIT, $0-73", mr)
	prologue(mr)
	for r := 0; r < 2*mr; r++ {
		p("\tVXORPS Y%d, Y%d, Y%d", r, r, r)
	}
	p("\tTESTQ R10, R10")
	p("\tJEQ k256x%d_store", mr)
	p("\tPCALIGN $64")
	p("k256x%d_loop:", mr)
	p("\tVMOVUPS (R8), Y12")
	p("\tVMOVUPS 32(R8), Y13")
	for r := 0; r < mr; r++ {
		t := 14 + r%2
		p("\tVBROADCASTSS %s, Y%d", rowAddr(r), t)
		p("\tVFMADD231PS Y12, Y%d, Y%d", t, 2*r)
		p("\tVFMADD231PS Y13, Y%d, Y%d", t, 2*r+1)
	}
	advance(mr)
	p("\tDECQ R10")
	p("\tJNE k256x%d_loop", mr)
	p("k256x%d_store:", mr)
	p("\tMOVQ mask+64(FP), R13")
	p("\tVMOVUPS (R13), Y12")
	p("\tVMOVUPS 32(R13), Y13")
	p("\tMOVBLZX store+72(FP), R10")
	p("\tTESTQ R10, R10")
	p("\tJNE k256x%d_overwrite", mr)
	storeC(mr, func(r int) {
		p("\tVMASKMOVPS (R11), Y12, Y14")
		p("\tVMASKMOVPS 32(R11), Y13, Y15")
		p("\tVADDPS Y14, Y%d, Y%d", 2*r, 2*r)
		p("\tVADDPS Y15, Y%d, Y%d", 2*r+1, 2*r+1)
		p("\tVMASKMOVPS Y%d, Y12, (R11)", 2*r)
		p("\tVMASKMOVPS Y%d, Y13, 32(R11)", 2*r+1)
	})
	p("k256x%d_overwrite:", mr)
	storeC(mr, func(r int) {
		p("\tVMASKMOVPS Y%d, Y12, (R11)", 2*r)
		p("\tVMASKMOVPS Y%d, Y13, 32(R11)", 2*r+1)
	})
}

// transposeKernel writes transpose16x16: dst[c·ldd + r] = src[r·lds + c] for
// nblk blocks of 16×16 floats side by side along src's rows (the blocks move
// 64 bytes along src and 16 rows down dst). It loads 16 rows, transposes them
// in registers (unpack pairs of floats, then of float pairs, then swap 128-bit
// lanes twice: 128 shuffles per block) and stores 16 rows, with no gathers:
// VGATHERDPS costs several cycles per element on these CPUs.
func transposeKernel() {
	p("")
	stub("func transpose16x16(dst, src *float32, lds, ldd, nblk int)")
	p("TEXT ·transpose16x16(SB), NOSPLIT, $0-40")
	p("\tMOVQ dst+0(FP), DI")
	p("\tMOVQ src+8(FP), SI")
	p("\tMOVQ lds+16(FP), DX")
	p("\tMOVQ ldd+24(FP), BX")
	p("\tMOVQ nblk+32(FP), R14")
	p("\tTESTQ R14, R14")
	p("\tJEQ tr16_done")
	p("\tLEAQ (DX)(DX*2), R11")
	p("\tLEAQ (DX)(DX*4), R12")
	p("\tLEAQ (R11)(DX*4), R13")
	p("\tLEAQ (SI)(DX*8), R10")
	p("\tLEAQ (BX)(BX*2), CX")
	p("\tLEAQ (BX)(BX*4), R8")
	p("\tLEAQ (CX)(BX*4), R9")
	p("\tLEAQ (DI)(BX*8), AX")
	// Row offsets from a base for rows 0…7 with stride s (s3, s5, s7 = 3s, 5s, 7s).
	offs := func(base, s, s3, s5, s7 string) []string {
		return []string{"(" + base + ")", "(" + base + ")(" + s + "*1)", "(" + base + ")(" + s + "*2)", "(" + base + ")(" + s3 + "*1)",
			"(" + base + ")(" + s + "*4)", "(" + base + ")(" + s5 + "*1)", "(" + base + ")(" + s3 + "*2)", "(" + base + ")(" + s7 + "*1)"}
	}
	src := append(offs("SI", "DX", "R11", "R12", "R13"), offs("R10", "DX", "R11", "R12", "R13")...)
	dst := append(offs("DI", "BX", "CX", "R8", "R9"), offs("AX", "BX", "CX", "R8", "R9")...)
	p("tr16_loop:")
	for r := 0; r < 16; r++ {
		p("\tVMOVUPS %s, Z%d", src[r], r)
	}
	// Z0…15 = r, Z16…31 = t.
	for i := 0; i < 8; i++ {
		p("\tVUNPCKLPS Z%d, Z%d, Z%d", 2*i+1, 2*i, 16+2*i)
		p("\tVUNPCKHPS Z%d, Z%d, Z%d", 2*i+1, 2*i, 16+2*i+1)
	}
	for g := 0; g < 4; g++ {
		t := 16 + 4*g
		p("\tVUNPCKLPD Z%d, Z%d, Z%d", t+2, t, 4*g)
		p("\tVUNPCKHPD Z%d, Z%d, Z%d", t+2, t, 4*g+1)
		p("\tVUNPCKLPD Z%d, Z%d, Z%d", t+3, t+1, 4*g+2)
		p("\tVUNPCKHPD Z%d, Z%d, Z%d", t+3, t+1, 4*g+3)
	}
	for h := 0; h < 2; h++ {
		for q := 0; q < 4; q++ {
			p("\tVSHUFF32X4 $0x88, Z%d, Z%d, Z%d", 8*h+q+4, 8*h+q, 16+8*h+q)
			p("\tVSHUFF32X4 $0xdd, Z%d, Z%d, Z%d", 8*h+q+4, 8*h+q, 16+8*h+q+4)
		}
	}
	for q := 0; q < 8; q++ {
		p("\tVSHUFF32X4 $0x88, Z%d, Z%d, Z%d", 16+q+8, 16+q, q)
		p("\tVSHUFF32X4 $0xdd, Z%d, Z%d, Z%d", 16+q+8, 16+q, q+8)
	}
	for r := 0; r < 16; r++ {
		p("\tVMOVUPS Z%d, %s", r, dst[r])
	}
	p("\tADDQ $64, SI")
	p("\tADDQ $64, R10")
	p("\tLEAQ (AX)(BX*8), DI")
	p("\tLEAQ (DI)(BX*8), AX")
	p("\tDECQ R14")
	p("\tJNE tr16_loop")
	p("tr16_done:")
	p("\tVZEROUPPER")
	p("\tRET")
}

const header = `// Code generated by gen_gemm_amd64.go; DO NOT EDIT.

//go:build amd64 && !purego

// Micro-kernels of the matrix products: C[mr×nr] += op(A)[mr×kc] · Bp[kc×nr].
//
// op(A) is read in place, never packed: row r, step l is the float32 at
// a + r·rsA + l·csA (byte strides), which covers A (rsA = 4k, csA = 4) and
// Aᵀ (rsA = 4, csA = 4m) alike. Row r is addressed from one of four row
// pointers, AX, BX, CX, DX = a + {0, 3, 6, 9}·rsA, plus 0, 1 or 2 times rsA
// (SI), so twelve rows need no more registers; every pointer moves by csA (DI)
// per step. Bp is a panel of nr columns whose rows lie ldb bytes apart (R8,
// R9): a packed panel (ldb = 4·nr) or rows of B itself.
//
// AVX-512, gemmK512xR for R = 1…12 rows, nr = 32:
//   Z0…Z23   accumulators, row r in Z(2r) (columns 0–15) and Z(2r+1) (16–31)
//   Z24, Z25 the two halves of the current row of Bp
//   Z26…Z31  broadcasts of A[r, l], rotated so that loads run ahead
// Per step: 2 loads of B, R broadcasts and 2R FMAs; with R = 12 that is 24
// independent FMA chains, enough to cover the FMA latency on two ports.
// The loop runs two steps per trip. At the end C is loaded, added and stored
// under the column masks K1 (columns 0–15) and K2 (16–31), so that a partial
// panel at the right edge of C needs no copy.
//
// AVX512_BF16, gemmBF512xR for R = 1…12 rows, nr = 32 columns, bfloat16
// operands: C[R×32] += A·Bp over kq pair steps (kq a multiple of 16). A is
// a block of rows of 32-bit words, each a pair of bfloat16 along k
// (A[r, 2s], A[r, 2s+1]), row r at a + r·lda (the same four row pointers as
// above; every pointer moves 4 bytes a step); Bp is a panel of kq pair rows
// of 32 words (128 bytes). The registers are those of gemmK512xR; each step
// is 2 loads of B, R broadcasts of A's pair words (VPBROADCASTD) and 2R
// VDPBF16PS, which multiply the pairs exactly and add both products to the
// float32 accumulators. Four steps per trip. VDPBF16PS is written as bytes
// (the Go assembler lacks it), each followed by its mnemonic in a comment.
//
// AVX2+FMA, gemmK256xR for R = 1…6 rows, nr = 16:
//   Y0…Y11   accumulators, row r in Y(2r) and Y(2r+1)
//   Y12, Y13 the current row of Bp; Y14, Y15 broadcasts of A
// The column masks come from a table of 32 int32 (-1 for the kept columns)
// and are applied with VMASKMOVPS.

#include "textflag.h"
`

func main() {
	out.WriteString(header)
	for mr := 1; mr <= 12; mr++ {
		avx512Kernel(mr)
	}
	for mr := 1; mr <= 12; mr++ {
		bf16Kernel(mr)
	}
	for mr := 1; mr <= 6; mr++ {
		avx2Kernel(mr)
	}
	transposeKernel()
	if err := os.WriteFile("gemm_amd64.s", out.Bytes(), 0o644); err != nil {
		panic(err)
	}
	head := "// Code generated by gen_gemm_amd64.go; DO NOT EDIT.\n\n//go:build amd64 && !purego\n\npackage kernels\n"
	if err := os.WriteFile("gemm_decl_amd64.go", append([]byte(head), decl.Bytes()...), 0o644); err != nil {
		panic(err)
	}
}
