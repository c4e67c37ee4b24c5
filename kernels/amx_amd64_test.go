//go:build amd64 && !purego

package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// amxNaN16 is a bf16 quiet NaN: the fill of A and B bytes the kernel must not
// read. amxNaN32 is the float32 fill of C bytes it must not touch.
const (
	amxNaN16 = 0x7fc0
	amxNaN32 = 0x7fc00001
)

// bf16Value decodes a bf16 bit pattern.
func bf16Value(h uint16) float64 {
	return float64(math.Float32frombits(uint32(h) << 16))
}

// bf16Of rounds f (which must be exactly representable in bf16 for the tests'
// purposes) to a bf16 bit pattern by truncation.
func bf16Of(f float32) uint16 { return uint16(math.Float32bits(f) >> 16) }

// amxOperands holds one product's operands in the kernel's layouts, with
// the strides in elements and the padding filled with NaN.
type amxOperands struct {
	rows, kc      int
	lda, ldb, ldc int // in elements: uint16 for A and B, float32 for C
	a, b          []uint16
	c             []float32
}

// newAMXOperands allocates A (rows×kc, stride lda), a B panel (kc/2 pair
// rows of 32 columns, stride ldb uint16s) and C (rows×32, stride ldc), fills
// the in-range values with gen and every padding element with NaN, and C
// with c0.
func newAMXOperands(rows, kc, lda, ldb, ldc int, gen func() float32, c0 func() float32) *amxOperands {
	o := &amxOperands{rows: rows, kc: kc, lda: lda, ldb: ldb, ldc: ldc,
		a: make([]uint16, rows*lda), b: make([]uint16, kc/2*ldb), c: make([]float32, rows*ldc)}
	for i := range o.a {
		o.a[i] = amxNaN16
	}
	for i := range o.b {
		o.b[i] = amxNaN16
	}
	for i := range o.c {
		o.c[i] = math.Float32frombits(amxNaN32)
	}
	for i := range rows {
		for k := range kc {
			o.a[i*lda+k] = bf16Of(gen())
		}
		for j := range 32 {
			o.c[i*ldc+j] = c0()
		}
	}
	for k := range kc {
		for j := range 32 {
			o.b[o.bIndex(k, j)] = bf16Of(gen())
		}
	}
	return o
}

// bIndex is the position of B[k, j] in the VNNI-pair panel.
func (o *amxOperands) bIndex(k, j int) int { return k/2*o.ldb + 2*j + k%2 }

// run calls the kernel on the operands.
func (o *amxOperands) run() { o.runStore(false) }

// runStore calls the kernel on the operands with its store flag.
func (o *amxOperands) runStore(store bool) {
	amxBF16Block(&o.a[0], 2*o.lda, o.rows, &o.b[0], 2*o.ldb, &o.c[0], 4*o.ldc, o.kc, store)
}

// reference returns C + A·B computed in float64 from the decoded bf16
// values, and for each element the bound on the kernel's rounding error.
//
// Each product of two bf16 values (8 significant bits each) has at most 16
// significant bits, so it is exact in float32 and every rounding error comes
// from the float32 additions: kc products and the initial C summed in any
// order with n = kc additions, each rounding to nearest with unit roundoff
// u = 2⁻²⁴, differ from the exact sum by at most γₙ·(|C|+Σ|aᵢbᵢ|) where
// γₙ = n·u/(1−n·u) (Higham, Accuracy and Stability, §4.2). The test data
// are normal numbers far from the float32 range limits, so the DAZ/FTZ
// behaviour of TDPBF16PS does not matter.
func (o *amxOperands) reference(c []float32) (want, tol []float64) {
	want = make([]float64, o.rows*32)
	tol = make([]float64, o.rows*32)
	n := float64(o.kc)
	gamma := n * 0x1p-24 / (1 - n*0x1p-24)
	for i := range o.rows {
		for j := range 32 {
			s := float64(c[i*o.ldc+j])
			abs := math.Abs(s)
			for k := range o.kc {
				p := bf16Value(o.a[i*o.lda+k]) * bf16Value(o.b[o.bIndex(k, j)])
				s += p
				abs += math.Abs(p)
			}
			want[i*32+j] = s
			tol[i*32+j] = gamma * abs
		}
	}
	return want, tol
}

