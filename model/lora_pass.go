package model

import (
	"fmt"
	"math"

	"github.com/relupo/relupo/kernels"
)

// This file holds the adapters' part of the forward and backward passes.
// A targeted linear layer y = x·Wᵀ (+ b) becomes, as in PEFT,
//
//	y = x·Wᵀ (+ b) + s·(drop(x)·Aᵀ)·Bᵀ
//
// computed as u = s·(drop(x)·Aᵀ) [N, R] (kept for the backward pass), then
// y += u·Bᵀ. The backward pass, given dy:
//
//	dB += dyᵀ·u,  du = s·(dy·B),  dA += duᵀ·drop(x),  dx += drop'(du·A)
//
// where drop' applies the same mask and 1/(1−p) factor as drop.

// The module indices of LoRAModules.
const (
	modQ = iota
	modK
	modV
	modO
	modGate
	modUp
	modDown
	numModules
)

// get returns the adapter of module i (LoRAModules order), or nil.
func (la *LayerAdapter) get(i int) *LoRA {
	switch i {
	case modQ:
		return la.Q
	case modK:
		return la.K
	case modV:
		return la.V
	case modO:
		return la.O
	case modGate:
		return la.Gate
	case modUp:
		return la.Up
	case modDown:
		return la.Down
	}
	return nil
}

// checkAdapter verifies that the adapter a fits configuration c: one
// LayerAdapter per layer, each adapter of the module's shape and of rank
// R.
func (c Config) checkAdapter(a *Adapter) error {
	if len(a.Layers) != c.NumLayers {
		return fmt.Errorf("model: the LoRA adapter has %d layers, the model %d", len(a.Layers), c.NumLayers)
	}
	r := a.Config.R
	for l := range a.Layers {
		for i, name := range LoRAModules {
			lo := a.Layers[l].get(i)
			if lo == nil {
				continue
			}
			out, in := c.loraShape(name)
			if lo.In != in || lo.Out != out || len(lo.A) != r*in || len(lo.B) != out*r {
				return fmt.Errorf("model: LoRA adapter of layer %d %s is [%d, %d] with %d and %d values at rank %d; the model's layer is [%d, %d]",
					l, name, lo.Out, lo.In, len(lo.A), len(lo.B), r, out, in)
			}
		}
	}
	return nil
}

// sameShape reports whether two adapters have the same configuration and
// layout (an adapter and its gradients).
func (a *Adapter) sameShape(b *Adapter) bool {
	if a.Config.R != b.Config.R || len(a.Layers) != len(b.Layers) || len(a.Mem) != len(b.Mem) {
		return false
	}
	for l := range a.Layers {
		for i := 0; i < numModules; i++ {
			x, y := a.Layers[l].get(i), b.Layers[l].get(i)
			if (x == nil) != (y == nil) || x != nil && (x.In != y.In || x.Out != y.Out) {
				return false
			}
		}
	}
	return true
}

// adapt is what one pass over one layer needs to apply its adapters.
type adapt struct {
	la    *LayerAdapter
	scale float32
	drop  dropout
	// u receives s·(drop(x)·Aᵀ) [N, R] per module; scratch buffers: xd
	// [N, max in] for drop(x), t [N, max out] for u·Bᵀ.
	u     *[numModules][]float32
	xd, t []float32
	r     int
}

// input returns drop(x) for module mod: x itself without dropout, or the
// dropped copy in ad.xd.
func (ad *adapt) input(p *kernels.Pool, mod int, x []float32, N, in int) []float32 {
	if ad.drop.p == 0 {
		return x
	}
	xd := ad.xd[:N*in]
	ad.drop.apply(p, ad.drop.key(mod), xd, x)
	return xd
}

// inner computes and keeps u = s·(drop(x)·Aᵀ) for module mod (x [N, in]),
// when the module has an adapter, and returns it (nil otherwise).
func (ad *adapt) inner(p *kernels.Pool, mod int, x []float32, N int) []float32 {
	if ad == nil {
		return nil
	}
	lo := ad.la.get(mod)
	if lo == nil {
		return nil
	}
	u := ad.u[mod][:N*ad.r]
	kernels.MatMulNT(p, u, ad.input(p, mod, x, N, lo.In), lo.A, nil, N, ad.r, lo.In)
	scaleSlice(p, u, ad.scale)
	return u
}

// apply adds module mod's adapter output to y: row i of the product goes to
// y[i·ldy+off : i·ldy+off+out] (ldy = out, off = 0 for a whole output; the
// gate or up half of the fused gate/up rows otherwise).
func (ad *adapt) apply(p *kernels.Pool, mod int, y []float32, ldy, off int, x []float32, N int) {
	u := ad.inner(p, mod, x, N)
	if u == nil {
		return
	}
	lo := ad.la.get(mod)
	out := lo.Out
	t := ad.t[:N*out]
	kernels.MatMulNT(p, t, u, lo.B, nil, N, out, ad.r)
	addRows(p, y, ldy, off, t, N, out)
}

