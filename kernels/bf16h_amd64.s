//go:build amd64 && !purego

#include "textflag.h"

// Conversions of bfloat16 bits for the products with 2-byte weights
// (bf16h.go, bf16h_amd64.go). A bfloat16 widens to float32 exactly by
// moving its 16 bits to the top of a 32-bit word: VPMOVZXWD, then VPSLLD $16
// (both AVX-512 F).

// func widenRow512(dst *float32, src *uint16, n int)
// dst[i] = float32 of src[i] for i < n &^ 15.
TEXT ·widenRow512(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	SHRQ $4, CX
	JEQ wr_done
	TESTQ $1, CX
	JEQ wr_pairs
	VPMOVZXWD (SI), Z0
	VPSLLD $16, Z0, Z0
	VMOVUPS Z0, (DI)
	ADDQ $32, SI
	ADDQ $64, DI
	DECQ CX
	JEQ wr_done
wr_pairs:
	SHRQ $1, CX
wr_loop:
	VPMOVZXWD (SI), Z0
	VPMOVZXWD 32(SI), Z1
	VPSLLD $16, Z0, Z0
	VPSLLD $16, Z1, Z1
	VMOVUPS Z0, (DI)
	VMOVUPS Z1, 64(DI)
	ADDQ $64, SI
	ADDQ $128, DI
	DECQ CX
	JNE wr_loop
wr_done:
	VZEROUPPER
	RET

// func widenPanelN512(dst *float32, src *uint16, ld, kc int)
// dst[32l + j] = float32 of the bfloat16 at byte src + l·ld + 2j, for
// l < kc, j < 32: a whole float32 panel of B from its bfloat16 rows.
TEXT ·widenPanelN512(SB), NOSPLIT, $0-32
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ ld+16(FP), DX
	MOVQ kc+24(FP), CX
	TESTQ CX, CX
	JEQ wp_done
wp_loop:
	VPMOVZXWD (SI), Z0
	VPMOVZXWD 32(SI), Z1
	VPSLLD $16, Z0, Z0
	VPSLLD $16, Z1, Z1
	VMOVUPS Z0, (DI)
	VMOVUPS Z1, 64(DI)
	ADDQ DX, SI
	ADDQ $128, DI
	DECQ CX
	JNE wp_loop
wp_done:
	VZEROUPPER
	RET

// func pairPanelN512(dst *float32, src *uint16, ld, pairs int)
// Word 32s + j of dst = the bfloat16 at byte src + 2s·ld + 2j in its low
// half and the one at src + (2s+1)·ld + 2j in its high half, for s < pairs,
// j < 32: the pair rows of a whole bfloat16 panel of B from its rows.
TEXT ·pairPanelN512(SB), NOSPLIT, $0-32
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ ld+16(FP), DX
	MOVQ pairs+24(FP), CX
	TESTQ CX, CX
	JEQ pp_done
pp_loop:
	VPMOVZXWD (SI), Z0
	VPMOVZXWD 32(SI), Z1
	VPMOVZXWD (SI)(DX*1), Z2
	VPMOVZXWD 32(SI)(DX*1), Z3
	VPSLLD $16, Z2, Z2
	VPSLLD $16, Z3, Z3
	VPORD Z2, Z0, Z0
	VPORD Z3, Z1, Z1
	VMOVDQU32 Z0, (DI)
	VMOVDQU32 Z1, 64(DI)
	LEAQ (SI)(DX*2), SI
	ADDQ $128, DI
	DECQ CX
	JNE pp_loop
pp_done:
	VZEROUPPER
	RET

// func unpairPanel512(dst, src *float32, pairs int)
// For s < pairs, rows 2s and 2s+1 of a float32 panel of 32 columns (dst,
// 128 bytes a row) from pair row s of a bfloat16 panel (src, 128 bytes a
// row): the low halves of its words widened, then the high halves.
TEXT ·unpairPanel512(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ pairs+16(FP), CX
	TESTQ CX, CX
	JEQ up_done
	MOVL $0xffff0000, AX
	VPBROADCASTD AX, Z4
up_loop:
	VMOVDQU32 (SI), Z0
	VMOVDQU32 64(SI), Z1
	VPSLLD $16, Z0, Z2
	VPSLLD $16, Z1, Z3
	VPANDD Z4, Z0, Z0
	VPANDD Z4, Z1, Z1
	VMOVDQU32 Z2, (DI)
	VMOVDQU32 Z3, 64(DI)
	VMOVDQU32 Z0, 128(DI)
	VMOVDQU32 Z1, 192(DI)
	ADDQ $128, SI
	ADDQ $256, DI
	DECQ CX
	JNE up_loop
up_done:
	VZEROUPPER
	RET

// func transpose16x16H(dst *float32, src *uint16, lds, ldd, nblk int)
// transpose16x16 on rows of bfloat16 pairs, which need not lie on 4-byte
// boundaries (the same arguments; only the Go type of src differs).
TEXT ·transpose16x16H(SB), NOSPLIT, $0-40
	JMP ·transpose16x16(SB)

// func cvtBF16RowH(dst *uint16, src *float32, n, words int)
// cvtBF16Row into a bfloat16 slice.
TEXT ·cvtBF16RowH(SB), NOSPLIT, $0-32
	JMP ·cvtBF16Row(SB)
