package model

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"

	"github.com/relupo/relupo/internal/textsafe"
)

// Config is the architecture of a Llama-family decoder, read from a Hugging
// Face config.json. Llama, Mistral, Qwen2, Qwen3, SmolLM3, OLMo-2 and 3, Granite, Phi-3, Gemma, Gemma-2 and Gemma-3 (text)
// share one forward pass and differ only in the flags below.
type Config struct {
	ModelType         string
	VocabSize         int
	HiddenSize        int
	IntermediateSize  int
	NumLayers         int
	NumHeads          int
	NumKVHeads        int
	HeadDim           int
	RMSNormEps        float64
	RopeTheta         float64
	RopeScaling       *RopeScaling // nil: plain RoPE
	TieWordEmbeddings bool
	QKVBias           bool // biases on q_proj, k_proj, v_proj (Qwen2; Llama/Qwen3 attention_bias)
	OBias             bool // bias on o_proj (Llama/Qwen3 attention_bias)
	QKNorm            bool // RMSNorm of q and k before RoPE: per head (Qwen3, Gemma-3), or QKNormFull
	// QKNormFull makes the q and k norms span each token's whole projection
	// (num_heads·head_dim and num_kv_heads·head_dim wide), as OLMo-2's do.
	QKNormFull bool
	// PostNorms: each layer normalizes the attention output and the MLP
	// output before their residual adds (post_attention_layernorm,
	// post_feedforward_layernorm): Gemma-2, Gemma-3, OLMo-2.
	PostNorms bool
	// NoPreNorms: the attention and MLP read the residual stream without an
	// input norm (OLMo-2, whose norms are all PostNorms).
	NoPreNorms bool
	// Fused: the checkpoint stores q, k and v as one qkv_proj and gate and
	// up as one gate_up_proj (Phi-3), rows in that order.
	Fused bool
	// RotaryDim is how many values of each head RoPE rotates (HeadDim ×
	// partial_rotary_factor: Phi-4-mini's 3/4); 0 means all of them.
	RotaryDim             int
	MaxPositionEmbeddings int
	// SlidingWindow > 0 is the attention window: a token sees itself and
	// the SlidingWindow−1 tokens before it, on the layers SlidingLayers
	// marks (every layer when SlidingLayers is nil: Mistral).
	SlidingWindow int
	SlidingLayers []bool // per layer, or nil
	// NoRope marks the layers that apply no rotary embedding (SmolLM3's
	// NoPE layers: no_rope_layers 0); nil when every layer applies it.
	NoRope      []bool
	BOSTokenID  int // -1 when absent
	EOSTokenIDs []int
	PadTokenID  int    // -1 when absent
	DType       string // torch_dtype of the checkpoint ("float32", "float16", "bfloat16")

	// Gemma (1, 2 and 3): RMSNorm weights act as (1 + w), the embeddings
	// are scaled by √hidden_size and the MLP is GeGLU (gelu_pytorch_tanh);
	// Gemma-2 and 3 also have PostNorms.
	Gemma bool
	// QueryScale multiplies the attention scores (query_pre_attn_scalar^−½);
	// 0 means 1/√head_dim.
	QueryScale float64
	// AttnSoftcap > 0 caps attention scores at ±AttnSoftcap with tanh
	// (Gemma-2's attn_logit_softcapping); FinalSoftcap the logits
	// (final_logit_softcapping).
	AttnSoftcap, FinalSoftcap float64
	// Granite's multipliers, 0 elsewhere (meaning 1): EmbeddingMultiplier
	// scales the embeddings, ResidualMultiplier each block's output before
	// its residual add, and LogitsScaling divides the logits. Its
	// attention_multiplier is QueryScale.
	EmbeddingMultiplier, ResidualMultiplier, LogitsScaling float64
	// RopeLocalTheta > 0 is the RoPE base of the sliding layers (Gemma-3's
	// rope_local_base_freq, without scaling); RopeTheta and RopeScaling
	// then apply to the full-attention layers only.
	RopeLocalTheta float64

	// Raw is the parsed config.json, kept so that a saved checkpoint carries
	// every field the user's file had.
	Raw map[string]any
}

