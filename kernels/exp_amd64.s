//go:build amd64 && !purego

// Vector float32 exp for AVX-512 and AVX2+FMA, and the loops built on it.
//
// exp(x): x is clamped to [-104, 88.8] (NaN passes through the clamp), then
// x = n·ln2 + r with n = round(x·log2e), r = x − n·C1 − n·C2 (C1 + C2 = ln2,
// C1 exact in 9 bits), |r| ≤ ln2/2; exp(r) ≈ 1 + r + r²·P(r) with Cephes'
// degree-5 expf polynomial (FMA Horner); the result is scaled by 2ⁿ with
// VSCALEFPS (AVX-512) or by 2^⌊n/2⌋·2^(n−⌊n/2⌋) built in the exponent bits
// (AVX2), so that subnormal results are rounded once, x > 88.72 gives +Inf
// and x < −103.97 gives 0.
//
// The loops work on whole vectors (16 floats for AVX-512, 8 for AVX2); the
// Go callers handle the tails.

#include "textflag.h"

DATA exp_log2e<>+0(SB)/4, $0x3fb8aa3b
DATA exp_log2e<>+4(SB)/4, $0x3fb8aa3b
DATA exp_log2e<>+8(SB)/4, $0x3fb8aa3b
DATA exp_log2e<>+12(SB)/4, $0x3fb8aa3b
DATA exp_log2e<>+16(SB)/4, $0x3fb8aa3b
DATA exp_log2e<>+20(SB)/4, $0x3fb8aa3b
DATA exp_log2e<>+24(SB)/4, $0x3fb8aa3b
DATA exp_log2e<>+28(SB)/4, $0x3fb8aa3b
GLOBL exp_log2e<>(SB), RODATA|NOPTR, $32
DATA exp_c1<>+0(SB)/4, $0x3f318000
DATA exp_c1<>+4(SB)/4, $0x3f318000
DATA exp_c1<>+8(SB)/4, $0x3f318000
DATA exp_c1<>+12(SB)/4, $0x3f318000
DATA exp_c1<>+16(SB)/4, $0x3f318000
DATA exp_c1<>+20(SB)/4, $0x3f318000
DATA exp_c1<>+24(SB)/4, $0x3f318000
DATA exp_c1<>+28(SB)/4, $0x3f318000
GLOBL exp_c1<>(SB), RODATA|NOPTR, $32
DATA exp_c2<>+0(SB)/4, $0xb95e8083
DATA exp_c2<>+4(SB)/4, $0xb95e8083
DATA exp_c2<>+8(SB)/4, $0xb95e8083
DATA exp_c2<>+12(SB)/4, $0xb95e8083
DATA exp_c2<>+16(SB)/4, $0xb95e8083
DATA exp_c2<>+20(SB)/4, $0xb95e8083
DATA exp_c2<>+24(SB)/4, $0xb95e8083
DATA exp_c2<>+28(SB)/4, $0xb95e8083
GLOBL exp_c2<>(SB), RODATA|NOPTR, $32
DATA exp_p0<>+0(SB)/4, $0x39506967
DATA exp_p0<>+4(SB)/4, $0x39506967
DATA exp_p0<>+8(SB)/4, $0x39506967
DATA exp_p0<>+12(SB)/4, $0x39506967
DATA exp_p0<>+16(SB)/4, $0x39506967
DATA exp_p0<>+20(SB)/4, $0x39506967
DATA exp_p0<>+24(SB)/4, $0x39506967
DATA exp_p0<>+28(SB)/4, $0x39506967
GLOBL exp_p0<>(SB), RODATA|NOPTR, $32
DATA exp_p1<>+0(SB)/4, $0x3ab743ce
DATA exp_p1<>+4(SB)/4, $0x3ab743ce
DATA exp_p1<>+8(SB)/4, $0x3ab743ce
DATA exp_p1<>+12(SB)/4, $0x3ab743ce
DATA exp_p1<>+16(SB)/4, $0x3ab743ce
DATA exp_p1<>+20(SB)/4, $0x3ab743ce
DATA exp_p1<>+24(SB)/4, $0x3ab743ce
DATA exp_p1<>+28(SB)/4, $0x3ab743ce
GLOBL exp_p1<>(SB), RODATA|NOPTR, $32
DATA exp_p2<>+0(SB)/4, $0x3c088908
DATA exp_p2<>+4(SB)/4, $0x3c088908
DATA exp_p2<>+8(SB)/4, $0x3c088908
DATA exp_p2<>+12(SB)/4, $0x3c088908
DATA exp_p2<>+16(SB)/4, $0x3c088908
DATA exp_p2<>+20(SB)/4, $0x3c088908
DATA exp_p2<>+24(SB)/4, $0x3c088908
DATA exp_p2<>+28(SB)/4, $0x3c088908
GLOBL exp_p2<>(SB), RODATA|NOPTR, $32
DATA exp_p3<>+0(SB)/4, $0x3d2aa9c1
DATA exp_p3<>+4(SB)/4, $0x3d2aa9c1
DATA exp_p3<>+8(SB)/4, $0x3d2aa9c1
DATA exp_p3<>+12(SB)/4, $0x3d2aa9c1
DATA exp_p3<>+16(SB)/4, $0x3d2aa9c1
DATA exp_p3<>+20(SB)/4, $0x3d2aa9c1
DATA exp_p3<>+24(SB)/4, $0x3d2aa9c1
DATA exp_p3<>+28(SB)/4, $0x3d2aa9c1
GLOBL exp_p3<>(SB), RODATA|NOPTR, $32
DATA exp_p4<>+0(SB)/4, $0x3e2aaaaa
DATA exp_p4<>+4(SB)/4, $0x3e2aaaaa
DATA exp_p4<>+8(SB)/4, $0x3e2aaaaa
DATA exp_p4<>+12(SB)/4, $0x3e2aaaaa
DATA exp_p4<>+16(SB)/4, $0x3e2aaaaa
DATA exp_p4<>+20(SB)/4, $0x3e2aaaaa
DATA exp_p4<>+24(SB)/4, $0x3e2aaaaa
DATA exp_p4<>+28(SB)/4, $0x3e2aaaaa
GLOBL exp_p4<>(SB), RODATA|NOPTR, $32
DATA exp_p5<>+0(SB)/4, $0x3f000000
DATA exp_p5<>+4(SB)/4, $0x3f000000
DATA exp_p5<>+8(SB)/4, $0x3f000000
DATA exp_p5<>+12(SB)/4, $0x3f000000
DATA exp_p5<>+16(SB)/4, $0x3f000000
DATA exp_p5<>+20(SB)/4, $0x3f000000
DATA exp_p5<>+24(SB)/4, $0x3f000000
DATA exp_p5<>+28(SB)/4, $0x3f000000
GLOBL exp_p5<>(SB), RODATA|NOPTR, $32
DATA exp_one<>+0(SB)/4, $0x3f800000
DATA exp_one<>+4(SB)/4, $0x3f800000
DATA exp_one<>+8(SB)/4, $0x3f800000
DATA exp_one<>+12(SB)/4, $0x3f800000
DATA exp_one<>+16(SB)/4, $0x3f800000
DATA exp_one<>+20(SB)/4, $0x3f800000
DATA exp_one<>+24(SB)/4, $0x3f800000
DATA exp_one<>+28(SB)/4, $0x3f800000
GLOBL exp_one<>(SB), RODATA|NOPTR, $32
DATA exp_hi<>+0(SB)/4, $0x42b1999a
DATA exp_hi<>+4(SB)/4, $0x42b1999a
DATA exp_hi<>+8(SB)/4, $0x42b1999a
DATA exp_hi<>+12(SB)/4, $0x42b1999a
DATA exp_hi<>+16(SB)/4, $0x42b1999a
DATA exp_hi<>+20(SB)/4, $0x42b1999a
DATA exp_hi<>+24(SB)/4, $0x42b1999a
DATA exp_hi<>+28(SB)/4, $0x42b1999a
GLOBL exp_hi<>(SB), RODATA|NOPTR, $32
DATA exp_lo<>+0(SB)/4, $0xc2d00000
DATA exp_lo<>+4(SB)/4, $0xc2d00000
DATA exp_lo<>+8(SB)/4, $0xc2d00000
DATA exp_lo<>+12(SB)/4, $0xc2d00000
DATA exp_lo<>+16(SB)/4, $0xc2d00000
DATA exp_lo<>+20(SB)/4, $0xc2d00000
DATA exp_lo<>+24(SB)/4, $0xc2d00000
DATA exp_lo<>+28(SB)/4, $0xc2d00000
GLOBL exp_lo<>(SB), RODATA|NOPTR, $32

