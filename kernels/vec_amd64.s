//go:build amd64 && !purego

// AVX-512 vector loops for Dot and Axpy: 64 floats per trip in four
// independent registers, then 16 at a time, then a masked tail.

#include "textflag.h"

// func dot512(a, b *float32, n int) float32
TEXT ·dot512(SB), NOSPLIT, $0-28
	MOVQ a+0(FP), SI
	MOVQ b+8(FP), DI
	MOVQ n+16(FP), CX
	VPXORD Z0, Z0, Z0
	VPXORD Z1, Z1, Z1
	VPXORD Z2, Z2, Z2
	VPXORD Z3, Z3, Z3
dot_loop64:
	CMPQ CX, $64
	JLT dot_loop16
	VMOVUPS (SI), Z4
	VMOVUPS 64(SI), Z5
	VMOVUPS 128(SI), Z6
	VMOVUPS 192(SI), Z7
	VFMADD231PS (DI), Z4, Z0
	VFMADD231PS 64(DI), Z5, Z1
	VFMADD231PS 128(DI), Z6, Z2
	VFMADD231PS 192(DI), Z7, Z3
	ADDQ $256, SI
	ADDQ $256, DI
	SUBQ $64, CX
	JMP dot_loop64
dot_loop16:
	CMPQ CX, $16
	JLT dot_tail
	VMOVUPS (SI), Z4
	VFMADD231PS (DI), Z4, Z0
	ADDQ $64, SI
	ADDQ $64, DI
	SUBQ $16, CX
	JMP dot_loop16
dot_tail:
	TESTQ CX, CX
	JEQ dot_reduce
	MOVL $1, AX
	SHLL CX, AX
	DECL AX
	KMOVW AX, K1
	VMOVUPS.Z (SI), K1, Z4
	VMOVUPS.Z (DI), K1, Z5
	VFMADD231PS Z5, Z4, Z1
dot_reduce:
	VADDPS Z1, Z0, Z0
	VADDPS Z3, Z2, Z2
	VADDPS Z2, Z0, Z0
	VEXTRACTF32X8 $1, Z0, Y1
	VADDPS Y1, Y0, Y0
	VEXTRACTF128 $1, Y0, X1
	VADDPS X1, X0, X0
	VSHUFPS $0x4e, X0, X0, X1
	VADDPS X1, X0, X0
	VSHUFPS $0xb1, X0, X0, X1
	VADDSS X1, X0, X0
	VZEROUPPER
	MOVSS X0, ret+24(FP)
	RET

// func axpy512(y, x *float32, a float32, n int)
TEXT ·axpy512(SB), NOSPLIT, $0-32
	MOVQ y+0(FP), DI
	MOVQ x+8(FP), SI
	VBROADCASTSS a+16(FP), Z0
	MOVQ n+24(FP), CX
axpy_loop64:
	CMPQ CX, $64
	JLT axpy_loop16
	VMOVUPS (DI), Z1
	VMOVUPS 64(DI), Z2
	VMOVUPS 128(DI), Z3
	VMOVUPS 192(DI), Z4
	VFMADD231PS (SI), Z0, Z1
	VFMADD231PS 64(SI), Z0, Z2
	VFMADD231PS 128(SI), Z0, Z3
	VFMADD231PS 192(SI), Z0, Z4
	VMOVUPS Z1, (DI)
	VMOVUPS Z2, 64(DI)
	VMOVUPS Z3, 128(DI)
	VMOVUPS Z4, 192(DI)
	ADDQ $256, SI
	ADDQ $256, DI
	SUBQ $64, CX
	JMP axpy_loop64
axpy_loop16:
	CMPQ CX, $16
	JLT axpy_tail
	VMOVUPS (DI), Z1
	VFMADD231PS (SI), Z0, Z1
	VMOVUPS Z1, (DI)
	ADDQ $64, SI
	ADDQ $64, DI
	SUBQ $16, CX
	JMP axpy_loop16
axpy_tail:
	TESTQ CX, CX
	JEQ axpy_done
	MOVL $1, AX
	SHLL CX, AX
	DECL AX
	KMOVW AX, K1
	VMOVUPS.Z (DI), K1, Z1
	VMOVUPS.Z (SI), K1, Z2
	VFMADD231PS Z2, Z0, Z1
	VMOVUPS Z1, K1, (DI)
axpy_done:
	VZEROUPPER
	RET

// func scal512(x *float32, a float32, n int)
TEXT ·scal512(SB), NOSPLIT, $0-24
	MOVQ x+0(FP), DI
	VBROADCASTSS a+8(FP), Z0
	MOVQ n+16(FP), CX
scal_loop16:
	CMPQ CX, $16
	JLT scal_tail
	VMULPS (DI), Z0, Z1
	VMOVUPS Z1, (DI)
	ADDQ $64, DI
	SUBQ $16, CX
	JMP scal_loop16