// RopeScaling is a RoPE frequency scaling: "llama3" (Llama 3.1 and 3.2),
// "yarn" (YaRN: Qwen's and OLMo 3's long-context settings), or
// "linear" (every frequency divided by Factor; Gemma-3's global layers).
type RopeScaling struct {
	Type                          string
	Factor                        float64
	LowFreqFactor                 float64
	HighFreqFactor                float64
	OriginalMaxPositionEmbeddings float64
	// YaRN: the ramp's rotation bounds, whether its range is rounded
	// outward, and the factor of cos and sin (attention_factor, or the
	// one derived from factor, mscale and mscale_all_dim; for LongRoPE
	// from max_position_embeddings / original_max_position_embeddings).
	BetaFast, BetaSlow float64
	Truncate           bool
	AttentionFactor    float64
	// LongRoPE's per-frequency divisors for sequences up to
	// OriginalMaxPositionEmbeddings (longer ones are refused; see
	// Config.MaxSequence).
	ShortFactor []float64
}

// LoadConfig reads config.json from dir (or the file itself when path names one).
func LoadConfig(path string) (Config, error) {
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		path = filepath.Join(path, "config.json")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("model: %w", err)
	}
	cfg, err := ParseConfig(b)
	if err != nil {
		return Config{}, fmt.Errorf("model: %s: %w", path, err)
	}
	return cfg, nil
}

