package model

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"unsafe"

	"github.com/relupo/relupo/kernels"
	"github.com/relupo/relupo/safetensors"
)

// This file holds the frozen 2-byte base of LoRA training: weight matrices
// kept as bfloat16 bits (Params.Frozen), their products, and the loaders
// that make such a model.

// isMatrix reports whether a tensor of the model is a weight matrix, which
// a frozen base holds in bfloat16: the embedding, lm_head and every
// *_proj.weight. Norm weights and biases stay float32.
func isMatrix(name string) bool {
	return name == "model.embed_tokens.weight" || name == "lm_head.weight" || strings.HasSuffix(name, "_proj.weight")
}

// halfField returns the bfloat16 field of a matrix spec (nil for gate and
// up, which live in the fused HWGateUp).
func halfField(p *Params, name string, l int) *[]uint16 {
	switch {
	case name == "model.embed_tokens.weight":
		return &p.HEmbed
	case name == "lm_head.weight":
		return &p.HLMHead
	case strings.HasSuffix(name, ".q_proj.weight"):
		return &p.Layers[l].HWq
	case strings.HasSuffix(name, ".k_proj.weight"):
		return &p.Layers[l].HWk
	case strings.HasSuffix(name, ".v_proj.weight"):
		return &p.Layers[l].HWv
	case strings.HasSuffix(name, ".o_proj.weight"):
		return &p.Layers[l].HWo
	case strings.HasSuffix(name, ".down_proj.weight"):
		return &p.Layers[l].HWDown
	}
	return nil
}

// specLayer returns N of a "model.layers.N.…" tensor name, or -1.
func specLayer(name string) int {
	rest, ok := strings.CutPrefix(name, "model.layers.")
	if !ok {
		return -1
	}
	n, err := strconv.Atoi(rest[:max(strings.IndexByte(rest, '.'), 0)])
	if err != nil {
		return -1
	}
	return n
}

// newFrozenParams allocates the float32 norm weights and biases of
// configuration c and asks half for the bits of every matrix: one name,
// or gate_proj and up_proj together (their 2n values one after the other,
// for the fused product).
func newFrozenParams(c Config, half func(names []string, n int64) ([]uint16, error)) (*Params, error) {
	specs := c.tensorSpecs()
	var total int64
	for _, s := range specs {
		if !isMatrix(s.name) {
			total += s.size()
		}
	}
	p := &Params{Layers: make([]LayerParams, c.NumLayers), Mem: make([]float32, total), gemma: c.Gemma, Frozen: true}
	off := int64(0)
	for i := 0; i < len(specs); i++ {
		s := specs[i]
		l := specLayer(s.name) // -1 outside the layers
		if !isMatrix(s.name) {
			n := s.size()
			view := p.Mem[off : off+n : off+n]
			*s.field(p) = view
			p.tensors = append(p.tensors, Tensor{Name: s.name, Shape: s.shape, Data: view})
			off += n
			continue
		}
		if c.Fused && (strings.HasSuffix(s.name, ".qkv_proj.weight") || strings.HasSuffix(s.name, ".gate_up_proj.weight")) {
			bits, err := half([]string{s.name}, s.size())
			if err != nil {
				return nil, err
			}
			w := &p.Layers[l]
			if strings.HasSuffix(s.name, ".gate_up_proj.weight") {
				w.HWGateUp = bits
			} else {
				w.HWq, w.HWk, w.HWv = splitQKV(c, bits)
			}
			p.tensors = append(p.tensors, Tensor{Name: s.name, Shape: s.shape, Half: bits})
			continue
		}
		if strings.HasSuffix(s.name, ".gate_proj.weight") {
			// up_proj follows gate_proj in tensorSpecs, with the same shape.
			up := specs[i+1]
			n := s.size()
			bits, err := half([]string{s.name, up.name}, n)
			if err != nil {
				return nil, err
			}
			p.Layers[l].HWGateUp = bits[: 2*n : 2*n]
			p.tensors = append(p.tensors, Tensor{Name: s.name, Shape: s.shape, Half: bits[:n:n]},
				Tensor{Name: up.name, Shape: up.shape, Half: bits[n : 2*n : 2*n]})
			i++
			continue
		}
		bits, err := half([]string{s.name}, s.size())
		if err != nil {
			return nil, err
		}
		*halfField(p, s.name, l) = bits
		p.tensors = append(p.tensors, Tensor{Name: s.name, Shape: s.shape, Half: bits})
	}
	if c.TieWordEmbeddings {
		p.HLMHead = p.HEmbed
	}
	return p, nil
}