DATA exp_i127<>+0(SB)/4, $127
DATA exp_i127<>+4(SB)/4, $127
DATA exp_i127<>+8(SB)/4, $127
DATA exp_i127<>+12(SB)/4, $127
DATA exp_i127<>+16(SB)/4, $127
DATA exp_i127<>+20(SB)/4, $127
DATA exp_i127<>+24(SB)/4, $127
DATA exp_i127<>+28(SB)/4, $127
GLOBL exp_i127<>(SB), RODATA|NOPTR, $32
DATA exp_sign<>+0(SB)/4, $0x80000000
DATA exp_sign<>+4(SB)/4, $0x80000000
DATA exp_sign<>+8(SB)/4, $0x80000000
DATA exp_sign<>+12(SB)/4, $0x80000000
DATA exp_sign<>+16(SB)/4, $0x80000000
DATA exp_sign<>+20(SB)/4, $0x80000000
DATA exp_sign<>+24(SB)/4, $0x80000000
DATA exp_sign<>+28(SB)/4, $0x80000000
GLOBL exp_sign<>(SB), RODATA|NOPTR, $32

// EXP512 sets x = exp(x), using n, t and p as scratch; the constants are in
// Z16–Z27 (see LOADC512).
#define EXP512(x, n, t, p) \
	VMINPS x, Z26, x \
	VMAXPS x, Z27, x \
	VMULPS Z16, x, n \
	VRNDSCALEPS $0, n, n \
	VFNMADD231PS Z17, n, x \
	VFNMADD231PS Z18, n, x \
	VMULPS x, x, t \
	VMOVAPS Z20, p \
	VFMADD231PS Z19, x, p \
	VFMADD213PS Z21, x, p \
	VFMADD213PS Z22, x, p \
	VFMADD213PS Z23, x, p \
	VFMADD213PS Z24, x, p \
	VFMADD213PS x, t, p \
	VADDPS Z25, p, p \
	VSCALEFPS n, p, x

