//go:build amd64 && !purego

package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// specialSlice is randSlice with a tenth of the values replaced by the cases
// rounding must get right: exact ties (both parities), values just around a
// tie, subnormals, signed zeros, infinities, NaNs and the largest float32.
func specialSlice(r *rand.Rand, n int) []float32 {
	s := randSlice(r, n)
	specials := []uint32{0x3f808000, 0x3f818000, 0x3f808001, 0x3f807fff, 0xbf80c000, 0x00400000, 0x80000001,
		0x80000000, 0x7f800000, 0xff800000, 0x7fc00000, 0x7f800001, 0xffbfffff, 0x7f7fffff, 0x00800000}
	for i := range s {
		if r.IntN(10) == 0 {
			s[i] = math.Float32frombits(specials[r.IntN(len(specials))])
		}
	}
	return s
}

// TestPackBF16Asm checks the AVX512_BF16 packers bit for bit against the
// portable ones, whose rounding TestRoundBF16 pins down: the same words,
// padding included, for every kind of edge (odd kc, partial panels, row
// counts off the 16- and 32-row grids).
func TestPackBF16Asm(t *testing.T) {
	if _, ok := cpuHas(); !ok || !cpuHasBF16() {
		t.Skip("no AVX512_BF16")
	}
	r := rand.New(rand.NewPCG(7, 8))
	same := func(t *testing.T, got, want []float32) {
		t.Helper()
		for i := range want {
			if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
				t.Fatalf("word %d: %#08x, want %#08x", i, math.Float32bits(got[i]), math.Float32bits(want[i]))
			}
		}
	}
	for _, kc := range []int{1, 2, 3, 31, 32, 33, 64, 191, 384} {
		for _, cols := range []int{1, 15, 16, 17, 32} {
			t.Run(fmt.Sprintf("B/kc%d/cols%d", kc, cols), func(t *testing.T) {
				ld := max(kc, cols) + 3
				src := specialSlice(r, (max(kc, cols)+1)*ld)
				n := bfRows(kc) * 32
				want, got := specialSlice(r, n), specialSlice(r, n)
				packNBFGo(want, src, ld, kc, cols)
				packNBF512(got, src, ld, kc, cols)
				same(t, got, want)
				packTBFGo(want, src, ld, kc, cols)
				packTBF512(got, src, ld, kc, cols)
				same(t, got, want)
			})
		}
		for _, rows := range []int{1, 12, 16, 31, 32, 33, 100, 192} {
			t.Run(fmt.Sprintf("A/kc%d/rows%d", kc, rows), func(t *testing.T) {
				n := roundUp(rows, 32) * bfRows(kc)
				for _, layout := range []struct{ rsA, csA int }{{kc + 5, 1}, {1, rows + 5}} {
					src := specialSlice(r, (max(rows, kc)+1)*(max(rows, kc)+5))
					want, got := specialSlice(r, n), specialSlice(r, n)
					packABFGo(want, src, layout.rsA, layout.csA, kc, rows)
					packABF512(got, src, layout.rsA, layout.csA, kc, rows)
					same(t, got, want)
				}
			})
		}
	}
}