// NewFrozenBF16 returns a model of configuration c whose weight matrices
// are random bfloat16 values built in memory (no float32 copy of them is
// ever allocated): a frozen base for LoRA benchmarks of large shapes (an
// 8B-parameter model takes 16 GB). Matrices are uniform in ±0.02·√3 (the
// standard deviation of transformers' initializer_range 0.02), drawn in
// parallel from streams that depend only on seed; norm weights are 1 (0 for
// Gemma, whose norms scale by 1 + w) and biases 0.
func NewFrozenBF16(c Config, seed uint64) *Model {
	var total int64
	for _, s := range c.tensorSpecs() {
		if isMatrix(s.name) {
			total += s.size()
		}
	}
	mem := make([]uint16, total)
	off := int64(0)
	p, _ := newFrozenParams(c, func(names []string, n int64) ([]uint16, error) {
		n *= int64(len(names))
		v := mem[off : off+n : off+n]
		off += n
		return v, nil
	})
	p.frozenMem = mem
	one := float32(1)
	if c.Gemma {
		one = 0
	}
	for _, t := range p.tensors {
		if strings.HasSuffix(t.Name, "norm.weight") {
			for i := range t.Data {
				t.Data[i] = one
			}
		}
	}
	const block = 1 << 20
	bound := 0.02 * math.Sqrt(3)
	pool := kernels.NewPool(0)
	defer pool.Close()
	// Four values from each 64-bit draw: a 16-bit grid over ±bound is far
	// finer than bfloat16's 8 significant bits.
	scale := float32(2 * bound / 65536)
	pool.For(int((total+block-1)/block), func(b int) {
		r := rand.NewPCG(seed, uint64(b))
		v := mem[int64(b)*block : min(int64(b+1)*block, total)]
		for i := 0; i < len(v); i += 4 {
			u := r.Uint64()
			for j := i; j < min(i+4, len(v)); j++ {
				v[j] = bf16Bits((float32(uint16(u))+0.5)*scale - float32(bound))
				u >>= 16
			}
		}
	})
	return &Model{Config: c, Params: p, invFreq: ropeInvFreq(c), invFreqLocal: ropeLocalInvFreq(c)}
}

// bf16Bits rounds x to the nearest bfloat16 (ties to even) and returns its
// bits; NaN stays NaN.
func bf16Bits(x float32) uint16 {
	u := math.Float32bits(x)
	if u&0x7fffffff > 0x7f800000 {
		return uint16(u>>16) | 0x40
	}
	return uint16((u + 0x7fff + (u>>16)&1) >> 16)
}

// bf16Float returns the float32 value of bfloat16 bits h (exact).
func bf16Float(h uint16) float32 { return math.Float32frombits(uint32(h) << 16) }

