//go:build amd64 && !purego

#include "textflag.h"

// AMX-BF16 micro-kernel. The Go assembler has no AMX mnemonics, so every tile
// instruction is spelled out as bytes (VEX-encoded, checked against llvm-mc).
// All memory operands use a SIB byte (mod=00 or mod=01 with disp8 0x40,
// rm=100, scale 1) whose base is SI, DI, BX, R8 or R9 and whose index (the
// row stride) is AX, CX or DX: no RSP/RBP/R12/R13 as base or index, so
// no special SIB cases arise. Registers R8/R9 as base set VEX.B (byte 1
// 0xE2 → 0xC2).
//
// Tiles: tmm0..tmm3 hold C (2×2 tiles of 16×16 float32), tmm4/tmm5 the two
// 16×32 bf16 A tiles (rows 0-15, 16-31), tmm6/tmm7 the two B tiles of
// 16 k-pairs × 16 columns (columns 0-15, 16-31).

// LDTILECFG (AX)
#define LDTILECFG_AX BYTE $0xC4; BYTE $0xE2; BYTE $0x78; BYTE $0x49; BYTE $0x00
// TILERELEASE
#define TILERELEASE BYTE $0xC4; BYTE $0xE2; BYTE $0x78; BYTE $0x49; BYTE $0xC0

// TILELOADD tmm4, (SI)(CX*1): A rows 0-15.
#define TLOAD_T4_SI_CX BYTE $0xC4; BYTE $0xE2; BYTE $0x7B; BYTE $0x4B; BYTE $0x24; BYTE $0x0E
// TILELOADD tmm5, (R8)(CX*1): A rows 16-31.
#define TLOAD_T5_R8_CX BYTE $0xC4; BYTE $0xC2; BYTE $0x7B; BYTE $0x4B; BYTE $0x2C; BYTE $0x08
// TILELOADD tmm6, (DI)(DX*1): B columns 0-15.
#define TLOAD_T6_DI_DX BYTE $0xC4; BYTE $0xE2; BYTE $0x7B; BYTE $0x4B; BYTE $0x34; BYTE $0x17
// TILELOADD tmm7, 64(DI)(DX*1): B columns 16-31.
#define TLOAD_T7_DI64_DX BYTE $0xC4; BYTE $0xE2; BYTE $0x7B; BYTE $0x4B; BYTE $0x7C; BYTE $0x17; BYTE $0x40

// TILELOADD tmm0, (BX)(AX*1) and friends: the four C tiles.
#define TLOAD_T0_BX_AX BYTE $0xC4; BYTE $0xE2; BYTE $0x7B; BYTE $0x4B; BYTE $0x04; BYTE $0x03
#define TLOAD_T1_BX64_AX BYTE $0xC4; BYTE $0xE2; BYTE $0x7B; BYTE $0x4B; BYTE $0x4C; BYTE $0x03; BYTE $0x40
#define TLOAD_T2_R9_AX BYTE $0xC4; BYTE $0xC2; BYTE $0x7B; BYTE $0x4B; BYTE $0x14; BYTE $0x01
#define TLOAD_T3_R964_AX BYTE $0xC4; BYTE $0xC2; BYTE $0x7B; BYTE $0x4B; BYTE $0x5C; BYTE $0x01; BYTE $0x40

// TILESTORED (BX)(AX*1), tmm0 and friends.
#define TSTORE_T0_BX_AX BYTE $0xC4; BYTE $0xE2; BYTE $0x7A; BYTE $0x4B; BYTE $0x04; BYTE $0x03
#define TSTORE_T1_BX64_AX BYTE $0xC4; BYTE $0xE2; BYTE $0x7A; BYTE $0x4B; BYTE $0x4C; BYTE $0x03; BYTE $0x40
#define TSTORE_T2_R9_AX BYTE $0xC4; BYTE $0xC2; BYTE $0x7A; BYTE $0x4B; BYTE $0x14; BYTE $0x01
#define TSTORE_T3_R964_AX BYTE $0xC4; BYTE $0xC2; BYTE $0x7A; BYTE $0x4B; BYTE $0x5C; BYTE $0x01; BYTE $0x40

// TDPBF16PS dst, a, b (dst in ModRM.reg, a in ModRM.rm, b in VEX.vvvv).
#define TDP_T0_T4_T6 BYTE $0xC4; BYTE $0xE2; BYTE $0x4A; BYTE $0x5C; BYTE $0xC4
#define TDP_T1_T4_T7 BYTE $0xC4; BYTE $0xE2; BYTE $0x42; BYTE $0x5C; BYTE $0xCC
#define TDP_T2_T5_T6 BYTE $0xC4; BYTE $0xE2; BYTE $0x4A; BYTE $0x5C; BYTE $0xD5
#define TDP_T3_T5_T7 BYTE $0xC4; BYTE $0xE2; BYTE $0x42; BYTE $0x5C; BYTE $0xDD

// TILEZERO tmm0 … tmm7.
#define TZERO_T0 BYTE $0xC4; BYTE $0xE2; BYTE $0x7B; BYTE $0x49; BYTE $0xC0
#define TZERO_T1 BYTE $0xC4; BYTE $0xE2; BYTE $0x7B; BYTE $0x49; BYTE $0xC8
#define TZERO_T2 BYTE $0xC4; BYTE $0xE2; BYTE $0x7B; BYTE $0x49; BYTE $0xD0
#define TZERO_T3 BYTE $0xC4; BYTE $0xE2; BYTE $0x7B; BYTE $0x49; BYTE $0xD8
#define TZERO_T4 BYTE $0xC4; BYTE $0xE2; BYTE $0x7B; BYTE $0x49; BYTE $0xE0
#define TZERO_T5 BYTE $0xC4; BYTE $0xE2; BYTE $0x7B; BYTE $0x49; BYTE $0xE8
#define TZERO_T6 BYTE $0xC4; BYTE $0xE2; BYTE $0x7B; BYTE $0x49; BYTE $0xF0
#define TZERO_T7 BYTE $0xC4; BYTE $0xE2; BYTE $0x7B; BYTE $0x49; BYTE $0xF8