// ParseConfig parses the bytes of a Hugging Face config.json and checks that
// every field relupo needs is present and supported. Anything relupo would
// have to approximate is an error.
func ParseConfig(b []byte) (Config, error) {
	var raw map[string]any
	if err := json.Unmarshal(b, &raw); err != nil {
		return Config{}, fmt.Errorf("invalid JSON: %w", err)
	}
	if raw == nil {
		return Config{}, errors.New("config is not a JSON object")
	}
	c := Config{Raw: raw, BOSTokenID: -1, PadTokenID: -1}
	f := fields{raw: raw}
	c.ModelType = f.str("model_type", "")
	switch c.ModelType {
	case "llama", "mistral", "qwen2", "qwen3", "smollm3", "olmo2", "olmo3", "granite", "phi3", "gemma", "gemma2", "gemma3_text":
	case "":
		return Config{}, fmt.Errorf(`missing "model_type" (supported: %s)`, SupportedList)
	case "gemma3":
		return Config{}, fmt.Errorf(`unsupported model_type "gemma3" (the multimodal Gemma 3; relupo trains the text model, model_type "gemma3_text", Gemma3ForCausalLM; supported: %s)`, SupportedList)
	default:
		return Config{}, fmt.Errorf("unsupported model_type %q (supported: %s)", c.ModelType, SupportedList)
	}
	c.Gemma = c.ModelType == "gemma" || c.ModelType == "gemma2" || c.ModelType == "gemma3_text"
	olmo := c.ModelType == "olmo2" || c.ModelType == "olmo3"
	c.PostNorms = c.Gemma && c.ModelType != "gemma" || olmo // Gemma 1 has Llama's layout
	c.NoPreNorms = olmo
	c.VocabSize = f.posInt("vocab_size")
	c.HiddenSize = f.posInt("hidden_size")
	c.IntermediateSize = f.posInt("intermediate_size")
	c.NumLayers = f.posInt("num_hidden_layers")
	if c.NumLayers > MaxLayers {
		// Checked before anything is built per layer (the Gemma layer
		// pattern, the parameter count): 1e9 layers would exhaust memory
		// before the weights could disagree.
		f.fail("num_hidden_layers %d is more than any model has (relupo accepts up to %d)", c.NumLayers, MaxLayers)
		c.NumLayers = 0
	}
	c.NumHeads = f.posInt("num_attention_heads")
	c.NumKVHeads = c.NumHeads
	if c.Gemma && c.ModelType != "gemma" || c.ModelType == "smollm3" {
		c.NumKVHeads = 4 // Gemma2Config's, Gemma3TextConfig's and SmolLM3Config's default
	}
	// A null num_key_value_heads or head_dim means the derived value, as
	// transformers' configurations read None.
	if f.has("num_key_value_heads") {
		c.NumKVHeads = c.NumHeads
		if raw["num_key_value_heads"] != nil {
			c.NumKVHeads = f.posInt("num_key_value_heads")
		}
	}
	switch {
	case f.has("head_dim") && raw["head_dim"] != nil:
		c.HeadDim = f.posInt("head_dim")
	case c.Gemma:
		c.HeadDim = 256 // the Gemma configs' default, independent of hidden_size
	case c.NumHeads > 0:
		c.HeadDim = c.HiddenSize / c.NumHeads
	}
	c.RMSNormEps = f.num("rms_norm_eps", 1e-6)
	c.MaxPositionEmbeddings = int(f.num("max_position_embeddings", 0))
	c.TieWordEmbeddings = f.boolean("tie_word_embeddings", c.Gemma || c.ModelType == "smollm3") // Gemma's and SmolLM3's configs default to tied
	c.DType = f.str("torch_dtype", f.str("dtype", "float32"))
	if c.Gemma {
		c.parseGemma(&f)
	} else if act := f.str("hidden_act", "silu"); act != "silu" {
		f.fail("hidden_act %q is not supported (only silu)", act)
	}
	if f.boolean("mlp_bias", false) {
		f.fail("mlp_bias true is not supported")
	}
	attnBias := f.boolean("attention_bias", false)
	switch c.ModelType {
	case "qwen2":
		c.QKVBias = true
	case "qwen3":
		c.QKNorm = true
		c.QKVBias, c.OBias = attnBias, attnBias
	case "llama", "smollm3", "gemma", "gemma2", "gemma3_text":
		c.QKVBias, c.OBias = attnBias, attnBias
		c.QKNorm = c.ModelType == "gemma3_text"
	case "olmo2", "olmo3":
		c.QKVBias, c.OBias = attnBias, attnBias
		c.QKNorm, c.QKNormFull = true, true
		if c.ModelType == "olmo3" {
			c.parseOLMo3(&f)
		}
	case "granite":
		c.QKVBias, c.OBias = attnBias, attnBias
		c.parseGranite(&f)
	case "phi3":
		c.Fused = true
		if attnBias {
			f.fail("attention_bias true is not supported for phi3")
		}
		if p := f.num("partial_rotary_factor", 1); p != 1 {
			// transformers: dim = int(head_dim * partial_rotary_factor)
			c.RotaryDim = int(float64(c.HeadDim) * p)
			if !(p > 0 && p < 1) || c.RotaryDim < 2 || c.RotaryDim%2 != 0 {
				f.fail("partial_rotary_factor %v gives %d rotated values per head of %d; want an even number from 2", p, c.RotaryDim, c.HeadDim)
			}
		}
	}

	c.parseRoPE(&f)

	// Sliding windows: Qwen's is active only with use_sliding_window (not
	// supported); SmolLM3's only with use_sliding_window, on the layers
	// parseSmolLM3 marked; Mistral's whenever sliding_window is a number,
	// on every layer; Gemma's and OLMo 3's on the layers parseGemma and
	// parseOLMo3 marked (null: none). Llama's and
	// OLMo-2's attention has no window: a sliding_window key there (some
	// merged checkpoints carry one) is ignored, as transformers ignores it.
	switch {
	case c.ModelType == "smollm3":
		c.parseSmolLM3(&f)
	case c.ModelType == "qwen2" || c.ModelType == "qwen3":
		if f.boolean("use_sliding_window", false) {
			f.fail("use_sliding_window true is not supported")
		}
	case c.ModelType == "gemma":
		// Gemma 1's attention has no window.
	case (c.ModelType == "mistral" || c.ModelType == "phi3" || c.Gemma || c.ModelType == "olmo3") && f.has("sliding_window") && raw["sliding_window"] != nil:
		c.SlidingWindow = f.posInt("sliding_window")
	case (c.Gemma || c.ModelType == "olmo3") && f.has("sliding_window"):
		c.SlidingWindow = 0 // null: no window on any layer
	}

	c.BOSTokenID = f.optInt("bos_token_id")
	c.PadTokenID = f.optInt("pad_token_id")
	c.EOSTokenIDs = f.intList("eos_token_id")

	if f.err != nil {
		return Config{}, f.err
	}
	if err := c.checkShapes(f.has("head_dim") && raw["head_dim"] != nil); err != nil {
		return Config{}, err
	}
	return c, nil
}

