//go:build amd64 && !purego

package kernels

import (
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
)

// BenchmarkAMXBlock times the AMX-BF16 block kernel alone on one core with
// its operands in cache (A rows×kc bf16, one 32-column B panel, C rows×32
// float32; at most 512 KiB in all, within L2). rows=32 is one 32×32 block per
// call, so it pays the tile configuration for every block; larger rows
// amortize it.
func BenchmarkAMXBlock(b *testing.B) {
	for _, rows := range []int{32, 64, 256} {
		for _, kc := range []int{64, 128, 192, 256, 384, 512} {
			b.Run(fmt.Sprintf("rows%d/kc%d", rows, kc), func(b *testing.B) { benchAMXBlock(b, rows, kc) })
		}
	}
}

func benchAMXBlock(b *testing.B, rows, kc int) {
	amxSkip(b)
	a := make([]uint16, rows*kc)
	bp := make([]uint16, kc*32)
	c := make([]float32, rows*32)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	t0 := threadCPU()
	for b.Loop() {
		amxBF16Block(&a[0], 2*kc, rows, &bp[0], 128, &c[0], 128, kc, false)
	}
	flop := 2 * float64(rows) * 32 * float64(kc) * float64(b.N)
	b.ReportMetric(flop/b.Elapsed().Seconds()/1e9, "GFLOP/s")
	if cpu := threadCPU() - t0; cpu > 0 {
		b.ReportMetric(flop/cpu/1e9, "GFLOP/s-cpu")
	}
}

// BenchmarkAMXTileConfig times LDTILECFG followed by TILERELEASE: the fixed
// cost of one amxBF16Block call beyond its blocks.
func BenchmarkAMXTileConfig(b *testing.B) {
	amxSkip(b)
	for b.Loop() {
		amxTileConfigRelease()
	}
}

// BenchmarkAMXParallel runs a kernel in GOMAXPROCS goroutines at once, each
// locked to its thread with its own operands, and reports the total rate and
// the rate per core of thread CPU time. amx is the block kernel (rows 256,
// kc 256: 160 KiB of operands per goroutine); f32avx512 is the 12×32 float32
// AVX-512 micro-kernel (kc 256) for comparison.
func BenchmarkAMXParallel(b *testing.B) {
	b.Run("amx", func(b *testing.B) {
		amxSkip(b)
		const rows, kc = 256, 256
		benchParallel(b, 2*rows*32*kc, func() func() {
			a := make([]uint16, rows*kc)
			bp := make([]uint16, kc*32)
			c := make([]float32, rows*32)
			return func() { amxBF16Block(&a[0], 2*kc, rows, &bp[0], 128, &c[0], 128, kc, false) }
		})
	})
	b.Run("f32avx512", func(b *testing.B) {
		if _, ok := cpuHas(); !ok {
			b.Skip("no AVX-512")
		}
		const kc = 256
		benchParallel(b, 2*12*32*kc, func() func() {
			a := make([]float32, 12*kc)
			bp := make([]float32, kc*32)
			c := make([]float32, 12*32)
			return func() { gemmK512x12(&a[0], 4*kc, 4, &bp[0], 128, &c[0], 128, kc, ^uint32(0), false) }
		})
	})
}

// benchParallel runs the call that setup returns in every RunParallel
// goroutine and reports GFLOP/s in all and per core of thread CPU time;
// flopPerCall is the work of one call.
func benchParallel(b *testing.B, flopPerCall float64, setup func() func()) {
	var cpuNanos atomic.Int64
	b.RunParallel(func(pb *testing.PB) {
		call := setup()
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		t0 := threadCPU()
		for pb.Next() {
			call()
		}
		cpuNanos.Add(int64((threadCPU() - t0) * 1e9))
	})
	flop := flopPerCall * float64(b.N)
	b.ReportMetric(flop/b.Elapsed().Seconds()/1e9, "GFLOP/s")
	if cpu := float64(cpuNanos.Load()) / 1e9; cpu > 0 {
		b.ReportMetric(flop/cpu/1e9, "GFLOP/s-cpu")
	}
}

// BenchmarkAMXPeak times TDPBF16PS alone (four independent accumulators, no
// loads): the ceiling that BenchmarkAMXBlock is measured against.
func BenchmarkAMXPeak(b *testing.B) {
	amxSkip(b)
	const steps = 1024
	var c [256]float32
	for b.Loop() {
		amxTDPPeak(steps, &c[0])
	}
	flop := 4 * 2 * 16 * 16 * 32 * steps * float64(b.N)
	b.ReportMetric(flop/b.Elapsed().Seconds()/1e9, "GFLOP/s")
}

// BenchmarkAMXDriverLike mimics one (ic, kc) step of the driver: a packed A
// block of 192 rows, 16 panels of B, C 192 rows of a 1024-wide matrix; the
// same*B/C modes reuse one panel of B or one column strip of C, to tell
// cache misses from the tile unit's own rate. On the shared VM all modes
// measured alike (300–650 GFLOP/s, swinging between runs), as did operands
// entirely in L1 once the data was not all zeros: the tile unit's rate,
// not the blocking, bounded the kernel there.
func BenchmarkAMXDriverLike(b *testing.B) {
	for _, mode := range []string{"all", "sameB", "sameC", "sameBC"} {
		for _, kc := range []int{192, 384} {
			ldc := 1024
			b.Run(fmt.Sprintf("%s/kc%d", mode, kc), func(b *testing.B) {
				amxSkip(b)
				const rows, panels = 192, 16
				a := make([]uint16, rows*kc)
				bp := make([]uint16, panels*kc*32)
				c := make([]float32, rows*max(ldc, 32*panels)+32*panels*rows)
				runtime.LockOSThread()
				defer runtime.UnlockOSThread()
				t0 := threadCPU()
				for b.Loop() {
					for p := 0; p < panels; p++ {
						co, bo := 32*p, p*kc*32
						if mode == "sameB" || mode == "sameBC" {
							bo = 0
						}
						if mode == "sameC" || mode == "sameBC" {
							co = 0
						}
						amxBF16Block(&a[0], 2*kc, rows, &bp[bo], 128, &c[co], 4*ldc, kc, false)
					}
				}
				flop := 2 * float64(rows) * 32 * panels * float64(kc) * float64(b.N)
				if cpu := threadCPU() - t0; cpu > 0 {
					b.ReportMetric(flop/cpu/1e9, "GFLOP/s-cpu")
				}
			})
		}
	}
}
