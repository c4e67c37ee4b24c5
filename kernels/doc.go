// Package kernels owns every hot loop of relupo's engine: matrix products in
// the three transpose variants that a transformer's forward and backward
// passes need, RMSNorm, rotary embeddings, SwiGLU, causal attention over
// packed sequences, the log-softmax over the vocabulary and the AdamW update.
//
// Every kernel is a plain function over flat, row-major float32 slices whose
// shapes are passed explicitly, in the style of llm.c. Work is spread over a
// persistent [Pool] of goroutines; a nil *Pool runs everything on the calling
// goroutine. A Pool also carries the precision of its matrix products
// ([Pool.SetPrecision]): float32, or bfloat16 operands with float32 sums,
// which run on the AMX tile unit where the CPU has one and on AVX512_BF16's
// VDPBF16PS elsewhere if it can. This package is the seam for
// hardware-specific code: SIMD micro-kernels (Go assembly), the bfloat16
// kernels and, later, other devices plug in here without the model package
// changing.
package kernels