#define LOADC512 \
	VBROADCASTSS exp_log2e<>(SB), Z16 \
	VBROADCASTSS exp_c1<>(SB), Z17 \
	VBROADCASTSS exp_c2<>(SB), Z18 \
	VBROADCASTSS exp_p0<>(SB), Z19 \
	VBROADCASTSS exp_p1<>(SB), Z20 \
	VBROADCASTSS exp_p2<>(SB), Z21 \
	VBROADCASTSS exp_p3<>(SB), Z22 \
	VBROADCASTSS exp_p4<>(SB), Z23 \
	VBROADCASTSS exp_p5<>(SB), Z24 \
	VBROADCASTSS exp_one<>(SB), Z25 \
	VBROADCASTSS exp_hi<>(SB), Z26 \
	VBROADCASTSS exp_lo<>(SB), Z27 \
	VBROADCASTSS exp_sign<>(SB), Z31

// HSUM512 leaves in X15 the sum of the 16 lanes of Z15 (clobbers X1).
#define HSUM512 \
	VEXTRACTF64X4 $1, Z15, Y1 \
	VADDPS Y1, Y15, Y15 \
	VEXTRACTF128 $1, Y15, X1 \
	VADDPS X1, X15, X15 \
	VSHUFPS $0x4e, X15, X15, X1 \
	VADDPS X1, X15, X15 \
	VSHUFPS $0xb1, X15, X15, X1 \
	VADDSS X1, X15, X15

// EXP256 sets x = exp(x), using n, t and p as scratch; Y14 and Y15 hold the
// clamp bounds.
#define EXP256(x, n, t, p) \
	VMINPS x, Y14, x \
	VMAXPS x, Y15, x \
	VMULPS exp_log2e<>(SB), x, n \
	VROUNDPS $0, n, n \
	VFNMADD231PS exp_c1<>(SB), n, x \
	VFNMADD231PS exp_c2<>(SB), n, x \
	VMULPS x, x, t \
	VMOVUPS exp_p1<>(SB), p \
	VFMADD231PS exp_p0<>(SB), x, p \
	VFMADD213PS exp_p2<>(SB), x, p \
	VFMADD213PS exp_p3<>(SB), x, p \
	VFMADD213PS exp_p4<>(SB), x, p \
	VFMADD213PS exp_p5<>(SB), x, p \
	VFMADD213PS x, t, p \
	VADDPS exp_one<>(SB), p, p \
	VCVTPS2DQ n, n \
	VPSRAD $1, n, t \
	VPSUBD t, n, n \
	VPADDD exp_i127<>(SB), t, t \
	VPSLLD $23, t, t \
	VPADDD exp_i127<>(SB), n, n \
	VPSLLD $23, n, n \
	VMULPS t, p, p \
	VMULPS n, p, x