// parseRoPE reads the rotary embedding's settings: rope_theta at top level,
// or inside transformers v5's rope_parameters (per layer type for
// Gemma-3), and rope_scaling.
func (c *Config) parseRoPE(f *fields) {
	defTheta := 10000.0
	if c.ModelType == "smollm3" {
		defTheta = 2_000_000 // SmolLM3Config's default
	}
	if c.ModelType == "gemma3_text" {
		defTheta = 1_000_000 // Gemma3TextConfig's default
		c.RopeLocalTheta = f.num("rope_local_base_freq", 10000)
	}
	c.RopeTheta = f.num("rope_theta", defTheta)
	scaling := f.obj("rope_scaling")
	rp := f.obj("rope_parameters")
	if c.ModelType == "gemma3_text" && rp != nil {
		pf := fields{raw: rp, prefix: "rope_parameters."}
		if local := pf.obj("sliding_attention"); local != nil {
			lf := fields{raw: local, prefix: "rope_parameters.sliding_attention."}
			c.RopeLocalTheta = lf.num("rope_theta", c.RopeLocalTheta)
			if typ := lf.str("rope_type", "default"); typ != "default" {
				lf.fail("rope type %q is not supported on sliding layers (only default)", typ)
			}
			f.err = joinErrs(f.err, lf.err)
		}
		if global := pf.obj("full_attention"); global != nil {
			rp = global
		} else if pf.has("sliding_attention") {
			rp = nil
		}
		f.err = joinErrs(f.err, pf.err)
	}
	if rp != nil {
		pf := fields{raw: rp, prefix: "rope_parameters."}
		c.RopeTheta = pf.num("rope_theta", c.RopeTheta)
		if scaling == nil {
			scaling = rp
		}
		f.err = joinErrs(f.err, pf.err)
	}
	if scaling != nil {
		sf := fields{raw: scaling, prefix: "rope_scaling."}
		typ := sf.str("rope_type", sf.str("type", "default"))
		switch typ {
		case "default":
		case "llama3":
			c.RopeScaling = &RopeScaling{
				Type:                          typ,
				Factor:                        sf.num("factor", math.NaN()),
				LowFreqFactor:                 sf.num("low_freq_factor", math.NaN()),
				HighFreqFactor:                sf.num("high_freq_factor", math.NaN()),
				OriginalMaxPositionEmbeddings: sf.num("original_max_position_embeddings", math.NaN()),
			}
			rs := c.RopeScaling
			if !(rs.Factor > 0 && rs.LowFreqFactor > 0 && rs.HighFreqFactor > rs.LowFreqFactor && rs.OriginalMaxPositionEmbeddings > 0) {
				sf.fail("llama3 scaling needs factor > 0, 0 < low_freq_factor < high_freq_factor and original_max_position_embeddings > 0")
			}
		case "linear":
			c.RopeScaling = &RopeScaling{Type: typ, Factor: sf.num("factor", math.NaN())}
			if !(c.RopeScaling.Factor > 0) {
				sf.fail("linear scaling needs factor > 0")
			}
		case "yarn":
			c.RopeScaling = c.parseYaRN(&sf)
		case "longrope":
			c.RopeScaling = c.parseLongRoPE(f, &sf)
		default:
			sf.fail("rope type %q is not supported (supported: default, linear, llama3, yarn, longrope)", typ)
		}
		f.err = joinErrs(f.err, sf.err)
	}
}

