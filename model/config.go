package model

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
)

// Config is the architecture of a Llama-family decoder, read from a Hugging
// Face config.json. Llama, Mistral, Qwen2 and Qwen3 share one forward pass and
// differ only in the flags below.
type Config struct {
	ModelType             string
	VocabSize             int
	HiddenSize            int
	IntermediateSize      int
	NumLayers             int
	NumHeads              int
	NumKVHeads            int
	HeadDim               int
	RMSNormEps            float64
	RopeTheta             float64
	RopeScaling           *RopeScaling // nil: plain RoPE
	TieWordEmbeddings     bool
	QKVBias               bool // biases on q_proj, k_proj, v_proj (Qwen2; Llama/Qwen3 attention_bias)
	OBias                 bool // bias on o_proj (Llama/Qwen3 attention_bias)
	QKNorm                bool // per-head RMSNorm of q and k before RoPE (Qwen3)
	MaxPositionEmbeddings int
	SlidingWindow         int // > 0: attention window; sequences longer than it are refused
	BOSTokenID            int // -1 when absent
	EOSTokenIDs           []int
	PadTokenID            int    // -1 when absent
	DType                 string // torch_dtype of the checkpoint ("float32", "float16", "bfloat16")

	// Raw is the parsed config.json, kept so that a saved checkpoint carries
	// every field the user's file had.
	Raw map[string]any
}

// RopeScaling is the "llama3" frequency scaling of Llama 3.1 and 3.2.
type RopeScaling struct {
	Type                          string
	Factor                        float64
	LowFreqFactor                 float64
	HighFreqFactor                float64
	OriginalMaxPositionEmbeddings float64
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
	case "llama", "mistral", "qwen2", "qwen3":
	case "":
		return Config{}, errors.New(`missing "model_type" (supported: llama, mistral, qwen2, qwen3)`)
	default:
		return Config{}, fmt.Errorf("unsupported model_type %q (supported: llama, mistral, qwen2, qwen3)", c.ModelType)
	}
	c.VocabSize = f.posInt("vocab_size")
	c.HiddenSize = f.posInt("hidden_size")
	c.IntermediateSize = f.posInt("intermediate_size")
	c.NumLayers = f.posInt("num_hidden_layers")
	c.NumHeads = f.posInt("num_attention_heads")
	c.NumKVHeads = c.NumHeads
	if f.has("num_key_value_heads") {
		c.NumKVHeads = f.posInt("num_key_value_heads")
	}
	if f.has("head_dim") {
		c.HeadDim = f.posInt("head_dim")
	} else if c.NumHeads > 0 {
		c.HeadDim = c.HiddenSize / c.NumHeads
	}
	c.RMSNormEps = f.num("rms_norm_eps", 1e-6)
	c.MaxPositionEmbeddings = int(f.num("max_position_embeddings", 0))
	c.TieWordEmbeddings = f.boolean("tie_word_embeddings", false)
	c.DType = f.str("torch_dtype", f.str("dtype", "float32"))
	if act := f.str("hidden_act", "silu"); act != "silu" {
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
	case "llama":
		c.QKVBias, c.OBias = attnBias, attnBias
	}

	// RoPE: rope_theta at top level, or inside transformers v5's rope_parameters.
	c.RopeTheta = f.num("rope_theta", 10000)
	scaling := f.obj("rope_scaling")
	if rp := f.obj("rope_parameters"); rp != nil {
		pf := fields{raw: rp, prefix: "rope_parameters."}
		c.RopeTheta = pf.num("rope_theta", c.RopeTheta)
		if scaling == nil {
			scaling = rp
		}
		f.err = errors.Join(f.err, pf.err)
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
		default:
			sf.fail("rope type %q is not supported (supported: default, llama3)", typ)
		}
		f.err = errors.Join(f.err, sf.err)
	}

	// Sliding windows: Qwen's is active only with use_sliding_window; Mistral's
	// whenever sliding_window is a number. An active window is enforced as a
	// limit on sequence length, where it changes nothing.
	if c.ModelType == "qwen2" || c.ModelType == "qwen3" {
		if f.boolean("use_sliding_window", false) {
			f.fail("use_sliding_window true is not supported")
		}
	} else if f.has("sliding_window") && raw["sliding_window"] != nil {
		c.SlidingWindow = f.posInt("sliding_window")
	}

	c.BOSTokenID = f.optInt("bos_token_id")
	c.PadTokenID = f.optInt("pad_token_id")
	c.EOSTokenIDs = f.intList("eos_token_id")

	if f.err != nil {
		return Config{}, f.err
	}
	if c.NumHeads%c.NumKVHeads != 0 {
		return Config{}, fmt.Errorf("num_attention_heads %d is not a multiple of num_key_value_heads %d", c.NumHeads, c.NumKVHeads)
	}
	if c.HeadDim%2 != 0 {
		return Config{}, fmt.Errorf("head_dim %d must be even for rotary embeddings", c.HeadDim)
	}
	if !f.has("head_dim") && c.HiddenSize%c.NumHeads != 0 {
		return Config{}, fmt.Errorf("hidden_size %d is not a multiple of num_attention_heads %d", c.HiddenSize, c.NumHeads)
	}
	if c.NumParams() > 1<<40 {
		return Config{}, fmt.Errorf("the configured model has %d parameters, beyond what relupo can hold", c.NumParams())
	}
	return c, nil
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
	f.err = errors.Join(f.err, fmt.Errorf(format, args...))
}

func (f *fields) has(key string) bool { _, ok := f.raw[key]; return ok }

func (f *fields) num(key string, def float64) float64 {
	v, ok := f.raw[key]
	if !ok || v == nil {
		return def
	}
	x, ok := v.(float64)
	if !ok {
		f.fail("%s%s: want a number, got %v", f.prefix, key, v)
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
		f.fail("%s%s: want a positive integer, got %v", f.prefix, key, v)
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
		f.fail("%s%s: want a non-negative integer, got %v", f.prefix, key, v)
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