// amxCfg<> is the 64-byte LDTILECFG operand: palette 1, start row 0, tiles
// 0-7 each 16 rows of 64 bytes (colsb at bytes 16-31, rows at bytes 48-55).
DATA amxCfg<>+0(SB)/8, $1
DATA amxCfg<>+8(SB)/8, $0
DATA amxCfg<>+16(SB)/8, $0x0040004000400040
DATA amxCfg<>+24(SB)/8, $0x0040004000400040
DATA amxCfg<>+32(SB)/8, $0
DATA amxCfg<>+40(SB)/8, $0
DATA amxCfg<>+48(SB)/8, $0x1010101010101010
DATA amxCfg<>+56(SB)/8, $0
GLOBL amxCfg<>(SB), RODATA|NOPTR, $64

// func amxBF16Block(a *uint16, lda, rows int, b *uint16, ldb int, c *float32, ldc int, kc int, store bool)
//
// Register use: SI/R8 A rows 0-15/16-31 at the current k, DI the B panel at
// the current k-pair, BX/R9 C rows 0-15/16-31 of the current row block,
// CX/DX/AX the strides lda/ldb/ldc in bytes, R10 the A row block start,
// R11 the k-step counter, R12 the row counter, R13 16*ldb (one k step of B).
TEXT ·amxBF16Block(SB), NOSPLIT, $0-65
	MOVQ rows+16(FP), R12
	SHRQ $5, R12
	JZ   done
	MOVQ kc+56(FP), R11
	SHRQ $5, R11
	JZ   done

	LEAQ amxCfg<>(SB), AX
	LDTILECFG_AX

	MOVQ a+0(FP), R10
	MOVQ lda+8(FP), CX
	MOVQ ldb+32(FP), DX
	MOVQ c+40(FP), BX
	MOVQ ldc+48(FP), AX
	MOVQ DX, R13
	SHLQ $4, R13

rowblock:
	// C rows 16-31 start 16 rows below BX.
	MOVQ AX, R9
	SHLQ $4, R9
	ADDQ BX, R9
	// With store, the C tiles start at zero instead of C's values.
	MOVBLZX store+64(FP), R11
	TESTQ R11, R11
	JNZ  zeroc
	TLOAD_T0_BX_AX
	TLOAD_T1_BX64_AX
	TLOAD_T2_R9_AX
	TLOAD_T3_R964_AX
	JMP  cready

zeroc:
	TZERO_T0
	TZERO_T1
	TZERO_T2
	TZERO_T3

cready:

	MOVQ R10, SI
	MOVQ CX, R8
	SHLQ $4, R8
	ADDQ SI, R8
	MOVQ b+24(FP), DI
	MOVQ kc+56(FP), R11
	SHRQ $5, R11

kloop:
	TLOAD_T4_SI_CX
	TLOAD_T6_DI_DX
	TLOAD_T5_R8_CX
	TLOAD_T7_DI64_DX
	TDP_T0_T4_T6
	TDP_T1_T4_T7
	TDP_T2_T5_T6
	TDP_T3_T5_T7
	ADDQ $64, SI
	ADDQ $64, R8
	ADDQ R13, DI
	DECQ R11
	JNZ  kloop

	TSTORE_T0_BX_AX
	TSTORE_T1_BX64_AX
	TSTORE_T2_R9_AX
	TSTORE_T3_R964_AX

	// Next row block: A and C move down 32 rows.
	MOVQ CX, R11
	SHLQ $5, R11
	ADDQ R11, R10
	MOVQ AX, R11
	SHLQ $5, R11
	ADDQ R11, BX
	DECQ R12
	JNZ  rowblock

	TILERELEASE

done:
	RET

// func amxTileConfigRelease()
TEXT ·amxTileConfigRelease(SB), NOSPLIT, $0-0
	LEAQ amxCfg<>(SB), AX
	LDTILECFG_AX
	TILERELEASE
	RET


// func amxTDPPeak(n int, c *float32)
//
// amxTDPPeak runs n steps of the kernel's four TDPBF16PS on zeroed tiles,
// without loading A or B, and stores the first C tile (16×16 float32, row
// stride 64 bytes) to c: the compute ceiling of the tile unit, for
// benchmarks, and a check of TILEZERO.
TEXT ·amxTDPPeak(SB), NOSPLIT, $0-16
	MOVQ n+0(FP), R11
	LEAQ amxCfg<>(SB), AX
	LDTILECFG_AX
	TZERO_T0
	TZERO_T1
	TZERO_T2
	TZERO_T3
	TZERO_T4
	TZERO_T5
	TZERO_T6
	TZERO_T7
	TESTQ R11, R11
	JZ    store

peak:
	TDP_T0_T4_T6
	TDP_T1_T4_T7
	TDP_T2_T5_T6
	TDP_T3_T5_T7
	DECQ R11
	JNZ  peak

store:
	MOVQ c+8(FP), BX
	MOVQ $64, AX
	TSTORE_T0_BX_AX
	TILERELEASE
	RET