// parseYaRN reads a "yarn" rope_scaling as transformers' current
// _compute_yarn_parameters does, and vLLM: the ramp's range comes from
// original_max_position_embeddings (else max_position_embeddings), its
// bounds from beta_fast and beta_slow (32 and 1 when absent or 0), and cos
// and sin are multiplied by attention_factor, else 0.1·mscale·ln(factor)+1
// over the same with mscale_all_dim when both are set, else
// 0.1·ln(factor)+1 (1 for factor ≤ 1). When original_max_position_embeddings
// is given, transformers replaces factor by max_position_embeddings /
// original_max_position_embeddings and vLLM keeps factor: a config on which
// the two differ is refused rather than read one way silently.
func (c *Config) parseYaRN(sf *fields) *RopeScaling {
	rs := &RopeScaling{Type: "yarn", Factor: sf.num("factor", math.NaN()), BetaFast: sf.num("beta_fast", 0),
		BetaSlow: sf.num("beta_slow", 0), Truncate: sf.boolean("truncate", true)}
	if rs.BetaFast == 0 {
		rs.BetaFast = 32
	}
	if rs.BetaSlow == 0 {
		rs.BetaSlow = 1
	}
	maxPos := float64(c.MaxPositionEmbeddings)
	rs.OriginalMaxPositionEmbeddings = sf.num("original_max_position_embeddings", maxPos)
	if !(rs.Factor > 0) || !(rs.OriginalMaxPositionEmbeddings > 0) || !(rs.BetaFast > 0) || !(rs.BetaSlow > 0) {
		sf.fail("yarn scaling needs factor > 0, positive beta_fast and beta_slow, and original_max_position_embeddings (or max_position_embeddings) > 0")
		return rs
	}
	if sf.has("original_max_position_embeddings") && maxPos/rs.OriginalMaxPositionEmbeddings != rs.Factor {
		sf.fail("yarn factor %v disagrees with max_position_embeddings / original_max_position_embeddings = %v / %v: transformers scales by that ratio and vLLM by factor, so relupo does not pick one; set max_position_embeddings to %v (original × factor), which both read the same",
			rs.Factor, maxPos, rs.OriginalMaxPositionEmbeddings, rs.OriginalMaxPositionEmbeddings*rs.Factor)
		return rs
	}
	mscale := func(scale, m float64) float64 {
		if scale <= 1 {
			return 1
		}
		return 0.1*m*math.Log(scale) + 1
	}
	rs.AttentionFactor = sf.num("attention_factor", 0)
	if rs.AttentionFactor == 0 {
		if m, all := sf.num("mscale", 0), sf.num("mscale_all_dim", 0); m != 0 && all != 0 {
			rs.AttentionFactor = mscale(rs.Factor, m) / mscale(rs.Factor, all)
		} else {
			rs.AttentionFactor = mscale(rs.Factor, 1)
		}
	}
	if !(rs.AttentionFactor > 0) || math.IsInf(rs.AttentionFactor, 0) {
		sf.fail("yarn attention_factor must be positive")
	}
	return rs
}

// parseLongRoPE reads a "longrope" rope_scaling (Phi-3.5-mini, Phi-4-mini,
// Phi-3's 128k models) as transformers' _compute_longrope_parameters does
// for sequences within original_max_position_embeddings: each frequency
// divided by short_factor's entry, cos and sin times attention_factor,
// else √(1 + ln(factor)/ln(original)) with factor = max_position_embeddings
// / original_max_position_embeddings (1 when factor ≤ 1). transformers
// switches to long_factor once a batch is longer than the original length,
// cached keys keeping the short one; relupo refuses such sequences instead
// (Config.MaxSequence).
func (c *Config) parseLongRoPE(f, sf *fields) *RopeScaling {
	rs := &RopeScaling{Type: "longrope"}
	orig := f.num("original_max_position_embeddings", sf.num("original_max_position_embeddings", 0))
	rs.OriginalMaxPositionEmbeddings = orig
	short, ok := sf.raw["short_factor"].([]any)
	half := c.ropeDim() / 2
	if !ok || len(short) != half {
		sf.fail("longrope needs short_factor, a list of %d numbers (half the rotated dimensions)", half)
		return rs
	}
	for i, v := range short {
		x, ok := v.(float64)
		if !ok || !(x > 0) {
			sf.fail("longrope short_factor[%d]: want a positive number, got %s", i, describe(v))
			return rs
		}
		rs.ShortFactor = append(rs.ShortFactor, x)
	}
	if !(orig > 0) || c.MaxPositionEmbeddings <= 0 {
		sf.fail("longrope needs original_max_position_embeddings and max_position_embeddings")
		return rs
	}
	rs.Factor = float64(c.MaxPositionEmbeddings) / orig
	rs.AttentionFactor = sf.num("attention_factor", 0)
	if rs.AttentionFactor == 0 {
		rs.AttentionFactor = 1
		if rs.Factor > 1 {
			rs.AttentionFactor = math.Sqrt(1 + math.Log(rs.Factor)/math.Log(orig))
		}
	}
	return rs
}

// ropeDim is how many values of each head RoPE rotates.
func (c Config) ropeDim() int {
	if c.RotaryDim > 0 {
		return c.RotaryDim
	}
	return c.HeadDim
}

// MaxSequence is the longest sequence the model's position encoding is read
// for exactly: LongRoPE's original_max_position_embeddings, past which
// transformers changes frequencies mid-sequence; 0 when unbounded.
func (c Config) MaxSequence() int {
	if rs := c.RopeScaling; rs != nil && rs.Type == "longrope" {
		return int(rs.OriginalMaxPositionEmbeddings)
	}
	return 0
}

