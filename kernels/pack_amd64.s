//go:build amd64 && !purego

// Panel packing for the AVX-512 path and CPU feature detection.
//
// A packed panel holds kc rows of 32 floats, row l at dst + 128·l: the layout
// that the micro-kernels in gemm_amd64.s stream through. Columns past the
// edge of the matrix are written as zeros under the masks K1 (0–15) and K2
// (16–31).

#include "textflag.h"

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

// func packA12(dst, src *float32, ld, kc int, mask uint32)
// dst[12l + r] = src[l·ld/4 + r] for the rows r set in mask (the others are
// left alone): one micro-panel of op(A) = Aᵀ, twelve floats a step, for the
// 12-row kernels. Two steps a trip.
TEXT ·packA12(SB), NOSPLIT, $0-36
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ ld+16(FP), DX
	MOVQ kc+24(FP), CX
	MOVL mask+32(FP), R8
	KMOVW R8, K1
	SHRQ $1, CX
	JEQ pa_tail
pa_loop:
	VMOVUPS.Z (SI), K1, Z0
	VMOVUPS.Z (SI)(DX*1), K1, Z1
	VMOVUPS Z0, K1, (DI)
	VMOVUPS Z1, K1, 48(DI)
	LEAQ (SI)(DX*2), SI
	ADDQ $96, DI
	DECQ CX
	JNE pa_loop
pa_tail:
	MOVQ kc+24(FP), CX
	ANDQ $1, CX
	JEQ pa_done
	VMOVUPS.Z (SI), K1, Z0
	VMOVUPS Z0, K1, (DI)
pa_done:
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
