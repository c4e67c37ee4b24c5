//go:build amd64 && !purego

// AVX-512 loops for RMSNorm and RoPE (ops.go). Each does, per element, the
// float32 operations of the Go loop in the same order (no fused
// multiply-adds), so results match it bit for bit; only the float64 sums
// (sumSq512, rmsBwdDot512) add in eight lanes instead of one. Every loop
// takes 16 floats a trip under the mask K1: all 16 lanes but on the last trip.

#include "textflag.h"

// HSUMPD leaves the sum of the float64 lanes of Z0 and Z1 in X0.
#define HSUMPD VADDPD Z1, Z0, Z0; VEXTRACTF64X4 $1, Z0, Y1; VADDPD Y1, Y0, Y0; VEXTRACTF128 $1, Y0, X1; VADDPD X1, X0, X0; VUNPCKHPD X0, X0, X1; VADDSD X1, X0, X0

// func sumSq512(x *float32, n int) float64
// Σ float64(x[i])².
TEXT ·sumSq512(SB), NOSPLIT, $0-24
	MOVQ x+0(FP), SI
	MOVQ n+8(FP), CX
	VPXORQ Z0, Z0, Z0
	VPXORQ Z1, Z1, Z1
	TESTQ CX, CX
	JLE ss_done
ss_loop:
	MOVL $0xFFFF, AX
	CMPQ CX, $16
	JGE ss_full
	MOVL $1, AX
	SHLL CX, AX
	DECL AX
ss_full:
	KMOVW AX, K1
	VMOVUPS.Z (SI), K1, Z2
	VCVTPS2PD Y2, Z3
	VEXTRACTF32X8 $1, Z2, Y4
	VCVTPS2PD Y4, Z4
	VFMADD231PD Z3, Z3, Z0
	VFMADD231PD Z4, Z4, Z1
	ADDQ $64, SI
	SUBQ $16, CX
	JGT ss_loop
ss_done:
	HSUMPD
	VZEROUPPER
	MOVSD X0, ret+16(FP)
	RET

// func rmsScale512(out, x, w *float32, rs float32, n int)
// out[i] = w[i]·(x[i]·rs).
TEXT ·rmsScale512(SB), NOSPLIT, $0-40
	MOVQ out+0(FP), DI
	MOVQ x+8(FP), SI
	MOVQ w+16(FP), DX
	VBROADCASTSS rs+24(FP), Z31
	MOVQ n+32(FP), CX
	TESTQ CX, CX
	JLE sc_done
sc_loop:
	MOVL $0xFFFF, AX
	CMPQ CX, $16
	JGE sc_full
	MOVL $1, AX
	SHLL CX, AX
	DECL AX
sc_full:
	KMOVW AX, K1
	VMOVUPS.Z (SI), K1, Z2
	VMULPS Z31, Z2, Z2
	VMOVUPS.Z (DX), K1, Z3
	VMULPS Z2, Z3, Z2
	VMOVUPS Z2, K1, (DI)
	ADDQ $64, SI
	ADDQ $64, DI
	ADDQ $64, DX
	SUBQ $16, CX
	JGT sc_loop
sc_done:
	VZEROUPPER
	RET

// func rmsBwdDot512(dwp, dr, xr, w *float32, rs float32, n int) float64
// With xh = x[i]·rs: dwp[i] += dr[i]·xh, and returns Σ float64((dr[i]·w[i])·xh).
TEXT ·rmsBwdDot512(SB), NOSPLIT, $0-56
	MOVQ dwp+0(FP), DI
	MOVQ dr+8(FP), SI
	MOVQ xr+16(FP), BX
	MOVQ w+24(FP), DX
	VBROADCASTSS rs+32(FP), Z31
	MOVQ n+40(FP), CX
	VPXORQ Z0, Z0, Z0
	VPXORQ Z1, Z1, Z1
	TESTQ CX, CX
	JLE bd_done
bd_loop:
	MOVL $0xFFFF, AX
	CMPQ CX, $16
	JGE bd_full
	MOVL $1, AX
	SHLL CX, AX
	DECL AX