// checkShapes checks what the parsed sizes must satisfy together;
// hasHeadDim says whether config.json set head_dim.
func (c Config) checkShapes(hasHeadDim bool) error {
	if c.NumHeads%c.NumKVHeads != 0 {
		return fmt.Errorf("num_attention_heads %d is not a multiple of num_key_value_heads %d", c.NumHeads, c.NumKVHeads)
	}
	// hidden_size / num_attention_heads first: without a head_dim key the
	// head size is derived, and a message about it would name a value the
	// config never set.
	if !hasHeadDim && !c.Gemma && c.HiddenSize%c.NumHeads != 0 {
		return fmt.Errorf("hidden_size %d is not a multiple of num_attention_heads %d (without a head_dim key, each head gets hidden_size / num_attention_heads)", c.HiddenSize, c.NumHeads)
	}
	if c.HeadDim%2 != 0 {
		from := ""
		if !hasHeadDim && !c.Gemma {
			from = fmt.Sprintf(" (hidden_size %d / num_attention_heads %d)", c.HiddenSize, c.NumHeads)
		}
		return fmt.Errorf("head_dim %d%s must be even for rotary embeddings", c.HeadDim, from)
	}
	if c.NumParams() > 1<<40 {
		return fmt.Errorf("the configured model has %d parameters, beyond what relupo can hold", c.NumParams())
	}
	return nil
}

// MaxLayers bounds num_hidden_layers (the largest open models have a few
// hundred layers).
const MaxLayers = 4096

// joinErrs joins config errors on one line, separated by semicolons.
func joinErrs(a, b error) error {
	switch {
	case a == nil:
		return b
	case b == nil:
		return a
	}
	return fmt.Errorf("%w; %w", a, b)
}

