//go:build amd64 && !purego

#include "textflag.h"

// func adamw512(data, grad, m, v *float32, n int, c *AdamWConsts)
// n is a multiple of 16. The constants are broadcast once:
//   Z1 β1, Z2 1−β1, Z3 β2, Z4 1−β2, Z5 ε, Z6 negStep, Z7 √bc2, Z8 scale;
// then per 16 lanes: Z10 g, Z11 m, Z12 v, Z13 p, Z14/Z15 temporaries.
// AdamWConsts layout: 8 float32 fields at offsets 0..28, then Decay (bool) at 32.
TEXT ·adamw512(SB), NOSPLIT, $0-48
	MOVQ data+0(FP), DI
	MOVQ grad+8(FP), SI
	MOVQ m+16(FP), R8
	MOVQ v+24(FP), R9
	MOVQ n+32(FP), CX
	MOVQ c+40(FP), DX
	VBROADCASTSS 0(DX), Z1
	VBROADCASTSS 4(DX), Z2
	VBROADCASTSS 8(DX), Z3
	VBROADCASTSS 12(DX), Z4
	VBROADCASTSS 16(DX), Z5
	VBROADCASTSS 20(DX), Z6
	VBROADCASTSS 24(DX), Z7
	VBROADCASTSS 28(DX), Z8
	MOVBLZX 32(DX), BX
	XORQ AX, AX

loop:
	CMPQ AX, CX
	JGE done
	VMOVUPS (SI)(AX*4), Z10
	VMOVUPS (R8)(AX*4), Z11
	VMOVUPS (R9)(AX*4), Z12
	VMOVUPS (DI)(AX*4), Z13
	TESTQ BX, BX
	JZ nodecay
	VMULPS Z8, Z13, Z13          // p ← p·scale

nodecay:
	VMULPS Z1, Z11, Z11          // m·β1
	VFMADD231PS Z2, Z10, Z11     // m ← g·(1−β1) + m·β1
	VMULPS Z3, Z12, Z12          // v·β2
	VMULPS Z4, Z10, Z14          // (1−β2)·g
	VFMADD231PS Z10, Z14, Z12    // v ← ((1−β2)·g)·g + v·β2
	VMOVUPS Z11, (R8)(AX*4)
	VMOVUPS Z12, (R9)(AX*4)
	VSQRTPS Z12, Z15             // √v
	VDIVPS Z7, Z15, Z15          // √v / √bc2
	VADDPS Z5, Z15, Z15          // + ε
	VMULPS Z6, Z11, Z14          // negStep·m
	VDIVPS Z15, Z14, Z14         // (negStep·m) / denom
	VADDPS Z14, Z13, Z13         // p + …
	VMOVUPS Z13, (DI)(AX*4)
	ADDQ $16, AX
	JMP loop

done:
	VZEROUPPER
	RET