#define LOADC256 \
	VMOVUPS exp_hi<>(SB), Y14 \
	VMOVUPS exp_lo<>(SB), Y15

// HSUM256 leaves in X10 the sum of the 8 lanes of Y10 (clobbers X1).
#define HSUM256 \
	VEXTRACTF128 $1, Y10, X1 \
	VADDPS X1, X10, X10 \
	VSHUFPS $0x4e, X10, X10, X1 \
	VADDPS X1, X10, X10 \
	VSHUFPS $0xb1, X10, X10, X1 \
	VADDSS X1, X10, X10

// func expAff512(dst, src *float32, n int, a, b, c float32) float32
// dst[i] = c·exp(a·src[i] − b); returns Σ exp(a·src[i] − b). n % 16 == 0.
TEXT ·expAff512(SB), NOSPLIT, $0-44
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	LOADC512
	VBROADCASTSS a+24(FP), Z28
	VBROADCASTSS b+28(FP), Z29
	VBROADCASTSS c+32(FP), Z30
	VPXORD Z15, Z15, Z15
	TESTQ CX, CX
	JEQ expaff512_done
expaff512_loop:
	VMOVUPS (SI), Z0
	VMULPS Z28, Z0, Z0
	VSUBPS Z29, Z0, Z0
	EXP512(Z0, Z1, Z2, Z3)
	VADDPS Z0, Z15, Z15
	VMULPS Z30, Z0, Z0
	VMOVUPS Z0, (DI)
	ADDQ $64, SI
	ADDQ $64, DI
	SUBQ $16, CX
	JNE expaff512_loop
expaff512_done:
	HSUM512
	VZEROUPPER
	MOVSS X15, ret+40(FP)
	RET

// func expSum512(src *float32, n int, b float32) float32
// returns Σ exp(src[i] − b). n % 16 == 0.
TEXT ·expSum512(SB), NOSPLIT, $0-28
	MOVQ src+0(FP), SI
	MOVQ n+8(FP), CX
	LOADC512
	VBROADCASTSS b+16(FP), Z29
	VPXORD Z15, Z15, Z15
	VPXORD Z14, Z14, Z14
	TESTQ CX, CX
	JEQ expsum512_done
	CMPQ CX, $32
	JLT expsum512_one
expsum512_loop:
	VMOVUPS (SI), Z0
	VMOVUPS 64(SI), Z4
	VSUBPS Z29, Z0, Z0
	VSUBPS Z29, Z4, Z4
	EXP512(Z0, Z1, Z2, Z3)
	EXP512(Z4, Z5, Z6, Z7)
	VADDPS Z0, Z15, Z15
	VADDPS Z4, Z14, Z14
	ADDQ $128, SI
	SUBQ $32, CX
	CMPQ CX, $32
	JGE expsum512_loop
	TESTQ CX, CX
	JEQ expsum512_done
expsum512_one:
	VMOVUPS (SI), Z0
	VSUBPS Z29, Z0, Z0
	EXP512(Z0, Z1, Z2, Z3)
	VADDPS Z0, Z15, Z15
expsum512_done:
	VADDPS Z14, Z15, Z15
	HSUM512
	VZEROUPPER
	MOVSS X15, ret+24(FP)
	RET

// func max512(src *float32, n int) float32
// returns max src[i]. n ≥ 16, n % 16 == 0.
TEXT ·max512(SB), NOSPLIT, $0-20
	MOVQ src+0(FP), SI
	MOVQ n+8(FP), CX
	VMOVUPS (SI), Z0
	ADDQ $64, SI
	SUBQ $16, CX
	JEQ max512_done
max512_loop:
	VMAXPS (SI), Z0, Z0
	ADDQ $64, SI
	SUBQ $16, CX
	JNE max512_loop
max512_done:
	VEXTRACTF64X4 $1, Z0, Y1
	VMAXPS Y1, Y0, Y0
	VEXTRACTF128 $1, Y0, X1
	VMAXPS X1, X0, X0
	VSHUFPS $0x4e, X0, X0, X1
	VMAXPS X1, X0, X0
	VSHUFPS $0xb1, X0, X0, X1
	VMAXSS X1, X0, X0
	VZEROUPPER
	MOVSS X0, ret+16(FP)
	RET