bd_full:
	KMOVW AX, K1
	VMOVUPS.Z (BX), K1, Z2
	VMULPS Z31, Z2, Z2 // xh
	VMOVUPS.Z (SI), K1, Z3 // d
	VMULPS Z2, Z3, Z4 // d·xh
	VMOVUPS.Z (DI), K1, Z5
	VADDPS Z4, Z5, Z5
	VMOVUPS Z5, K1, (DI)
	VMOVUPS.Z (DX), K1, Z6
	VMULPS Z6, Z3, Z6 // d·w
	VMULPS Z2, Z6, Z6 // (d·w)·xh
	VCVTPS2PD Y6, Z7
	VEXTRACTF32X8 $1, Z6, Y8
	VCVTPS2PD Y8, Z8
	VADDPD Z7, Z0, Z0
	VADDPD Z8, Z1, Z1
	ADDQ $64, SI
	ADDQ $64, DI
	ADDQ $64, BX
	ADDQ $64, DX
	SUBQ $16, CX
	JGT bd_loop
bd_done:
	HSUMPD
	VZEROUPPER
	MOVSD X0, ret+48(FP)
	RET

// func rmsBwdDx512(dxr, dr, xr, w *float32, rs, dot float32, n int)
// With xh = x[i]·rs: dxr[i] += rs·(dr[i]·w[i] − xh·dot).
TEXT ·rmsBwdDx512(SB), NOSPLIT, $0-48
	MOVQ dxr+0(FP), DI
	MOVQ dr+8(FP), SI
	MOVQ xr+16(FP), BX
	MOVQ w+24(FP), DX
	VBROADCASTSS rs+32(FP), Z31
	VBROADCASTSS dot+36(FP), Z30
	MOVQ n+40(FP), CX
	TESTQ CX, CX
	JLE bx_done
bx_loop:
	MOVL $0xFFFF, AX
	CMPQ CX, $16
	JGE bx_full
	MOVL $1, AX
	SHLL CX, AX
	DECL AX
bx_full:
	KMOVW AX, K1
	VMOVUPS.Z (BX), K1, Z2
	VMULPS Z31, Z2, Z2 // xh
	VMULPS Z30, Z2, Z2 // xh·dot
	VMOVUPS.Z (SI), K1, Z3
	VMOVUPS.Z (DX), K1, Z4
	VMULPS Z4, Z3, Z3 // d·w
	VSUBPS Z2, Z3, Z3
	VMULPS Z3, Z31, Z3
	VMOVUPS.Z (DI), K1, Z5
	VADDPS Z3, Z5, Z5
	VMOVUPS Z5, K1, (DI)
	ADDQ $64, SI
	ADDQ $64, DI
	ADDQ $64, BX
	ADDQ $64, DX
	SUBQ $16, CX
	JGT bx_loop
bx_done:
	VZEROUPPER
	RET

// func rope512(x1, x2, c, s *float32, n int, inverse bool)
// With a = x1[i], b = x2[i]: x1[i] = a·c[i] − b·s[i], x2[i] = b·c[i] + a·s[i];
// inverse negates s (exactly), which is the inverse rotation.
TEXT ·rope512(SB), NOSPLIT, $0-41
	MOVQ x1+0(FP), DI
	MOVQ x2+8(FP), SI
	MOVQ c+16(FP), BX
	MOVQ s+24(FP), DX
	MOVQ n+32(FP), CX
	VPXORD Z31, Z31, Z31
	MOVBLZX inverse+40(FP), AX
	TESTQ AX, AX
	JEQ rp_sign
	MOVL $0x80000000, AX
	VPBROADCASTD AX, Z31
rp_sign:
	TESTQ CX, CX
	JLE rp_done
rp_loop:
	MOVL $0xFFFF, AX
	CMPQ CX, $16
	JGE rp_full
	MOVL $1, AX
	SHLL CX, AX
	DECL AX
rp_full:
	KMOVW AX, K1
	VMOVUPS.Z (DI), K1, Z2 // a
	VMOVUPS.Z (SI), K1, Z3 // b
	VMOVUPS.Z (BX), K1, Z4 // c
	VMOVUPS.Z (DX), K1, Z5
	VPXORD Z31, Z5, Z5 // ±s
	VMULPS Z4, Z2, Z6 // a·c
	VMULPS Z5, Z3, Z7 // b·s
	VSUBPS Z7, Z6, Z6
	VMULPS Z4, Z3, Z8 // b·c
	VMULPS Z5, Z2, Z9 // a·s
	VADDPS Z9, Z8, Z8
	VMOVUPS Z6, K1, (DI)
	VMOVUPS Z8, K1, (SI)
	ADDQ $64, SI
	ADDQ $64, DI
	ADDQ $64, BX
	ADDQ $64, DX
	SUBQ $16, CX
	JGT rp_loop
rp_done:
	VZEROUPPER
	RET
