package optim

import (
	"math"
	"runtime"
	"sync"
	"sync/atomic"
)

// ClipGradNorm rescales the gradients in place so that their global L2 norm
// is at most maxNorm, like torch.nn.utils.clip_grad_norm_ (norm_type 2), and
// returns the norm before clipping, which is what the HF Trainer logs as
// grad_norm.
//
// The norm is accumulated in float64 over all values of all tensors (PyTorch
// reduces each tensor in float32, then the per-tensor norms), so it can
// differ from PyTorch's in the last float32 digit. The squares are summed
// in chunks of clipChunk values, on every core (GOMAXPROCS), and the
// chunks' sums are added in order, so the norm does not depend on the
// number of cores. The clip coefficient is
// maxNorm/(norm + 1e-6); when it is below 1 every gradient is multiplied by
// it, rounded to float32, as PyTorch does. When it is 1 or more the
// gradients are left as they are (PyTorch multiplies by the coefficient
// clamped to 1, which changes nothing).
//
// maxNorm ≤ 0 disables clipping but the norm is still computed and
// returned. (The HF Trainer does not call clipping at all when
// max_grad_norm is 0 or None; PyTorch itself would zero every gradient for
// maxNorm = 0.)
//
// A non-finite norm (a NaN or infinite gradient) is returned as is and the
// gradients are not touched. PyTorch with error_if_nonfinite=False, the
// default the HF Trainer uses, would multiply every gradient by the NaN (or
// 0) coefficient, silently destroying the whole update; relupo reports the
// norm instead and leaves the decision (skip the step, stop) to the trainer.
func ClipGradNorm(grads [][]float32, maxNorm float64) float64 {
	chunks := chunked(grads)
	norm := math.Sqrt(sumChunks(chunks))
	if !(maxNorm > 0) || math.IsNaN(norm) || math.IsInf(norm, 0) {
		return norm
	}
	coef := maxNorm / (norm + 1e-6)
	if coef >= 1 {
		return norm
	}
	c := float32(coef)
	parallelChunks(len(chunks), func(i int) {
		g := chunks[i]
		for j := range g {
			g[j] *= c
		}
	})
	return norm
}

// SumSquares is Σ x² over every value of grads, in float64, computed as
// ClipGradNorm computes it (the same sum, bit for bit, on any number of
// cores).
func SumSquares(grads [][]float32) float64 { return sumChunks(chunked(grads)) }

// chunked cuts the tensors into pieces of at most clipChunk values.
func chunked(grads [][]float32) [][]float32 {
	var chunks [][]float32
	for _, g := range grads {
		for lo := 0; lo < len(g); lo += clipChunk {
			chunks = append(chunks, g[lo:min(lo+clipChunk, len(g))])
		}
	}
	return chunks
}

// sumChunks sums the squares of each chunk in parallel and the chunks'
// sums in order.
func sumChunks(chunks [][]float32) float64 {
	partial := make([]float64, len(chunks))
	parallelChunks(len(chunks), func(i int) { partial[i] = sumSquares(chunks[i]) })
	var sum float64
	for _, s := range partial {
		sum += s
	}
	return sum
}

// clipChunk is how many values each partial sum of squares covers.
const clipChunk = 1 << 16

// sumSquares is Σ g[i]² in float64, in four running sums (a single one
// would wait on each addition's latency).
func sumSquares(g []float32) float64 {
	var s0, s1, s2, s3 float64
	i := 0
	for ; i+4 <= len(g); i += 4 {
		a, b, c, d := float64(g[i]), float64(g[i+1]), float64(g[i+2]), float64(g[i+3])
		s0 += a * a
		s1 += b * b
		s2 += c * c
		s3 += d * d
	}
	for ; i < len(g); i++ {
		x := float64(g[i])
		s0 += x * x
	}
	return (s0 + s1) + (s2 + s3)
}

// parallelChunks calls fn(i) for every i < n on up to GOMAXPROCS
// goroutines, each taking the next chunk as it finishes one.
func parallelChunks(n int, fn func(i int)) {
	workers := min(runtime.GOMAXPROCS(0), n)
	if workers <= 1 {
		for i := range n {
			fn(i)
		}
		return
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				fn(i)
			}
		}()
	}
	wg.Wait()
}