// LoadOptions choose how LoadWith holds the weights.
type LoadOptions struct {
	// BaseDType is the dtype of the weight matrices in memory: "" or
	// "float32" (every weight float32, as Load), "bf16" (the matrices as
	// bfloat16 bits, a frozen base: bf16 tensors as they are, fp16 ones
	// converted to bf16, which keeps their range and drops 3 of their 10
	// mantissa bits, float32 ones rounded to nearest even), "auto" (bf16
	// when the checkpoint's matrices are all 2-byte, float32 otherwise) or
	// "exact" (bf16 when they are all bfloat16, float32 otherwise: no value
	// changes, and in the float32 precision the products are those of the
	// float32 model bit for bit, in half its memory). Norm weights and
	// biases are float32 in every case.
	BaseDType string
	// Map, with a 2-byte base, maps the safetensors files read-only into
	// memory (on Linux; a plain read elsewhere) and points BF16 matrices
	// straight into the mapping where their offsets allow, instead of
	// reading them into memory; the kernel pages them in as they are
	// used. The mapping then lives as long as the process. Tensors that
	// are converted (F16 or F32 matrices, norm weights, biases) are read,
	// not mapped. Float32 loads ignore it.
	Map bool
	// Trunk reads the model as LoadTrunk does, for its final hidden states
	// only (a reward model): no lm_head, and a score head allowed.
	Trunk bool
}

// LoadWith is Load with options: see LoadOptions. A model with a frozen
// base (Params.Frozen) trains only adapters (BackwardAdapter).
func LoadWith(dir string, o LoadOptions) (*Model, safetensors.DType, error) {
	switch o.BaseDType {
	case "", "float32", "fp32", "f32":
		return load(dir, o.Trunk)
	case "bf16", "bfloat16", "auto", "exact":
	default:
		return nil, "", fmt.Errorf("model: base dtype %q is not one of float32, bf16, auto, exact", o.BaseDType)
	}
	cfg, ck, err := openChecked(dir, o.Trunk)
	if err != nil {
		return nil, "", err
	}
	defer ck.Close()
	half := o.BaseDType == "bf16" || o.BaseDType == "bfloat16"
	if o.BaseDType == "auto" || o.BaseDType == "exact" {
		half = true
		for _, t := range cfg.Tensors() {
			info, _ := ck.Info(t.Name)
			if isMatrix(t.Name) && (info.DType.Size() != 2 || o.BaseDType == "exact" && info.DType != safetensors.BF16) {
				half = false
			}
		}
	}
	// Tensors that are converted are read a tensor at a time: reading
	// them through the mapping would leave their file pages resident.
	raw := func(name string) ([]byte, safetensors.TensorInfo, error) {
		info, _ := ck.Info(name)
		b, err := ck.Raw(name)
		if err != nil {
			return nil, info, fmt.Errorf("model: %w", err)
		}
		return b, info, nil
	}
	if !half {
		m := New(cfg)
		for _, t := range m.Params.Tensors() {
			b, info, err := raw(t.Name)
			if err != nil {
				return nil, "", err
			}
			toFloat32(t.Data, b, info.DType)
		}
		return m, ck.DType(), nil
	}
	p, err := newFrozenParams(cfg, func(names []string, n int64) ([]uint16, error) {
		if o.Map {
			if v := mappedBF16(ck, names); v != nil {
				return v, nil
			}
		}
		out := make([]uint16, n*int64(len(names)))
		for i, name := range names {
			b, info, err := raw(name)
			if err != nil {
				return nil, err
			}
			toBF16(out[int64(i)*n:int64(i+1)*n], b, info.DType)
		}
		return out, nil
	})
	if err != nil {
		return nil, "", err
	}
	for _, t := range p.tensors {
		if t.Data == nil {
			continue
		}
		b, info, err := raw(t.Name)
		if err != nil {
			return nil, "", err
		}
		toFloat32(t.Data, b, info.DType)
	}
	return &Model{Config: cfg, Params: p, invFreq: ropeInvFreq(cfg), invFreqLocal: ropeLocalInvFreq(cfg)}, ck.DType(), nil
}