scal_tail:
	TESTQ CX, CX
	JEQ scal_done
	MOVL $1, AX
	SHLL CX, AX
	DECL AX
	KMOVW AX, K1
	VMOVUPS.Z (DI), K1, Z1
	VMULPS Z1, Z0, Z1
	VMOVUPS Z1, K1, (DI)
scal_done:
	VZEROUPPER
	RET

// func softmaxBwd512(dr, p *float32, d, s float32, n int)
// dr[i] = (p[i]·(dr[i] − d))·s, each operation rounded as written.
TEXT ·softmaxBwd512(SB), NOSPLIT, $0-32
	MOVQ dr+0(FP), DI
	MOVQ p+8(FP), SI
	VBROADCASTSS d+16(FP), Z0
	VBROADCASTSS s+20(FP), Z3
	MOVQ n+24(FP), CX
sbwd_loop16:
	CMPQ CX, $16
	JLT sbwd_tail
	VMOVUPS (DI), Z1
	VSUBPS Z0, Z1, Z1
	VMULPS (SI), Z1, Z1
	VMULPS Z3, Z1, Z1
	VMOVUPS Z1, (DI)
	ADDQ $64, SI
	ADDQ $64, DI
	SUBQ $16, CX
	JMP sbwd_loop16
sbwd_tail:
	TESTQ CX, CX
	JEQ sbwd_done
	MOVL $1, AX
	SHLL CX, AX
	DECL AX
	KMOVW AX, K1
	VMOVUPS.Z (DI), K1, Z1
	VMOVUPS.Z (SI), K1, Z2
	VSUBPS Z0, Z1, Z1
	VMULPS Z2, Z1, Z1
	VMULPS Z3, Z1, Z1
	VMOVUPS Z1, K1, (DI)
sbwd_done:
	VZEROUPPER
	RET

// func dotH512(a *float32, b *uint16, n int) float32
// dot512 with b given as bfloat16 bits, each widened exactly (zero-extend
// to 32 bits, shift left 16) before its multiply: the same accumulators,
// the same order of the sums, so the same result as dot512 on the widened
// b, bit for bit.
TEXT ·dotH512(SB), NOSPLIT, $0-28
	MOVQ a+0(FP), SI
	MOVQ b+8(FP), DI
	MOVQ n+16(FP), CX
	VPXORD Z0, Z0, Z0
	VPXORD Z1, Z1, Z1
	VPXORD Z2, Z2, Z2
	VPXORD Z3, Z3, Z3
doth_loop64:
	CMPQ CX, $64
	JLT doth_loop16
	VMOVUPS (SI), Z4
	VMOVUPS 64(SI), Z5
	VMOVUPS 128(SI), Z6
	VMOVUPS 192(SI), Z7
	VPMOVZXWD (DI), Z8
	VPMOVZXWD 32(DI), Z9
	VPMOVZXWD 64(DI), Z10
	VPMOVZXWD 96(DI), Z11
	VPSLLD $16, Z8, Z8
	VPSLLD $16, Z9, Z9
	VPSLLD $16, Z10, Z10
	VPSLLD $16, Z11, Z11
	VFMADD231PS Z8, Z4, Z0
	VFMADD231PS Z9, Z5, Z1
	VFMADD231PS Z10, Z6, Z2
	VFMADD231PS Z11, Z7, Z3
	ADDQ $256, SI
	ADDQ $128, DI
	SUBQ $64, CX
	JMP doth_loop64
doth_loop16:
	CMPQ CX, $16
	JLT doth_tail
	VMOVUPS (SI), Z4
	VPMOVZXWD (DI), Z8
	VPSLLD $16, Z8, Z8
	VFMADD231PS Z8, Z4, Z0
	ADDQ $64, SI
	ADDQ $32, DI
	SUBQ $16, CX
	JMP doth_loop16
doth_tail:
	TESTQ CX, CX
	JEQ doth_reduce
	MOVL $1, AX
	SHLL CX, AX
	DECL AX
	KMOVW AX, K1
	VMOVUPS.Z (SI), K1, Z4
	VPMOVZXWD.Z (DI), K1, Z5
	VPSLLD $16, Z5, Z5
	VFMADD231PS Z5, Z4, Z1
doth_reduce:
	VADDPS Z1, Z0, Z0
	VADDPS Z3, Z2, Z2
	VADDPS Z2, Z0, Z0
	VEXTRACTF32X8 $1, Z0, Y1
	VADDPS Y1, Y0, Y0
	VEXTRACTF128 $1, Y0, X1
	VADDPS X1, X0, X0
	VSHUFPS $0x4e, X0, X0, X1
	VADDPS X1, X0, X0
	VSHUFPS $0xb1, X0, X0, X1
	VADDSS X1, X0, X0
	VZEROUPPER
	MOVSS X0, ret+24(FP)
	RET
