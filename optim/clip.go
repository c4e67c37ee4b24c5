package optim

import "math"

// ClipGradNorm rescales the gradients in place so that their global L2 norm
// is at most maxNorm, like torch.nn.utils.clip_grad_norm_ (norm_type 2), and
// returns the norm before clipping, which is what the HF Trainer logs as
// grad_norm.
//
// The norm is accumulated in float64 over all values of all tensors (PyTorch
// reduces each tensor in float32, then the per-tensor norms), so it can
// differ from PyTorch's in the last float32 digit. The clip coefficient is
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
	var sum float64
	for _, g := range grads {
		for _, x := range g {
			xf := float64(x)
			sum += xf * xf
		}
	}
	norm := math.Sqrt(sum)
	if !(maxNorm > 0) || math.IsNaN(norm) || math.IsInf(norm, 0) {
		return norm
	}
	coef := maxNorm / (norm + 1e-6)
	if coef >= 1 {
		return norm
	}
	c := float32(coef)
	for _, g := range grads {
		for i := range g {
			g[i] *= c
		}
	}
	return norm
}