// mappedBF16 returns the tensors names as one []uint16 aliasing the
// checkpoint's mapping, when they are BF16, one right after the other in
// memory and 2-byte aligned, on a little-endian machine; nil otherwise.
func mappedBF16(ck *safetensors.Checkpoint, names []string) []uint16 {
	if !littleEndian() {
		return nil
	}
	var first *byte
	var next uintptr
	total := 0
	for i, name := range names {
		info, _ := ck.Info(name)
		if info.DType != safetensors.BF16 {
			return nil
		}
		b, err := ck.Mapped(name)
		if err != nil || len(b) == 0 {
			return nil
		}
		at := uintptr(unsafe.Pointer(&b[0]))
		if i == 0 {
			first = &b[0]
		} else if at != next {
			return nil
		}
		next = at + uintptr(len(b))
		total += len(b)
	}
	if uintptr(unsafe.Pointer(first))%2 != 0 {
		return nil
	}
	return unsafe.Slice((*uint16)(unsafe.Pointer(first)), total/2)
}

// littleEndian reports whether the machine stores integers little-endian,
// as safetensors files do.
func littleEndian() bool {
	var x uint16 = 1
	return *(*byte)(unsafe.Pointer(&x)) == 1
}

// toBF16 converts little-endian tensor bytes of dtype dt to bfloat16 bits.
func toBF16(dst []uint16, b []byte, dt safetensors.DType) {
	le := binary.LittleEndian
	switch dt {
	case safetensors.BF16:
		for i := range dst {
			dst[i] = le.Uint16(b[2*i:])
		}
	case safetensors.F16:
		for i := range dst {
			dst[i] = bf16Bits(safetensors.F16ToF32(le.Uint16(b[2*i:])))
		}
	case safetensors.F32:
		for i := range dst {
			dst[i] = bf16Bits(math.Float32frombits(le.Uint32(b[4*i:])))
		}
	case safetensors.F64:
		for i := range dst {
			dst[i] = bf16Bits(float32(math.Float64frombits(le.Uint64(b[8*i:]))))
		}
	}
}

// toFloat32 converts little-endian tensor bytes of dtype dt to float32.
func toFloat32(dst []float32, b []byte, dt safetensors.DType) {
	le := binary.LittleEndian
	switch dt {
	case safetensors.BF16:
		for i := range dst {
			dst[i] = bf16Float(le.Uint16(b[2*i:]))
		}
	case safetensors.F16:
		for i := range dst {
			dst[i] = safetensors.F16ToF32(le.Uint16(b[2*i:]))
		}
	case safetensors.F32:
		for i := range dst {
			dst[i] = math.Float32frombits(le.Uint32(b[4*i:]))
		}
	case safetensors.F64:
		for i := range dst {
			dst[i] = float32(math.Float64frombits(le.Uint64(b[8*i:])))
		}
	}
}

// The products of a linear layer whose weight w is float32, or, when w is
// nil, the frozen bfloat16 bits h.

// linNT computes c = a·wᵀ (+ bias): a [m, k], w [n, k].
func linNT(p *kernels.Pool, c, a, w []float32, h []uint16, bias []float32, m, n, k int) {
	if w == nil && h != nil {
		kernels.MatMulNTH(p, c, a, h, bias, m, n, k)
		return
	}
	kernels.MatMulNT(p, c, a, w, bias, m, n, k)
}

// linNN computes c = a·w: a [m, k], w [k, n].
func linNN(p *kernels.Pool, c, a, w []float32, h []uint16, m, n, k int) {
	if w == nil && h != nil {
		kernels.MatMulNNH(p, c, a, h, m, n, k)
		return
	}
	kernels.MatMulNN(p, c, a, w, m, n, k)
}

// linNNAcc computes c += a·w: a [m, k], w [k, n].
func linNNAcc(p *kernels.Pool, c, a, w []float32, h []uint16, m, n, k int) {
	if w == nil && h != nil {
		kernels.MatMulNNAccH(p, c, a, h, m, n, k)
		return
	}
	kernels.MatMulNNAcc(p, c, a, w, m, n, k)
}
