package kernels

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// Pool is a fixed set of worker goroutines that execute parallel loops.
// A nil *Pool is valid and runs every loop serially on the caller.
// A Pool must not be used from several goroutines at once.
type Pool struct {
	workers int
	jobs    chan *job
	wg      sync.WaitGroup
	prec    Precision // of the matrix products; see SetPrecision
	prof    *Profile  // see SetProfile
}

type job struct {
	n    int
	next atomic.Int64
	fn   func(i int)
	done sync.WaitGroup
}

func (j *job) work() {
	for {
		i := int(j.next.Add(1) - 1)
		if i >= j.n {
			return
		}
		j.fn(i)
	}
}

// WorkersPerCore bounds the worker threads that options may ask for:
// MaxWorkers is that many per core. A few threads per core can hide
// stalls; many more only cost memory and switching.
const WorkersPerCore = 4

// MaxWorkers is the most worker threads a --threads option may ask for on
// this machine.
func MaxWorkers() int { return WorkersPerCore * runtime.NumCPU() }

// NewPool starts a pool with the given number of workers, counting the
// calling goroutine; workers <= 0 means runtime.GOMAXPROCS(0).
func NewPool(workers int) *Pool {
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	p := &Pool{workers: workers, jobs: make(chan *job)}
	for w := 1; w < workers; w++ {
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			for j := range p.jobs {
				j.work()
				j.done.Done()
			}
		}()
	}
	return p
}

// Workers reports how many goroutines share the work (1 for a nil Pool).
func (p *Pool) Workers() int {
	if p == nil {
		return 1
	}
	return p.workers
}

// Close stops the workers. The pool must not be used afterwards.
func (p *Pool) Close() {
	if p == nil || p.jobs == nil {
		return
	}
	close(p.jobs)
	p.wg.Wait()
	p.jobs = nil
}

// For calls fn(i) for every i in [0, n), spreading the calls over the pool's
// workers, and returns when all have finished. Calls must be independent.
func (p *Pool) For(n int, fn func(i int)) {
	if n <= 0 {
		return
	}
	if p != nil && p.prof != nil { // a loop outside the kernel calls
		defer p.prof.Stop(p.prof.Start(), PartElementwise, 0)
	}
	if p == nil || p.workers == 1 || n == 1 {
		for i := 0; i < n; i++ {
			fn(i)
		}
		return
	}
	j := &job{n: n, fn: fn}
	helpers := min(p.workers-1, n-1)
	j.done.Add(helpers)
	for w := 0; w < helpers; w++ {
		p.jobs <- j
	}
	j.work()
	j.done.Wait()
}

// ForRange splits [0, n) into contiguous chunks of at least grain elements
// (about four per worker) and calls fn(lo, hi) for each chunk in parallel.
func (p *Pool) ForRange(n, grain int, fn func(lo, hi int)) {
	if n <= 0 {
		return
	}
	if grain < 1 {
		grain = 1
	}
	chunks := min(4*p.Workers(), (n+grain-1)/grain)
	if chunks <= 1 {
		fn(0, n)
		return
	}
	size := (n + chunks - 1) / chunks
	p.For((n+size-1)/size, func(c int) {
		lo := c * size
		fn(lo, min(lo+size, n))
	})
}