// addRows adds t [N, out] to the columns off..off+out of y [N, ldy].
func addRows(p *kernels.Pool, y []float32, ldy, off int, t []float32, N, out int) {
	if ldy == out && off == 0 {
		kernels.Add(p, y[:N*out], t)
		return
	}
	p.ForRange(N, max(1, 8192/max(out, 1)), func(lo, hi int) {
		for i := lo; i < hi; i++ {
			yy, tt := y[i*ldy+off:i*ldy+off+out], t[i*out:(i+1)*out]
			for j := range yy {
				yy[j] += tt[j]
			}
		}
	})
}

// scaleSlice multiplies x by s (nothing to do for s = 1: x·1 is x).
func scaleSlice(p *kernels.Pool, x []float32, s float32) {
	if s == 1 {
		return
	}
	p.ForRange(len(x), 8192, func(lo, hi int) {
		xx := x[lo:hi]
		for i := range xx {
			xx[i] *= s
		}
	})
}

// loraGrad is where the adapters' backward pass writes: the gradients'
// LayerAdapter (nil: propagate dx only) and scratch du [N, R].
type loraGrad struct {
	g  *LayerAdapter
	du []float32
}

// backward runs module mod's adapter backward: dy holds ∂L/∂y, row i at
// dy[i·ldy+off : +out]; x is the module's input [N, in] from the forward
// pass, u its kept inner product. It accumulates dA and dB into lg.g (when
// set) and adds the input gradient to dx [N, in].
func (ad *adapt) backward(p *kernels.Pool, lg *loraGrad, mod int, dx, dy []float32, ldy, off int, x []float32, N int) {
	if ad == nil {
		return
	}
	lo := ad.la.get(mod)
	if lo == nil {
		return
	}
	r, in, out := ad.r, lo.In, lo.Out
	u := ad.u[mod][:N*r]
	if ldy != out || off != 0 {
		t := ad.t[:N*out]
		p.ForRange(N, max(1, 8192/max(out, 1)), func(a, b int) {
			for i := a; i < b; i++ {
				copy(t[i*out:(i+1)*out], dy[i*ldy+off:i*ldy+off+out])
			}
		})
		dy = t
	} else {
		dy = dy[:N*out]
	}
	var g *LoRA
	if lg.g != nil {
		g = lg.g.get(mod)
	}
	if g != nil {
		kernels.MatMulTNAcc(p, g.B, dy, u, out, r, N)
	}
	du := lg.du[:N*r]
	kernels.MatMulNN(p, du, dy, lo.B, N, r, out)
	scaleSlice(p, du, ad.scale)
	if g != nil {
		kernels.MatMulTNAcc(p, g.A, du, ad.input(p, mod, x, N, in), r, in, N)
	}
	if ad.drop.p == 0 {
		kernels.MatMulNNAcc(p, dx[:N*in], du, lo.A, N, in, r)
		return
	}
	dxd := ad.xd[:N*in]
	kernels.MatMulNN(p, dxd, du, lo.A, N, in, r)
	ad.drop.applyAcc(p, ad.drop.key(mod), dx[:N*in], dxd)
}

// dropout is the LoRA dropout of one layer: PEFT's nn.Dropout on each
// adapter's input, which zeroes an entry with probability p and scales the
// kept ones by 1/(1−p). Each (layer, module, entry) draws from a
// counter-based hash of the Forward's Workspace.DropoutSeed, so the
// backward pass and a checkpointed layer's recompute see the same mask
// without storing it. The stream is relupo's own (SplitMix64), not
// PyTorch's: the masks differ from PEFT's for the same seed.
type dropout struct {
	p     float32
	seed  uint64 // the layer's stream
	thr   uint64 // drop when the hash's top 24 bits are below thr
	scale float32
}

// newDropout returns layer l's dropout of probability p from seed (p = 0:
// none).
func newDropout(p float64, seed uint64, l int) dropout {
	if p <= 0 {
		return dropout{}
	}
	return dropout{p: float32(p), seed: splitmix64(seed ^ splitmix64(uint64(l))),
		thr: uint64(math.Ceil(p * (1 << 24))), scale: float32(1 / (1 - p))}
}

// key returns the mask stream of module mod.
func (d dropout) key(mod int) uint64 { return splitmix64(d.seed + uint64(mod)) }

// keep reports whether entry i of the stream key is kept.
func (d dropout) keep(key uint64, i int) bool {
	return splitmix64(key+uint64(i))>>40 >= d.thr
}

// apply writes the dropped x into dst (same length).
func (d dropout) apply(p *kernels.Pool, key uint64, dst, x []float32) {
	p.ForRange(len(x), 4096, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			if d.keep(key, i) {
				dst[i] = x[i] * d.scale
			} else {
				dst[i] = 0
			}
		}
	})
}

// applyAcc adds the dropped g to dst: the backward pass of apply.
func (d dropout) applyAcc(p *kernels.Pool, key uint64, dst, g []float32) {
	p.ForRange(len(g), 4096, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			if d.keep(key, i) {
				dst[i] += g[i] * d.scale
			}
		}
	})
}

// splitmix64 is SplitMix64's output function of state x.
func splitmix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}