// check compares the kernel's C with want/tol and checks that the padding of
// C still holds NaN.
func (o *amxOperands) check(t *testing.T, want, tol []float64) {
	t.Helper()
	bad := 0
	for i := range o.rows {
		for j := range o.ldc {
			got := o.c[i*o.ldc+j]
			if j >= 32 {
				if math.Float32bits(got) != amxNaN32 {
					t.Fatalf("C padding [%d,%d] overwritten: %v", i, j, got)
				}
				continue
			}
			if w := want[i*32+j]; !(math.Abs(float64(got)-w) <= tol[i*32+j]) {
				if bad++; bad <= 5 {
					t.Errorf("C[%d,%d] = %v, want %v ± %.3g", i, j, got, w, tol[i*32+j])
				}
			}
		}
	}
	if bad > 5 {
		t.Errorf("%d wrong elements in all", bad)
	}
}

// amxSkip skips the test or benchmark when AMX-BF16 cannot run here.
func amxSkip(tb testing.TB) {
	tb.Helper()
	if !amxEnable() {
		tb.Skip("AMX-BF16 not available (CPU, XCR0 or arch_prctl permission)")
	}
}

// TestAMXBF16Block checks the AMX kernel against a float64 reference for
// several depths, row counts and strides (A strides that are not multiples of
// 64 bytes included), accumulating onto zero and non-zero C, and storing
// over a non-zero C.
func TestAMXBF16Block(t *testing.T) {
	amxSkip(t)
	tests := []struct {
		rows, kc      int
		lda, ldb, ldc int // extra elements beyond kc, 64 and 32
		nonZeroC      bool
		store         bool
	}{
		{32, 32, 0, 0, 0, false, false},
		{32, 32, 0, 0, 0, true, false},
		{32, 64, 0, 0, 0, true, false},
		{32, 192, 0, 0, 0, true, false},
		{32, 512, 0, 0, 0, true, false},
		{32, 64, 32, 0, 16, true, false},
		{32, 192, 1, 64, 1, true, false},
		{64, 64, 0, 0, 0, true, false},
		{96, 192, 7, 0, 3, true, false},
		{128, 512, 32, 0, 32, true, false},
		{256, 64, 0, 0, 0, false, false},
		{32, 64, 0, 0, 0, true, true},
		{96, 192, 7, 0, 3, true, true},
	}
	for _, tt := range tests {
		name := fmt.Sprintf("rows%d/kc%d/lda+%d/ldb+%d/ldc+%d/c0=%v/store=%v", tt.rows, tt.kc, tt.lda, tt.ldb, tt.ldc, tt.nonZeroC, tt.store)
		t.Run(name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(uint64(tt.rows), uint64(tt.kc)))
			gen := func() float32 { return float32(r.NormFloat64()) }
			c0 := func() float32 { return 0 }
			if tt.nonZeroC {
				c0 = func() float32 { return float32(10 * r.NormFloat64()) }
			}
			o := newAMXOperands(tt.rows, tt.kc, tt.kc+tt.lda, 64+tt.ldb, 32+tt.ldc, gen, c0)
			ref := o.c
			if tt.store {
				ref = make([]float32, len(o.c)) // C's values must not count
			}
			want, tol := o.reference(ref)
			o.runStore(tt.store)
			o.check(t, want, tol)
		})
	}
}