// func swiglu512(h, gt, u *float32, n int)
// h[i] = g[i] / (1 + exp(−g[i])) · u[i]. n % 16 == 0.
TEXT ·swiglu512(SB), NOSPLIT, $0-32
	MOVQ h+0(FP), DI
	MOVQ gt+8(FP), SI
	MOVQ u+16(FP), DX
	MOVQ n+24(FP), CX
	LOADC512
	TESTQ CX, CX
	JEQ swiglu512_done
swiglu512_loop:
	VMOVUPS (SI), Z4
	VPXORD Z31, Z4, Z0
	EXP512(Z0, Z1, Z2, Z3)
	VADDPS Z25, Z0, Z0
	VDIVPS Z0, Z4, Z4
	VMULPS (DX), Z4, Z4
	VMOVUPS Z4, (DI)
	ADDQ $64, SI
	ADDQ $64, DI
	ADDQ $64, DX
	SUBQ $16, CX
	JNE swiglu512_loop
swiglu512_done:
	VZEROUPPER
	RET

// func swigluBwd512(dg, du, d, gt, u *float32, n int)
// s = 1/(1 + exp(−g)); du = d·(g·s); dg = d·u·s·(1 + g·(1 − s)). n % 16 == 0.
TEXT ·swigluBwd512(SB), NOSPLIT, $0-48
	MOVQ dg+0(FP), DI
	MOVQ du+8(FP), R8
	MOVQ d+16(FP), R9
	MOVQ gt+24(FP), SI
	MOVQ u+32(FP), DX
	MOVQ n+40(FP), CX
	LOADC512
	TESTQ CX, CX
	JEQ swiglubwd512_done
swiglubwd512_loop:
	VMOVUPS (SI), Z4
	VPXORD Z31, Z4, Z0
	EXP512(Z0, Z1, Z2, Z3)
	VADDPS Z25, Z0, Z0
	VDIVPS Z0, Z25, Z5
	VMOVUPS (R9), Z6
	VMULPS Z5, Z4, Z7
	VMULPS Z7, Z6, Z7
	VMOVUPS Z7, (R8)
	VMULPS (DX), Z6, Z6
	VMULPS Z5, Z6, Z6
	VSUBPS Z5, Z25, Z8
	VMULPS Z8, Z4, Z8
	VADDPS Z25, Z8, Z8
	VMULPS Z8, Z6, Z6
	VMOVUPS Z6, (DI)
	ADDQ $64, SI
	ADDQ $64, DI
	ADDQ $64, DX
	ADDQ $64, R8
	ADDQ $64, R9
	SUBQ $16, CX
	JNE swiglubwd512_loop
swiglubwd512_done:
	VZEROUPPER
	RET

// func expAff256(dst, src *float32, n int, a, b, c float32) float32
TEXT ·expAff256(SB), NOSPLIT, $0-44
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	LOADC256
	VBROADCASTSS a+24(FP), Y13
	VBROADCASTSS b+28(FP), Y12
	VBROADCASTSS c+32(FP), Y11
	VXORPS Y10, Y10, Y10
	TESTQ CX, CX
	JEQ expaff256_done
expaff256_loop:
	VMOVUPS (SI), Y0
	VMULPS Y13, Y0, Y0
	VSUBPS Y12, Y0, Y0
	EXP256(Y0, Y1, Y2, Y3)
	VADDPS Y0, Y10, Y10
	VMULPS Y11, Y0, Y0
	VMOVUPS Y0, (DI)
	ADDQ $32, SI
	ADDQ $32, DI
	SUBQ $8, CX
	JNE expaff256_loop
expaff256_done:
	HSUM256
	VZEROUPPER
	MOVSS X10, ret+40(FP)
	RET

// func expSum256(src *float32, n int, b float32) float32
TEXT ·expSum256(SB), NOSPLIT, $0-28
	MOVQ src+0(FP), SI
	MOVQ n+8(FP), CX
	LOADC256
	VBROADCASTSS b+16(FP), Y12
	VXORPS Y10, Y10, Y10
	VXORPS Y9, Y9, Y9
	TESTQ CX, CX
	JEQ expsum256_done
	CMPQ CX, $16
	JLT expsum256_one
