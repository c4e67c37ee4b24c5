//go:build amd64 && !purego

// Panel packing for the AVX-512 path and CPU feature detection.
//
// A packed panel holds kc rows of 32 floats, row l at dst + 128·l: the layout
// that the micro-kernels in gemm_amd64.s stream through. Columns past the
// edge of the matrix are written as zeros under the masks K1 (0–15) and K2
// (16–31).

#include "textflag.h"

// Multipliers 0…15 for the gather offsets of packT512.
DATA iota16<>+0(SB)/4, $0
DATA iota16<>+4(SB)/4, $1
DATA iota16<>+8(SB)/4, $2
DATA iota16<>+12(SB)/4, $3
DATA iota16<>+16(SB)/4, $4
DATA iota16<>+20(SB)/4, $5
DATA iota16<>+24(SB)/4, $6
DATA iota16<>+28(SB)/4, $7
DATA iota16<>+32(SB)/4, $8
DATA iota16<>+36(SB)/4, $9
DATA iota16<>+40(SB)/4, $10
DATA iota16<>+44(SB)/4, $11
DATA iota16<>+48(SB)/4, $12
DATA iota16<>+52(SB)/4, $13
DATA iota16<>+56(SB)/4, $14
DATA iota16<>+60(SB)/4, $15
GLOBL iota16<>(SB), RODATA|NOPTR, $64

// func packN512(dst, src *float32, ld, kc int, mask uint32)
// dst[32l + j] = src[l·ld/4 + j] for the columns j set in mask, else 0.
TEXT ·packN512(SB), NOSPLIT, $0-36
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ ld+16(FP), DX
	MOVQ kc+24(FP), CX
	MOVL mask+32(FP), R8
	KMOVW R8, K1
	SHRL $16, R8
	KMOVW R8, K2
	TESTQ CX, CX
	JEQ pn_done
pn_loop:
	VMOVUPS.Z (SI), K1, Z0
	VMOVUPS.Z 64(SI), K2, Z1
	VMOVUPS Z0, (DI)
	VMOVUPS Z1, 64(DI)
	ADDQ DX, SI
	ADDQ $128, DI
	DECQ CX
	JNE pn_loop
pn_done:
	VZEROUPPER
	RET

// func packT512(dst, src *float32, ld, kc int, mask uint32, ldd int)
// dst[l·ldd/4 + j] = src[j·ld/4 + l] for the rows j set in mask (the other
// columns of dst are left alone): the transpose of up to 32 rows of a
// row-major matrix, gathered 16 rows at a time. With ldd = 128 it packs a
// panel of Bᵀ; it also stores a transposed tile of C.
TEXT ·packT512(SB), NOSPLIT, $0-48
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ ld+16(FP), DX
	MOVQ kc+24(FP), CX
	MOVL mask+32(FP), R10
	MOVQ ldd+40(FP), R8
	MOVL R10, R11
	SHRL $16, R11
	KMOVW R10, K3
	KMOVW R11, K4
	MOVQ DX, R9
	SHLQ $4, R9
	ADDQ SI, R9
	VPBROADCASTD DX, Z2
	VPMULLD iota16<>(SB), Z2, Z2
	TESTQ CX, CX
	JEQ pt_done
pt_loop:
	KMOVW R10, K1
	KMOVW R11, K2
	VPXORD Z0, Z0, Z0
	VPXORD Z1, Z1, Z1
	VGATHERDPS (SI)(Z2*1), K1, Z0
	VGATHERDPS (R9)(Z2*1), K2, Z1
	VMOVUPS Z0, K3, (DI)
	VMOVUPS Z1, K4, 64(DI)
	ADDQ $4, SI
	ADDQ $4, R9
	ADDQ R8, DI
	DECQ CX
	JNE pt_loop
pt_done:
	VZEROUPPER
	RET

// func cpuid(eaxArg, ecxArg uint32) (eax, ebx, ecx, edx uint32)
TEXT ·cpuid(SB), NOSPLIT, $0-24
	MOVL eaxArg+0(FP), AX
	MOVL ecxArg+4(FP), CX
	CPUID
	MOVL AX, eax+8(FP)
	MOVL BX, ebx+12(FP)
	MOVL CX, ecx+16(FP)
	MOVL DX, edx+20(FP)
	RET

// func xgetbv() (eax, edx uint32)
TEXT ·xgetbv(SB), NOSPLIT, $0-8
	MOVL $0, CX
	XGETBV
	MOVL AX, eax+0(FP)
	MOVL DX, edx+4(FP)
	RET