// describe names a JSON value and its type for a message: the string "320"
// is not the number 320.
func describe(v any) string {
	switch x := v.(type) {
	case string:
		return fmt.Sprintf("the string %q (write numbers without quotes)", textsafe.Limit(x, 40))
	case nil:
		return "null"
	case bool:
		return fmt.Sprintf("the boolean %v", x)
	case []any:
		return "a list"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprint(v)
}

// SupportedList names the model_type values relupo supports, for messages.
const SupportedList = "llama, mistral, qwen2, qwen3, smollm3, olmo2, olmo3, granite, phi3, gemma, gemma2, gemma3_text"

// parseOLMo3 reads which of OLMo 3's layers slide, with Olmo3Config's
// defaults: the layers layer_types marks, by default three of every four
// (each fourth attends to everything), with a sliding_window of 4096 when
// the key is absent (ParseConfig reads a given one, or null for none).
func (c *Config) parseOLMo3(f *fields) {
	if !f.has("sliding_window") {
		c.SlidingWindow = 4096
	}
	if sliding, given := f.layerTypes(c.NumLayers); given {
		c.SlidingLayers = sliding
		return
	}
	c.SlidingLayers = make([]bool, c.NumLayers)
	for i := range c.SlidingLayers {
		c.SlidingLayers[i] = (i+1)%4 != 0
	}
}

// parseGranite reads Granite's multipliers, 1 by default as in
// GraniteConfig (attention_multiplier replaces 1/√head_dim outright).
func (c *Config) parseGranite(f *fields) {
	read := func(key string) float64 {
		v := f.num(key, 1)
		if !(v > 0) || math.IsInf(v, 0) {
			f.fail("%s must be a positive number", key)
		}
		return v
	}
	c.EmbeddingMultiplier = read("embedding_multiplier")
	c.QueryScale = read("attention_multiplier")
	c.ResidualMultiplier = read("residual_multiplier")
	c.LogitsScaling = read("logits_scaling")
}

// parseSmolLM3 reads SmolLM3's NoPE layers and sliding windows, with the
// defaults of transformers' SmolLM3Config: no_rope_layers (1: the layer
// applies RoPE, 0: it does not; at least one entry per layer), else a NoPE
// layer every no_rope_layer_interval (4) layers. With use_sliding_window
// and a sliding_window, the layers layer_types marks "sliding_attention"
// slide, and without layer_types the NoPE layers do.
func (c *Config) parseSmolLM3(f *fields) {
	n := c.NumLayers
	c.NoRope = make([]bool, n)
	if v, ok := f.raw["no_rope_layers"]; ok && v != nil {
		list, isList := v.([]any)
		if !isList || len(list) < n {
			f.fail("no_rope_layers: want a list of 0s and 1s with an entry per layer (%d), got %s", n, describe(v))
			return
		}
		for i := range n {
			switch list[i] {
			case 0.0, false:
				c.NoRope[i] = true
			case 1.0, true:
			default:
				f.fail("no_rope_layers[%d]: want 0 (no RoPE) or 1 (RoPE), got %s", i, describe(list[i]))
				return
			}
		}
	} else {
		every := 4
		if f.has("no_rope_layer_interval") && f.raw["no_rope_layer_interval"] != nil {
			every = f.posInt("no_rope_layer_interval")
		}
		for i := range n {
			c.NoRope[i] = (i+1)%max(every, 1) == 0
		}
	}
	if !f.boolean("use_sliding_window", false) || f.raw["sliding_window"] == nil {
		return
	}
	c.SlidingWindow = f.posInt("sliding_window")
	if sliding, given := f.layerTypes(n); given {
		c.SlidingLayers = sliding
		return
	}
	c.SlidingLayers = slices.Clone(c.NoRope)
}

// layerTypes reads layer_types, n entries of "sliding_attention" or
// "full_attention", as which layers slide; given is false when the key is
// absent or null. A malformed list is reported to f.
func (f *fields) layerTypes(n int) (sliding []bool, given bool) {
	v := f.raw["layer_types"]
	if v == nil {
		return nil, false
	}
	lt, ok := v.([]any)
	if !ok {
		f.fail("layer_types: want a list")
		return nil, true
	}
	if len(lt) != n {
		f.fail("layer_types has %d entries for %d layers", len(lt), n)
		return nil, true
	}
	sliding = make([]bool, n)
	for i, v := range lt {
		switch v {
		case "sliding_attention":
			sliding[i] = true
		case "full_attention":
		default:
			f.fail("layer_types[%d]: %v is not sliding_attention or full_attention", i, v)
		}
	}
	return sliding, true
}

// parseGemma reads the Gemma fields, with the defaults of transformers'
// GemmaConfig, Gemma2Config and Gemma3TextConfig. Gemma 1 has none of the
// later ones' query_pre_attn_scalar, soft caps and windows.
func (c *Config) parseGemma(f *fields) {
	act := f.str("hidden_activation", "")
	if act == "" {
		act = f.str("hidden_act", "gelu_pytorch_tanh")
	}
	if act != "gelu_pytorch_tanh" {
		f.fail("hidden_activation %q is not supported (only gelu_pytorch_tanh, which Gemma's current configs name in hidden_activation)", act)
	}
	if c.ModelType == "gemma" {
		return // GemmaAttention scales by head_dim^-½ (QueryScale 0)
	}
	c.QueryScale = math.Pow(f.num("query_pre_attn_scalar", 256), -0.5)
	if !(c.QueryScale > 0) || math.IsInf(c.QueryScale, 0) {
		f.fail("query_pre_attn_scalar must be positive")
	}
	if f.boolean("use_bidirectional_attention", false) {
		f.fail("use_bidirectional_attention true is not supported")
	}
	caps := map[string]float64{"attn_logit_softcapping": 50, "final_logit_softcapping": 30} // Gemma2Config's defaults
	if c.ModelType == "gemma3_text" {
		caps = map[string]float64{"attn_logit_softcapping": 0, "final_logit_softcapping": 0}
	}
	for key, def := range caps {
		v := f.num(key, def)
		if _, present := f.raw[key]; present && f.raw[key] == nil {
			v = 0 // null: no capping
		}
		if v < 0 || math.IsNaN(v) {
			f.fail("%s must be positive or null", key)
		}
		caps[key] = v
	}
	c.FinalSoftcap = caps["final_logit_softcapping"]
	// Gemma3Attention never passes attn_logit_softcapping to its attention
	// function, so Gemma-3 attention is not capped whatever the config says.
	if c.ModelType == "gemma2" {
		c.AttnSoftcap = caps["attn_logit_softcapping"]
	}
	if !f.has("sliding_window") {
		c.SlidingWindow = 4096 // both configs' default
	}
	// Sliding layers: layer_types when given; otherwise Gemma-2 slides on
	// even layers and Gemma-3 on all but every sliding_window_pattern-th.
	if sliding, given := f.layerTypes(c.NumLayers); given {
		c.SlidingLayers = sliding
		return
	}
	c.SlidingLayers = make([]bool, c.NumLayers)
	pattern := 2
	if c.ModelType == "gemma3_text" {
		pattern = 6
		if f.has("sliding_window_pattern") && f.raw["sliding_window_pattern"] != nil {
			pattern = f.posInt("sliding_window_pattern")
		}
	}
	for i := range c.SlidingLayers {
		c.SlidingLayers[i] = (i+1)%max(pattern, 1) != 0
	}
}

// LayerWindow returns the attention window of layer l: SlidingWindow on a
// sliding layer, 0 (the whole sequence) otherwise.
func (c Config) LayerWindow(l int) int {
	if c.SlidingWindow > 0 && (c.SlidingLayers == nil || c.SlidingLayers[l]) {
		return c.SlidingWindow
	}
	return 0
}

// localRope reports whether layer l uses the local RoPE base (Gemma-3's
// sliding layers).
func (c Config) localRope(l int) bool {
	return c.RopeLocalTheta > 0 && c.SlidingLayers != nil && c.SlidingLayers[l]
}

// NumParams is the number of distinct parameters (a tied lm_head counts once).
func (c Config) NumParams() int64 {
	var n int64
	for _, s := range c.tensorSpecs() {
		n += s.size()
	}
	return n
}

// fields reads typed values out of a JSON object, collecting errors.
type fields struct {
	raw    map[string]any
	prefix string
	err    error
}

func (f *fields) fail(format string, args ...any) {
	f.err = joinErrs(f.err, fmt.Errorf(format, args...))
}

func (f *fields) has(key string) bool { _, ok := f.raw[key]; return ok }

func (f *fields) num(key string, def float64) float64 {
	v, ok := f.raw[key]
	if !ok || v == nil {
		return def
	}
	x, ok := v.(float64)
	if !ok {
		f.fail("%s%s: want a number, got %s", f.prefix, key, describe(v))
		return def
	}
	return x
}

func (f *fields) posInt(key string) int {
	v, ok := f.raw[key]
	if !ok {
		f.fail("missing %s%s", f.prefix, key)
		return 0
	}
	x, ok := v.(float64)
	if !ok || x != math.Trunc(x) || x < 1 || x > 1<<31 {
		f.fail("%s%s: want a positive integer, got %s", f.prefix, key, describe(v))
		return 0
	}
	return int(x)
}

func (f *fields) optInt(key string) int {
	v, ok := f.raw[key]
	if !ok || v == nil {
		return -1
	}
	if l, ok := v.([]any); ok && len(l) > 0 { // some configs list one id
		v = l[0]
	}
	x, ok := v.(float64)
	if !ok || x != math.Trunc(x) || x < 0 {
		f.fail("%s%s: want a non-negative integer, got %s", f.prefix, key, describe(v))
		return -1
	}
	return int(x)
}

func (f *fields) intList(key string) []int {
	v, ok := f.raw[key]
	if !ok || v == nil {
		return nil
	}
	items, isList := v.([]any)
	if !isList {
		items = []any{v}
	}
	var out []int
	for _, it := range items {
		x, ok := it.(float64)
		if !ok || x != math.Trunc(x) || x < 0 {
			f.fail("%s%s: want integer token ids, got %v", f.prefix, key, v)
			return nil
		}
		out = append(out, int(x))
	}
	return out
}

func (f *fields) str(key, def string) string {
	v, ok := f.raw[key]
	if !ok || v == nil {
		return def
	}
	s, ok := v.(string)
	if !ok {
		f.fail("%s%s: want a string, got %v", f.prefix, key, v)
		return def
	}
	return s
}

func (f *fields) boolean(key string, def bool) bool {
	v, ok := f.raw[key]
	if !ok || v == nil {
		return def
	}
	b, ok := v.(bool)
	if !ok {
		f.fail("%s%s: want true or false, got %v", f.prefix, key, v)
		return def
	}
	return b
}

func (f *fields) obj(key string) map[string]any {
	v, ok := f.raw[key]
	if !ok || v == nil {
		return nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		f.fail("%s%s: want an object, got %v", f.prefix, key, v)
	}
	return m
}
