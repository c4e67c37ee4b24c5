//go:build amd64 && !purego

#include "textflag.h"

// Conversions from float32 to bfloat16 for the packing of bf16.go, with
// AVX512_BF16's VCVTNE2PS2BF16 (round to nearest even, subnormals to zero,
// NaNs kept), which every CPU with AMX-BF16 has. The Go assembler has no
// mnemonic for it: VCVTNE2PS2BF16 Z0, Z2, Z1 (EVEX.512.F2.0F38.W0 72 /r;
// bytes checked against GNU as) converts Z1 into the low 16 bfloat16 of Z0
// and Z2 into the high 16.
#define CVT_Z0_Z2_Z1 BYTE $0x62; BYTE $0xF2; BYTE $0x6F; BYTE $0x48; BYTE $0x72; BYTE $0xC1

// bf16Interleave<> are the VPERMW indices that turn (a0…a15, b0…b15) into
// (a0, b0, a1, b1, …): word 2i takes word i, word 2i+1 takes word 16+i.
DATA bf16Interleave<>+0(SB)/8, $0x0011000100100000
DATA bf16Interleave<>+8(SB)/8, $0x0013000300120002
DATA bf16Interleave<>+16(SB)/8, $0x0015000500140004
DATA bf16Interleave<>+24(SB)/8, $0x0017000700160006
DATA bf16Interleave<>+32(SB)/8, $0x0019000900180008
DATA bf16Interleave<>+40(SB)/8, $0x001B000B001A000A
DATA bf16Interleave<>+48(SB)/8, $0x001D000D001C000C
DATA bf16Interleave<>+56(SB)/8, $0x001F000F001E000E
GLOBL bf16Interleave<>(SB), RODATA|NOPTR, $64

// func cvtBF16Row(dst, src *float32, n, words int)
//
// Writes words 32-bit words (a multiple of 16) to dst: the bfloat16 values of
// src[0:n] in order, two a word, then zeros.
TEXT ·cvtBF16Row(SB), NOSPLIT, $0-32
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	MOVQ words+24(FP), DX
row_loop:
	TESTQ DX, DX
	JEQ row_done
	CMPQ CX, $32
	JLT row_tail
	VMOVUPS (SI), Z1
	VMOVUPS 64(SI), Z2
	CVT_Z0_Z2_Z1
	VMOVDQU32 Z0, (DI)
	ADDQ $128, SI
	ADDQ $64, DI
	SUBQ $32, CX
	SUBQ $16, DX
	JMP row_loop
row_tail:
	// 0 ≤ CX < 32 values left: masks (1<<CX)-1, low and high 16 bits.
	MOVL $1, R8
	SHLL CX, R8
	DECL R8
	KMOVW R8, K1
	SHRL $16, R8
	KMOVW R8, K2
	VMOVUPS.Z (SI), K1, Z1
	VMOVUPS.Z 64(SI), K2, Z2
	CVT_Z0_Z2_Z1
	VMOVDQU32 Z0, (DI)
	XORQ CX, CX
	ADDQ $64, DI
	SUBQ $16, DX
	JMP row_loop
row_done:
	VZEROUPPER
	RET

// func cvtBF16Pairs(dst, r0, r1 *float32, n, words int)
//
// Writes words 32-bit words (a multiple of 16) to dst: word i holds the
// bfloat16 of r0[i] in its low half and of r1[i] in its high half for i < n,
// and is zero after.
TEXT ·cvtBF16Pairs(SB), NOSPLIT, $0-40
	MOVQ dst+0(FP), DI
	MOVQ r0+8(FP), SI
	MOVQ r1+16(FP), BX
	MOVQ n+24(FP), CX
	MOVQ words+32(FP), DX
	VMOVDQU16 bf16Interleave<>(SB), Z5
pairs_loop:
	TESTQ DX, DX
	JEQ pairs_done
	CMPQ CX, $16
	JLT pairs_tail
	VMOVUPS (SI), Z1
	VMOVUPS (BX), Z2
	CVT_Z0_Z2_Z1
	VPERMW Z0, Z5, Z3
	VMOVDQU32 Z3, (DI)
	ADDQ $64, SI
	ADDQ $64, BX
	ADDQ $64, DI
	SUBQ $16, CX
	SUBQ $16, DX
	JMP pairs_loop
pairs_tail:
	MOVL $1, R8
	SHLL CX, R8
	DECL R8
	KMOVW R8, K1
	VMOVUPS.Z (SI), K1, Z1
	VMOVUPS.Z (BX), K1, Z2
	CVT_Z0_Z2_Z1
	VPERMW Z0, Z5, Z3
	VMOVDQU32 Z3, (DI)
	XORQ CX, CX
	ADDQ $64, DI
	SUBQ $16, DX
	JMP pairs_loop
pairs_done:
	VZEROUPPER
	RET