expsum256_loop:
	VMOVUPS (SI), Y0
	VMOVUPS 32(SI), Y4
	VSUBPS Y12, Y0, Y0
	VSUBPS Y12, Y4, Y4
	EXP256(Y0, Y1, Y2, Y3)
	EXP256(Y4, Y5, Y6, Y7)
	VADDPS Y0, Y10, Y10
	VADDPS Y4, Y9, Y9
	ADDQ $64, SI
	SUBQ $16, CX
	CMPQ CX, $16
	JGE expsum256_loop
	TESTQ CX, CX
	JEQ expsum256_done
expsum256_one:
	VMOVUPS (SI), Y0
	VSUBPS Y12, Y0, Y0
	EXP256(Y0, Y1, Y2, Y3)
	VADDPS Y0, Y10, Y10
expsum256_done:
	VADDPS Y9, Y10, Y10
	HSUM256
	VZEROUPPER
	MOVSS X10, ret+24(FP)
	RET

// func max256(src *float32, n int) float32
// n ≥ 8, n % 8 == 0.
TEXT ·max256(SB), NOSPLIT, $0-20
	MOVQ src+0(FP), SI
	MOVQ n+8(FP), CX
	VMOVUPS (SI), Y0
	ADDQ $32, SI
	SUBQ $8, CX
	JEQ max256_done
max256_loop:
	VMAXPS (SI), Y0, Y0
	ADDQ $32, SI
	SUBQ $8, CX
	JNE max256_loop
max256_done:
	VEXTRACTF128 $1, Y0, X1
	VMAXPS X1, X0, X0
	VSHUFPS $0x4e, X0, X0, X1
	VMAXPS X1, X0, X0
	VSHUFPS $0xb1, X0, X0, X1
	VMAXSS X1, X0, X0
	VZEROUPPER
	MOVSS X0, ret+16(FP)
	RET

// func swiglu256(h, gt, u *float32, n int)
TEXT ·swiglu256(SB), NOSPLIT, $0-32
	MOVQ h+0(FP), DI
	MOVQ gt+8(FP), SI
	MOVQ u+16(FP), DX
	MOVQ n+24(FP), CX
	LOADC256
	VMOVUPS exp_sign<>(SB), Y9
	VMOVUPS exp_one<>(SB), Y8
	TESTQ CX, CX
	JEQ swiglu256_done
swiglu256_loop:
	VMOVUPS (SI), Y4
	VXORPS Y9, Y4, Y0
	EXP256(Y0, Y1, Y2, Y3)
	VADDPS Y8, Y0, Y0
	VDIVPS Y0, Y4, Y4
	VMULPS (DX), Y4, Y4
	VMOVUPS Y4, (DI)
	ADDQ $32, SI
	ADDQ $32, DI
	ADDQ $32, DX
	SUBQ $8, CX
	JNE swiglu256_loop
swiglu256_done:
	VZEROUPPER
	RET

// func swigluBwd256(dg, du, d, gt, u *float32, n int)
TEXT ·swigluBwd256(SB), NOSPLIT, $0-48
	MOVQ dg+0(FP), DI
	MOVQ du+8(FP), R8
	MOVQ d+16(FP), R9
	MOVQ gt+24(FP), SI
	MOVQ u+32(FP), DX
	MOVQ n+40(FP), CX
	LOADC256
	VMOVUPS exp_sign<>(SB), Y9
	VMOVUPS exp_one<>(SB), Y10
	TESTQ CX, CX
	JEQ swiglubwd256_done
swiglubwd256_loop:
	VMOVUPS (SI), Y4
	VXORPS Y9, Y4, Y0
	EXP256(Y0, Y1, Y2, Y3)
	VADDPS Y10, Y0, Y0
	VDIVPS Y0, Y10, Y5
	VMOVUPS (R9), Y6
	VMULPS Y5, Y4, Y7
	VMULPS Y7, Y6, Y7
	VMOVUPS Y7, (R8)
	VMULPS (DX), Y6, Y6
	VMULPS Y5, Y6, Y6
	VSUBPS Y5, Y10, Y8
	VMULPS Y8, Y4, Y8
	VADDPS Y10, Y8, Y8
	VMULPS Y8, Y6, Y6
	VMOVUPS Y6, (DI)
	ADDQ $32, SI
	ADDQ $32, DI
	ADDQ $32, DX
	ADDQ $32, R8
	ADDQ $32, R9
	SUBQ $8, CX
	JNE swiglubwd256_loop
swiglubwd256_done:
	VZEROUPPER
	RET