// TestAMXBF16Kernel32x32 checks the one-block entry point, and that zero rows
// or depth leave C alone.
func TestAMXBF16Kernel32x32(t *testing.T) {
	amxSkip(t)
	r := rand.New(rand.NewPCG(1, 2))
	gen := func() float32 { return float32(r.NormFloat64()) }
	o := newAMXOperands(32, 128, 128, 64, 40, gen, gen)
	want, tol := o.reference(o.c)
	amxBF16Kernel32x32(&o.a[0], 2*o.lda, &o.b[0], 2*o.ldb, &o.c[0], 4*o.ldc, o.kc)
	o.check(t, want, tol)

	before := append([]float32(nil), o.c...)
	amxBF16Block(&o.a[0], 2*o.lda, 0, &o.b[0], 2*o.ldb, &o.c[0], 4*o.ldc, o.kc, false)
	amxBF16Block(&o.a[0], 2*o.lda, 32, &o.b[0], 2*o.ldb, &o.c[0], 4*o.ldc, 0, false)
	for i := range before {
		if math.Float32bits(before[i]) != math.Float32bits(o.c[i]) {
			t.Fatalf("empty product changed C[%d]: %v → %v", i, before[i], o.c[i])
		}
	}
}

// TestAMXBF16Concurrent runs the kernel in many goroutines for a while
// (two seconds, a quarter with -short) while the GC runs in a loop and other
// goroutines allocate, so that preemption signals and GC work land during
// kernel calls and goroutines move between threads between calls. With
// small integer operands every sum is exact in float32, so each result must
// equal the reference bit for bit.
func TestAMXBF16Concurrent(t *testing.T) {
	amxSkip(t)
	d := 2 * time.Second
	if testing.Short() {
		d /= 4
	}
	const rows, kc = 64, 512
	r := rand.New(rand.NewPCG(3, 4))
	gen := func() float32 { return float32(r.IntN(9) - 4) }
	proto := newAMXOperands(rows, kc, kc, 64, 32, gen, gen)
	c0 := append([]float32(nil), proto.c...)
	want, _ := proto.reference(c0)
	for i, w := range want {
		if w != float64(float32(w)) || math.Abs(w) > 1<<24 {
			t.Fatalf("reference [%d] = %v is not exact in float32", i, w)
		}
	}

	var stop atomic.Bool
	var calls atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	workers := 4 * runtime.GOMAXPROCS(0)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			o := *proto
			o.a = append([]uint16(nil), proto.a...)
			o.b = append([]uint16(nil), proto.b...)
			o.c = make([]float32, len(c0))
			for n := 0; !stop.Load(); n++ {
				copy(o.c, c0)
				o.run()
				calls.Add(1)
				for i := range rows {
					for j := range 32 {
						if got := o.c[i*o.ldc+j]; float64(got) != want[i*32+j] {
							errs <- fmt.Errorf("worker %d call %d: C[%d,%d] = %v, want %v", w, n, i, j, got, want[i*32+j])
							return
						}
					}
				}
				if n%16 == 0 {
					runtime.Gosched()
				}
			}
		}()
	}
	// The GC in a loop, and allocators that keep it busy.
	wg.Add(1)
	go func() {
		defer wg.Done()
		for !stop.Load() {
			runtime.GC()
		}
	}()
	var sink atomic.Pointer[[]byte]
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; !stop.Load(); n++ {
				buf := make([]byte, 1<<10+n%(1<<16))
				sink.Store(&buf)
			}
		}()
	}
	time.Sleep(d)
	stop.Store(true)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	t.Logf("%d kernel calls in %v by %d goroutines", calls.Load(), d, workers)
}

// TestAMXTileZero checks TILEZERO through amxTDPPeak: zero tiles multiplied
// and accumulated must store zeros over a non-zero buffer.
func TestAMXTileZero(t *testing.T) {
	amxSkip(t)
	var c [256]float32
	for i := range c {
		c[i] = 1
	}
	amxTDPPeak(3, &c[0])
	for i, v := range c {
		if v != 0 {
			t.Fatalf("c[%d] = %v after TILEZERO, want 0", i, v)
		}
	}
}
