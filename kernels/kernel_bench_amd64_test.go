//go:build amd64 && !purego

package kernels

import (
	"fmt"
	"runtime"
	"syscall"
	"testing"
)

// threadCPU returns the CPU time the calling thread has used, in seconds
// (Linux; 0 elsewhere), to time kernels on a loaded machine.
func threadCPU() float64 {
	var ru syscall.Rusage
	if syscall.Getrusage(1 /* RUSAGE_THREAD */, &ru) != nil {
		return 0
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}

// BenchmarkKernel512 times the 12×32 AVX-512 micro-kernel alone on one core
// with its operands in cache: the ceiling for the blocked products.
func BenchmarkKernel512(b *testing.B) {
	for _, kc := range []int{64, 128, 192, 256, 384} {
		b.Run(fmt.Sprint("kc", kc), func(b *testing.B) { benchKernel512(b, kc) })
	}
}

func benchKernel512(b *testing.B, kc int) {
	if _, ok := cpuHas(); !ok {
		b.Skip("no AVX-512")
	}
	k := kc
	a := make([]float32, 12*k)
	bp := make([]float32, kc*32)
	c := make([]float32, 12*32)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	t0 := threadCPU()
	for b.Loop() {
		gemmK512x12(&a[0], 4*k, 4, &bp[0], 128, &c[0], 128, kc, ^uint32(0), false)
	}
	flop := 2 * 12 * 32 * float64(kc) * float64(b.N)
	b.ReportMetric(flop/b.Elapsed().Seconds()/1e9, "GFLOP/s")
	if cpu := threadCPU() - t0; cpu > 0 {
		b.ReportMetric(flop/cpu/1e9, "GFLOP/s-cpu")
	}
}
