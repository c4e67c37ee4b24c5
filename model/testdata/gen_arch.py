#!/usr/bin/python3
"""Generate reference values for relupo's model tests on architectures the
shared golden set does not cover: GQA with tied embeddings and another
rope_theta, Llama 3.1 "llama3" RoPE scaling, Qwen2 (q/k/v biases), Qwen3
(per-head q/k RMSNorm, explicit head_dim), Mistral and SmolLM3 (NoPE layers:
no_rope_layers, or one every no_rope_layer_interval layers; with
use_sliding_window, sliding windows on the layers layer_types marks, by
default the NoPE layers, as SmolLM3Config derives them) and OLMo-2 (no input
norms; post_attention_layernorm and post_feedforward_layernorm on the
attention and MLP outputs before their residual adds; q_norm and k_norm over
each token's whole q and k projections, before RoPE), Phi-3 (qkv_proj and
gate_up_proj: the q, k, v and gate, up rows stored fused; a sliding window on
every layer), OLMo 3 (OLMo-2 with a
sliding window on three of every four layers) and Granite
(embedding_multiplier on the embeddings, attention_multiplier as the attention
scale, residual_multiplier on each block's output before its residual add,
logits divided by logits_scaling).

The PyTorch model below follows Hugging Face transformers' eager code paths
(LlamaForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM, MistralForCausalLM,
SmolLM3ForCausalLM, Olmo2ForCausalLM, Olmo3ForCausalLM, GraniteForCausalLM,
Phi3ForCausalLM)
and reuses the shared reference implementation (../shared/reference/llama_ref.py)
for safetensors I/O and RoPE helpers.

Run from the repository root:
    /usr/bin/python3 model/testdata/gen_arch.py
It writes model/testdata/arch/<case>/{config.json,model.safetensors,grads.safetensors}
and model/testdata/arch/expected.json. Tests read only those files.
"""
import json, math, os, sys
import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "..", "shared", "reference"))
import llama_ref as L  # noqa: E402

torch.set_num_threads(1)
OUT = os.path.join(HERE, "arch")


