package kernels

import "math"

// Soft-capping, as Gemma-2 applies it to attention scores
// (attn_logit_softcapping) and Gemma-2 and Gemma-3 to the final logits
// (final_logit_softcapping): x ← c·tanh(x/c), which keeps every value inside
// (−c, c) and leaves small ones almost unchanged. Hugging Face computes it as
// three float32 operations, x/c, tanh, ·c; so do these functions.

// tanh32 is tanh of a float32, computed in float64 and rounded.
func tanh32(x float32) float32 { return float32(math.Tanh(float64(x))) }

// softcap returns c·tanh(x/c), rounded to float32 after each operation.
func softcap(x, c float32) float32 { return c * tanh32(x/c) }

// softcapBlock is how many values SoftcapRow and SoftcapSoftmaxGrad handle
// at a time in their stack buffers.
const softcapBlock = 512

// SoftcapRow caps x in place: x[i] = c·tanh(x[i]/c), c > 0. It evaluates
// tanh(y) as 2/(1 + e^(−2y)) − 1 with the kernel path's vector exp, which
// over a vocabulary of logits is several times faster than math.Tanh; the
// result is within 2e-7·c of the float64 tanh (the cancellation in
// 2/(1+e) − 1 near 0 is that large in absolute terms, and PyTorch's own
// float32 tanh rounds to 6e-8 relative, so the two agree to a few float32
// ulps of c).
func SoftcapRow(x []float32, c float32) {
	var e [softcapBlock]float32
	for lo := 0; lo < len(x); lo += softcapBlock {
		blk := x[lo:min(lo+softcapBlock, len(x))]
		eb := e[:len(blk)]
		for i, v := range blk {
			eb[i] = -2 * (v / c)
		}
		expAffine(eb, eb, 1, 0, 1) // e^(−2y)
		for i, ev := range eb {
			blk[i] = c * (2/(1+ev) - 1)
		}
	}
}

// SoftcapSoftmaxGrad is SoftmaxGrad for logits that went through SoftcapRow:
// x holds the capped logits z = c·tanh(l/c) of one row, and lse their
// log-sum-exp. It turns x, in place, into the gradient of g·log_softmax(z)[label]
// with respect to the uncapped logits l: g·(1[j = label] − e^(z[j] − lse))·(1 − (z[j]/c)²),
// where 1 − (z/c)² = 1 − tanh² is the derivative of the cap.
func SoftcapSoftmaxGrad(x []float32, lse float32, label int, g, c float32) {
	var d [softcapBlock]float32
	for lo := 0; lo < len(x); lo += softcapBlock {
		blk := x[lo:min(lo+softcapBlock, len(x))]
		db := d[:len(blk)]
		for i, z := range blk {
			t := z / c
			db[i] = 1 - t*t
		}
		expAffine(blk, blk, 1, lse, -g)
		if label >= lo && label < lo+len(blk) {
			blk[label-lo] += g
		}
		for i := range blk {
			blk[i] *= db[i]
		}
	}
}