def yarn_inv_freq(cfg, dim):
    """transformers' current _compute_yarn_parameters: (inv_freq, attention_factor)."""
    rs, base = cfg["rope_scaling"], cfg["rope_theta"]
    factor = rs["factor"]
    if "original_max_position_embeddings" in rs:
        orig = rs["original_max_position_embeddings"]
        factor = cfg["max_position_embeddings"] / orig
    else:
        orig = cfg["max_position_embeddings"]

    def get_mscale(scale, mscale=1):
        return 1.0 if scale <= 1 else 0.1 * mscale * math.log(scale) + 1.0

    af = rs.get("attention_factor")
    if af is None:
        if rs.get("mscale") and rs.get("mscale_all_dim"):
            af = float(get_mscale(factor, rs["mscale"]) / get_mscale(factor, rs["mscale_all_dim"]))
        else:
            af = get_mscale(factor)
    beta_fast, beta_slow = rs.get("beta_fast") or 32, rs.get("beta_slow") or 1

    def corr(rot):
        return (dim * math.log(orig / (rot * 2 * math.pi))) / (2 * math.log(base))

    low, high = corr(beta_fast), corr(beta_slow)
    if rs.get("truncate", True):
        low, high = math.floor(low), math.ceil(high)
    low, high = max(low, 0), min(high, dim - 1)
    if low == high:
        high += 0.001
    pos_freqs = base ** (torch.arange(0, dim, 2).float() / dim)
    extrap, interp = 1.0 / pos_freqs, 1.0 / (factor * pos_freqs)
    ramp = torch.clamp((torch.arange(dim // 2, dtype=torch.float32) - low) / (high - low), 0, 1)
    ef = 1 - ramp
    return interp * (1 - ef) + extrap * ef, af


def llama3_inv_freq(cfg, head_dim):
    inv = L.rope_inv_freq(head_dim, cfg["rope_theta"])
    rs = cfg.get("rope_scaling")
    if not rs:
        return inv
    # transformers' _compute_llama3_parameters
    factor, lo, hi = rs["factor"], rs["low_freq_factor"], rs["high_freq_factor"]
    old = rs["original_max_position_embeddings"]
    low_wl, high_wl = old / lo, old / hi
    wavelen = 2 * math.pi / inv
    inv_l = torch.where(wavelen > low_wl, inv / factor, inv)
    smooth = (old / wavelen - lo) / (hi - lo)
    smoothed = (1 - smooth) * inv_l / factor + smooth * inv_l
    medium = ~(wavelen < high_wl) * ~(wavelen > low_wl)
    return torch.where(medium, smoothed, inv_l)


def smollm3_layers(cfg):
    """SmolLM3Config.__post_init__: per layer, (applies RoPE, slides)."""
    n = cfg["num_hidden_layers"]
    rope = cfg.get("no_rope_layers")
    if rope is None:
        rope = [int((i + 1) % cfg.get("no_rope_layer_interval", 4) != 0) for i in range(n)]
    types = cfg.get("layer_types")
    if types is None:
        types = ["sliding_attention" if cfg.get("use_sliding_window") and cfg.get("sliding_window") is not None
                 and not rope[i] else "full_attention" for i in range(n)]
    slide = [bool(cfg.get("use_sliding_window")) and types[i] == "sliding_attention" for i in range(n)]
    return [bool(r) for r in rope[:n]], slide


class Attn(nn.Module):
    def __init__(self, cfg, use_rope=True):
        super().__init__()
        self.use_rope = use_rope
        self.scaling = cfg["attention_multiplier"] if cfg["model_type"] == "granite" else None
        D, H, KV = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"]
        hd = cfg.get("head_dim") or D // H
        self.H, self.KV, self.hd = H, KV, hd
        if self.scaling is None:
            self.scaling = hd ** -0.5
        qkv_bias = cfg["model_type"] == "qwen2" or cfg.get("attention_bias", False)
        o_bias = cfg["model_type"] in ("llama", "qwen3", "olmo2", "olmo3") and cfg.get("attention_bias", False)
        self.q_proj = nn.Linear(D, H * hd, bias=qkv_bias)
        self.k_proj = nn.Linear(D, KV * hd, bias=qkv_bias)
        self.v_proj = nn.Linear(D, KV * hd, bias=qkv_bias)
        self.o_proj = nn.Linear(H * hd, D, bias=o_bias)
        self.qk_norm = cfg["model_type"] == "qwen3"
        if self.qk_norm:
            self.q_norm = L.LlamaRMSNorm(hd, cfg["rms_norm_eps"])
            self.k_norm = L.LlamaRMSNorm(hd, cfg["rms_norm_eps"])
        self.olmo2 = cfg["model_type"] in ("olmo2", "olmo3")
        if self.olmo2:  # Olmo2Attention: norms over the whole projections
            self.q_norm = L.LlamaRMSNorm(H * hd, cfg["rms_norm_eps"])
            self.k_norm = L.LlamaRMSNorm(KV * hd, cfg["rms_norm_eps"])

    def forward(self, x, cos, sin, mask):
        b, t, _ = x.shape
        q, k = self.q_proj(x), self.k_proj(x)
        if self.olmo2:
            q, k = self.q_norm(q), self.k_norm(k)
        q = q.view(b, t, self.H, self.hd)
        k = k.view(b, t, self.KV, self.hd)
        v = self.v_proj(x).view(b, t, self.KV, self.hd).transpose(1, 2)
        if self.qk_norm:
            q, k = self.q_norm(q), self.k_norm(k)
        q, k = q.transpose(1, 2), k.transpose(1, 2)
        if self.use_rope:
            rd = cos.shape[-1]  # partial_rotary_factor: rotate the first rd values of each head
            if rd < self.hd:
                qr, kr = L.apply_rotary_pos_emb(q[..., :rd], k[..., :rd], cos, sin)
                q, k = torch.cat([qr, q[..., rd:]], -1), torch.cat([kr, k[..., rd:]], -1)
            else:
                q, k = L.apply_rotary_pos_emb(q, k, cos, sin)
        k, v = L.repeat_kv(k, self.H // self.KV), L.repeat_kv(v, self.H // self.KV)
        a = torch.matmul(q, k.transpose(2, 3)) * self.scaling + mask
        a = F.softmax(a, dim=-1, dtype=torch.float32).to(q.dtype)
        return self.o_proj(torch.matmul(a, v).transpose(1, 2).reshape(b, t, self.H * self.hd))


class Layer(nn.Module):
    def __init__(self, cfg, use_rope=True, window=None):
        super().__init__()
        self.window = window
        self.self_attn = Attn(cfg, use_rope)
        self.mlp = L.LlamaMLP(cfg)
        self.olmo2 = cfg["model_type"] in ("olmo2", "olmo3")
        self.residual = cfg["residual_multiplier"] if cfg["model_type"] == "granite" else None
        if not self.olmo2:
            self.input_layernorm = L.LlamaRMSNorm(cfg["hidden_size"], cfg["rms_norm_eps"])
        self.post_attention_layernorm = L.LlamaRMSNorm(cfg["hidden_size"], cfg["rms_norm_eps"])
        if self.olmo2:
            self.post_feedforward_layernorm = L.LlamaRMSNorm(cfg["hidden_size"], cfg["rms_norm_eps"])

    def forward(self, x, cos, sin, mask):
        if self.olmo2:  # Olmo2DecoderLayer: norms after attention and MLP
            x = x + self.post_attention_layernorm(self.self_attn(x, cos, sin, mask))
            return x + self.post_feedforward_layernorm(self.mlp(x))
        if self.residual is not None:  # GraniteDecoderLayer
            x = x + self.self_attn(self.input_layernorm(x), cos, sin, mask) * self.residual
            return x + self.mlp(self.post_attention_layernorm(x)) * self.residual
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, mask)
        return x + self.mlp(self.post_attention_layernorm(x))


class Inner(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.embed_tokens = nn.Embedding(cfg["vocab_size"], cfg["hidden_size"])
        n = cfg["num_hidden_layers"]
        rope, slide = smollm3_layers(cfg) if cfg["model_type"] == "smollm3" else ([True] * n, [False] * n)
        if cfg["model_type"] == "phi3" and cfg.get("sliding_window") is not None:  # Phi3Attention: every layer
            slide = [True] * n
        if cfg["model_type"] == "olmo3":  # Olmo3Config: three of every four layers slide
            types = cfg.get("layer_types") or ["sliding_attention" if (i + 1) % 4 else "full_attention" for i in range(n)]
            slide = [t == "sliding_attention" for t in types]
        self.layers = nn.ModuleList([Layer(cfg, rope[i], cfg["sliding_window"] if slide[i] else None)
                                     for i in range(n)])
        self.norm = L.LlamaRMSNorm(cfg["hidden_size"], cfg["rms_norm_eps"])


class CausalLM(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.config = cfg
        self.model = Inner(cfg)
        self.lm_head = nn.Linear(cfg["hidden_size"], cfg["vocab_size"], bias=False)
        if cfg.get("tie_word_embeddings"):
            self.lm_head.weight = self.model.embed_tokens.weight

    def forward(self, ids):
        b, t = ids.shape
        cfg = self.config
        hd = cfg.get("head_dim") or cfg["hidden_size"] // cfg["num_attention_heads"]
        af = 1.0
        rtype = (cfg.get("rope_scaling") or {}).get("rope_type", (cfg.get("rope_scaling") or {}).get("type"))
        if rtype == "yarn":
            inv, af = yarn_inv_freq(cfg, hd)
        elif rtype == "longrope":  # _compute_longrope_parameters within original_max_position_embeddings
            rd = int(hd * cfg.get("partial_rotary_factor", 1.0))
            orig = cfg["original_max_position_embeddings"]
            factor = cfg["max_position_embeddings"] / orig
            af = 1.0 if factor <= 1.0 else math.sqrt(1 + math.log(factor) / math.log(orig))
            assert t <= orig
            ext = torch.tensor(cfg["rope_scaling"]["short_factor"], dtype=torch.float32)
            inv = 1.0 / (ext * cfg["rope_theta"] ** (torch.arange(0, rd, 2, dtype=torch.int64).float() / rd))
        else:
            inv = llama3_inv_freq(cfg, hd)
        freqs = torch.arange(t, dtype=torch.int64)[None, :, None].float() * inv
        emb = torch.cat((freqs, freqs), -1)
        cos, sin = emb.cos() * af, emb.sin() * af
        mask = L.build_mask(None, t, torch.float32)
        x = self.model.embed_tokens(ids)
        if cfg["model_type"] == "granite":
            x = x * cfg["embedding_multiplier"]
        for layer in self.model.layers:
            m = mask
            if layer.window is not None:  # key j visible from query i when i - window < j <= i
                i = torch.arange(t)[:, None]
                j = torch.arange(t)[None, :]
                m = mask.masked_fill(j <= i - layer.window, torch.finfo(torch.float32).min)
            x = layer(x, cos, sin, m)
        logits = self.lm_head(self.model.norm(x))
        if cfg["model_type"] == "granite":
            logits = logits / cfg["logits_scaling"]
        return logits

    def hf_state_dict(self):
        sd = {k: v.detach() for k, v in self.state_dict().items()}
        if self.config.get("tie_word_embeddings"):
            sd.pop("lm_head.weight")
        return sd


def base(**kw):
    cfg = dict(L.DEFAULT_CONFIG, vocab_size=96, hidden_size=48, intermediate_size=80, num_hidden_layers=2,
               num_attention_heads=6, num_key_value_heads=2, rms_norm_eps=1e-6, max_position_embeddings=256)
    cfg.update(kw)
    return cfg


CASES = {
    "llama-gqa-tied": base(tie_word_embeddings=True, rope_theta=500000.0, num_hidden_layers=3),
    "llama3-rope": base(rope_theta=500000.0, head_dim=16, num_attention_heads=3, num_key_value_heads=1,
                        rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                      "high_freq_factor": 4.0, "original_max_position_embeddings": 64}),
    "qwen2": base(model_type="qwen2", architectures=["Qwen2ForCausalLM"], rope_theta=1000000.0,
                  use_sliding_window=False, sliding_window=4096),
    "qwen3": base(model_type="qwen3", architectures=["Qwen3ForCausalLM"], head_dim=16, num_attention_heads=4,
                  num_key_value_heads=2, tie_word_embeddings=True, attention_bias=False, use_sliding_window=False),
    "mistral": base(model_type="mistral", architectures=["MistralForCausalLM"], sliding_window=4096,
                    num_attention_heads=4, num_key_value_heads=4),
    "smollm3": base(model_type="smollm3", architectures=["SmolLM3ForCausalLM"], num_hidden_layers=4,
                    no_rope_layers=[1, 0, 1, 0], rope_theta=5000000.0, tie_word_embeddings=True,
                    use_sliding_window=False, sliding_window=None),
    "smollm3-sliding": base(model_type="smollm3", architectures=["SmolLM3ForCausalLM"], num_hidden_layers=3,
                            no_rope_layer_interval=2, rope_theta=2000000.0, use_sliding_window=True,
                            sliding_window=5),
    "olmo2": base(model_type="olmo2", architectures=["Olmo2ForCausalLM"], num_attention_heads=4,
                  num_key_value_heads=2, rms_norm_eps=1e-6, rope_theta=500000.0, attention_bias=False),
    "granite": base(model_type="granite", architectures=["GraniteForCausalLM"], num_attention_heads=4,
                    num_key_value_heads=2, tie_word_embeddings=True, attention_bias=False, rope_theta=10000000.0,
                    embedding_multiplier=12.0, attention_multiplier=0.0625, residual_multiplier=0.22,
                    logits_scaling=3.0),
    "olmo3": base(model_type="olmo3", architectures=["Olmo3ForCausalLM"], num_hidden_layers=4, num_attention_heads=4,
                  num_key_value_heads=2, rms_norm_eps=1e-6, rope_theta=500000.0, attention_bias=False, sliding_window=5),
    # YaRN as Qwen documents it, with max_position_embeddings = original × factor.
    "qwen2-yarn": base(model_type="qwen2", architectures=["Qwen2ForCausalLM"], rope_theta=10000.0,
                       use_sliding_window=False, max_position_embeddings=8192,
                       rope_scaling={"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 2048}),
    # YaRN from max_position_embeddings, other betas, no truncation, mscale.
    "llama-yarn": base(rope_theta=10000.0, head_dim=16, num_attention_heads=3, num_key_value_heads=1,
                       max_position_embeddings=4096,
                       rope_scaling={"rope_type": "yarn", "factor": 2.5, "beta_fast": 16, "beta_slow": 2,
                                     "truncate": False, "mscale": 1.2, "mscale_all_dim": 0.8}),
    # Phi-3: q, k, v and gate, up stored fused; a window on every layer.
    "phi3": base(model_type="phi3", architectures=["Phi3ForCausalLM"], num_attention_heads=4, num_key_value_heads=2,
                 rms_norm_eps=1e-5, sliding_window=6, attention_bias=False, original_max_position_embeddings=256,
                 partial_rotary_factor=1.0, resid_pdrop=0.0, embd_pdrop=0.0),
    # Phi-4-mini's layout: RoPE on half of each head (partial_rotary_factor), LongRoPE's short factors and
    # attention factor (sequences within original_max_position_embeddings), tied embeddings.
    "phi3-longrope": base(model_type="phi3", architectures=["Phi3ForCausalLM"], num_attention_heads=4,
                          num_key_value_heads=2, rms_norm_eps=1e-5, sliding_window=None, attention_bias=False,
                          tie_word_embeddings=True, partial_rotary_factor=0.5, original_max_position_embeddings=64,
                          max_position_embeddings=256, rope_theta=10000.0,
                          rope_scaling={"type": "longrope", "short_factor": [1.0, 1.3, 2.1],
                                        "long_factor": [1.5, 2.0, 3.0]}),
}
for c in CASES.values():
    c.pop("attention_bias", None) if c["model_type"] in ("qwen2", "mistral") else None

def fuse(cfg, sd):
    """Phi3ForCausalLM's tensor layout: q, k, v rows as one qkv_proj, gate and up rows as one gate_up_proj."""
    if cfg["model_type"] != "phi3":
        return sd
    out = {}
    for name, t in sd.items():
        if ".self_attn.q_proj." in name:
            pre = name.split("q_proj")[0]
            out[pre + "qkv_proj.weight"] = torch.cat([sd[pre + "q_proj.weight"], sd[pre + "k_proj.weight"], sd[pre + "v_proj.weight"]])
        elif ".mlp.gate_proj." in name:
            pre = name.split("gate_proj")[0]
            out[pre + "gate_up_proj.weight"] = torch.cat([sd[pre + "gate_proj.weight"], sd[pre + "up_proj.weight"]])
        elif not any(k in name for k in (".k_proj.", ".v_proj.", ".up_proj.")):
            out[name] = t
    return out


# Sequences: (prompt, response) pairs of ids; positions restart for each.
g = torch.Generator().manual_seed(7)
SEQS = []
for plen, rlen in [(5, 7), (1, 9), (12, 4), (0, 6), (20, 17)]:
    SEQS.append((torch.randint(0, 96, (plen,), generator=g).tolist(), torch.randint(0, 96, (rlen,), generator=g).tolist()))
# dL/dS per sequence: an arbitrary linear loss L = Σ w_s S_s exercises every path of backward.
WEIGHTS = [0.7, -1.3, 0.25, 2.0, -0.5]

expected = {"sequences": [{"prompt": p, "response": r} for p, r in SEQS], "dsums": WEIGHTS, "cases": {}}
for ci, (name, cfg) in enumerate(CASES.items()):
    torch.manual_seed(0)
    m = CausalLM(cfg)
    gen = torch.Generator().manual_seed(100 + ci)
    with torch.no_grad():
        for pn, p in m.named_parameters():
            if pn.endswith("norm.weight"):
                p.copy_(1 + 0.1 * torch.randn(p.shape, generator=gen))
            else:
                p.copy_(0.15 * torch.randn(p.shape, generator=gen))
    total = 0.0
    sums, counts = [], []
    for (p, r), w in zip(SEQS, WEIGHTS):
        ids = torch.tensor([p + r])
        logits = m(ids)[0, :-1]
        lp = torch.log_softmax(logits, -1).gather(1, ids[0, 1:, None])[:, 0]
        first = max(len(p), 1)
        s = lp[first - 1:].sum()
        sums.append(float(s))
        counts.append(len(p) + len(r) - first)
        total = total + w * s
    m.zero_grad()
    total.backward()
    d = os.path.join(OUT, name)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    L.save_safetensors(os.path.join(d, "model.safetensors"), fuse(cfg, m.hf_state_dict()), {"format": "pt"})
    grads = fuse(cfg, {n: p.grad.detach().clone() for n, p in m.named_parameters()})
    L.save_safetensors(os.path.join(d, "grads.safetensors"), grads)
    expected["cases"][name] = {"logp_sums": sums, "counts": counts}
    print(name, sums)
with open(os.path.join(OUT, "expected.json"), "w") as f:
    json.dump(expected, f, indent=1)
