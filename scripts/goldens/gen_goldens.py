#!/usr/bin/python3
"""Regenerate the small golden files that let the PyTorch comparisons of
packages model, optim and pref run from a plain clone (no ../shared).

Usage, from anywhere (paths are relative to this file):

    OMP_WAIT_POLICY=PASSIVE OMP_NUM_THREADS=2 /usr/bin/python3 scripts/goldens/gen_goldens.py

Needs PyTorch and numpy only (Debian: apt-get install python3-torch
python3-numpy); no transformers, no safetensors module, no downloads. Every
PyTorch reference below is written here, independently of relupo's Go code:

  * a Hugging Face-faithful Llama (LlamaForCausalLM's eager path): RMSNorm
    (computed in float32, then times the weight), RoPE in the rotate_half
    convention with the config's rope_theta, grouped-query attention (kv head j
    serves query heads j*g .. j*g+g-1, HF repeat_kv) with a causal and
    key-padding mask and a float32 softmax, SwiGLU MLP, pre-norm residual
    blocks, final norm and an untied (or tied) lm_head; TRL's per-sequence
    log-prob sums over response tokens of a right-padded batch;
  * the preference losses in relupo's conventions (pref/pref.go, the project's
    method notes section B), with their metrics, and the SimPO/RePO sft_weight
    term;
  * torch.optim.AdamW with the HF Trainer's weight-decay groups,
    torch.nn.utils.clip_grad_norm_, and transformers' get_scheduler lambdas.

The model is a small random Llama drawn here with a fixed seed, so the files
stay tiny (about 200 KB in all; the model here is untied). Outputs:

  model/testdata/golden/config.json         the model's config.json (HF names)
  model/testdata/golden/model.safetensors   its float32 weights (HF names)
  model/testdata/golden/grads.safetensors   float32 autograd gradients of
                                            L = sum_s dS[s] * S[s]
  model/testdata/golden/expected.json       batch, dS, float32 log-prob sums and
                                            counts, float64 deviation, bf16
                                            autocast drift
  optim/testdata/golden/adamw.json          AdamW/clipping cases (scalars)
  optim/testdata/golden/adamw.safetensors   their tensors
  optim/testdata/golden/schedules.json      learning-rate schedules, warmup steps
  pref/testdata/golden/losses.json          every loss type, the sft_weight term

The runs are deterministic for a given PyTorch build; another build or thread
count may move float32 results in the last bits, which the Go tests' tolerances
absorb.
"""
import json
import math
import os
import re
import struct
from collections import OrderedDict

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
GENERATOR = "scripts/goldens/gen_goldens.py, torch %s, numpy %s" % (torch.__version__, np.__version__)


# --------------------------------------------------------------- file output
def save_safetensors(path, tensors, metadata=None):
    """safetensors by hand: u64 little-endian header length, JSON header
    (space-padded to a multiple of 8), then the raw little-endian data.
    tensors: name -> float32 tensor. Names are written sorted."""
    header = OrderedDict()
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    blobs, off = [], 0
    for name in sorted(tensors):
        t = tensors[name].detach().to(torch.float32).contiguous().reshape(-1)
        b = struct.pack("<%df" % t.numel(), *t.tolist())
        header[name] = {"dtype": "F32", "shape": list(tensors[name].shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    hb = json.dumps(header, separators=(",", ":")).encode()
    hb += b" " * ((8 - len(hb) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hb)))
        f.write(hb)
        for b in blobs:
            f.write(b)


def load_safetensors(path):
    """Reads back what save_safetensors wrote (F32 only)."""
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    header.pop("__metadata__", None)
    out = {}
    for name, info in header.items():
        b, e = info["data_offsets"]
        vals = struct.unpack("<%df" % ((e - b) // 4), raw[8 + n + b:8 + n + e])
        out[name] = torch.tensor(vals, dtype=torch.float32).reshape(info["shape"])
    return out


def _dumps(v, ind=0):
    """JSON with one object member per line and lists of scalars on one line."""
    pad = " " * (ind + 1)
    if isinstance(v, dict):
        if not v:
            return "{}"
        items = ["%s%s: %s" % (pad, json.dumps(k), _dumps(x, ind + 1)) for k, x in v.items()]
        return "{\n" + ",\n".join(items) + "\n" + " " * ind + "}"
    if isinstance(v, (list, tuple)) and any(isinstance(x, (dict, list, tuple)) for x in v):
        return "[\n" + ",\n".join(pad + _dumps(x, ind + 1) for x in v) + "\n" + " " * ind + "]"
    return json.dumps(v)


def write_json(path, obj):
    text = _dumps(obj)
    assert json.loads(text) == json.loads(json.dumps(obj))
    with open(path, "w") as f:
        f.write(text + "\n")


def floats(t):
    """Python floats of a tensor (exact: float32 values are float64 values)."""
    return [float(x) for x in t.detach().reshape(-1).tolist()]


# ------------------------------------------------------------ Llama reference
class RMSNorm(nn.Module):
    """LlamaRMSNorm: x * rsqrt(mean(x^2) + eps) in float32, cast back, times weight."""

    def __init__(self, n, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(n))
        self.eps = eps

    def forward(self, x):
        dtype = x.dtype
        h = x.to(torch.float32) if dtype in (torch.float16, torch.bfloat16) else x
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * h.to(dtype)


def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


class Attention(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        D, self.H, self.KV = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"]
        self.hd = D // self.H
        self.q_proj = nn.Linear(D, self.H * self.hd, bias=False)
        self.k_proj = nn.Linear(D, self.KV * self.hd, bias=False)
        self.v_proj = nn.Linear(D, self.KV * self.hd, bias=False)
        self.o_proj = nn.Linear(self.H * self.hd, D, bias=False)

    def forward(self, x, cos, sin, mask):
        B, T, _ = x.shape
        q = self.q_proj(x).view(B, T, self.H, self.hd).transpose(1, 2)
        k = self.k_proj(x).view(B, T, self.KV, self.hd).transpose(1, 2)
        v = self.v_proj(x).view(B, T, self.KV, self.hd).transpose(1, 2)
        c, s = cos[:, None], sin[:, None]  # [B, 1, T, hd]
        q = q * c + rotate_half(q) * s
        k = k * c + rotate_half(k) * s
        g = self.H // self.KV  # HF repeat_kv: query head h reads kv head h // g
        k = k.repeat_interleave(g, dim=1)
        v = v.repeat_interleave(g, dim=1)
        att = torch.matmul(q, k.transpose(2, 3)) * self.hd ** -0.5 + mask
        sm = torch.float64 if q.dtype == torch.float64 else torch.float32
        att = F.softmax(att, dim=-1, dtype=sm).to(q.dtype)
        out = torch.matmul(att, v).transpose(1, 2).reshape(B, T, self.H * self.hd)
        return self.o_proj(out)


class MLP(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        D, I = cfg["hidden_size"], cfg["intermediate_size"]
        self.gate_proj = nn.Linear(D, I, bias=False)
        self.up_proj = nn.Linear(D, I, bias=False)
        self.down_proj = nn.Linear(I, D, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class Layer(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.input_layernorm = RMSNorm(cfg["hidden_size"], cfg["rms_norm_eps"])
        self.self_attn = Attention(cfg)
        self.post_attention_layernorm = RMSNorm(cfg["hidden_size"], cfg["rms_norm_eps"])
        self.mlp = MLP(cfg)

    def forward(self, x, cos, sin, mask):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, mask)
        return x + self.mlp(self.post_attention_layernorm(x))


class Trunk(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.embed_tokens = nn.Embedding(cfg["vocab_size"], cfg["hidden_size"])
        self.layers = nn.ModuleList([Layer(cfg) for _ in range(cfg["num_hidden_layers"])])
        self.norm = RMSNorm(cfg["hidden_size"], cfg["rms_norm_eps"])


class Llama(nn.Module):
    """LlamaForCausalLM; named_parameters() gives the HF state-dict names."""

    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.model = Trunk(cfg)
        self.lm_head = nn.Linear(cfg["hidden_size"], cfg["vocab_size"], bias=False)
        if cfg["tie_word_embeddings"]:
            self.lm_head.weight = self.model.embed_tokens.weight

    def forward(self, ids, attn_mask):
        B, T = ids.shape
        cfg = self.cfg
        hd = cfg["hidden_size"] // cfg["num_attention_heads"]
        x = self.model.embed_tokens(ids)
        # LlamaRotaryEmbedding: inv_freq in float32 from int64 exponents,
        # position_ids = arange(T) (right padding), cos/sin cast to x's dtype.
        inv = 1.0 / (cfg["rope_theta"] ** (torch.arange(0, hd, 2, dtype=torch.int64).float() / hd))
        pos = torch.arange(T, dtype=torch.int64)[None].expand(B, T)
        freqs = pos[..., None].float() * inv
        emb = torch.cat((freqs, freqs), dim=-1)
        cos, sin = emb.cos().to(x.dtype), emb.sin().to(x.dtype)
        allowed = torch.ones(T, T, dtype=torch.bool).tril()[None, None] & attn_mask[:, None, None, :].bool()
        mask = torch.where(allowed, torch.zeros((), dtype=x.dtype), torch.full((), torch.finfo(x.dtype).min, dtype=x.dtype))
        for layer in self.model.layers:
            x = layer(x, cos, sin, mask)
        return self.lm_head(self.model.norm(x))


def state_dict_hf(model):
    """Parameters as save_pretrained writes them (a tied lm_head omitted)."""
    return OrderedDict((n, p.detach()) for n, p in model.named_parameters())


def pad_batch(seqs, plens):
    """Right-padded input ids, attention mask and loss mask (1 on response tokens)."""
    T = max(len(s) for s in seqs)
    ids = torch.zeros(len(seqs), T, dtype=torch.int64)
    am = torch.zeros(len(seqs), T, dtype=torch.int64)
    lm = torch.zeros(len(seqs), T, dtype=torch.int64)
    for i, (s, p) in enumerate(zip(seqs, plens)):
        ids[i, :len(s)] = torch.tensor(s)
        am[i, :len(s)] = 1
        lm[i, p:len(s)] = 1
    return ids, am, lm


def sequence_logps(model, ids, am, lm):
    """TRL: logits[:, t] predicts ids[:, t+1], counted where loss_mask[:, t+1] = 1.
    (With an empty prompt the first token has no prediction and is not counted.)"""
    logits = model(ids, am)[:, :-1]
    if logits.dtype in (torch.float16, torch.bfloat16):
        logits = logits.float()  # log-softmax in float32, as under autocast
    logp = torch.log_softmax(logits, dim=-1).gather(2, ids[:, 1:, None]).squeeze(-1)
    mask = lm[:, 1:].to(logp.dtype)
    return (logp * mask).sum(-1), mask.sum(-1)


# -------------------------------------------------------------------- model
MODEL_CFG = OrderedDict([
    ("architectures", ["LlamaForCausalLM"]), ("model_type", "llama"),
    ("vocab_size", 64), ("hidden_size", 32), ("intermediate_size", 48),
    ("num_hidden_layers", 2), ("num_attention_heads", 4), ("num_key_value_heads", 2),
    ("hidden_act", "silu"), ("max_position_embeddings", 64), ("initializer_range", 0.02),
    ("rms_norm_eps", 1e-5), ("rope_theta", 500.0), ("rope_scaling", None),
    ("attention_bias", False), ("attention_dropout", 0.0), ("mlp_bias", False),
    ("tie_word_embeddings", False), ("bos_token_id", 1), ("eos_token_id", 2), ("pad_token_id", 0),
    ("torch_dtype", "float32"),
])
MODEL_SEED, DATA_SEED = 20250611, 424242
WEIGHT_STD, NORM_JITTER = 0.15, 0.1
# Four pairs; prompt lengths include an empty prompt and a one-token prompt.
PROMPT_LENS, CHOSEN_LENS, REJECTED_LENS = [6, 3, 0, 1], [5, 9, 4, 3], [7, 2, 6, 11]
# dL/dS per sequence (chosen 0..3, then rejected 0..3), of the sign a
# preference loss gives; the gradients are those of L = sum_s dS[s] * S[s].
DSUMS = [-0.31, -0.17, -0.45, -0.08, 0.26, 0.4, 0.12, 0.21]


def make_model():
    m = Llama(MODEL_CFG)
    g = torch.Generator().manual_seed(MODEL_SEED)
    with torch.no_grad():
        for name, p in m.named_parameters():
            if name.endswith("norm.weight"):
                # 1 + jitter, so that the norm weights matter in the gradients
                p.copy_(1.0 + NORM_JITTER * torch.randn(p.shape, generator=g))
            else:
                # larger than HF's 0.02 so attention and logits are far from uniform
                p.copy_(WEIGHT_STD * torch.randn(p.shape, generator=g))
    return m


def make_data():
    g = torch.Generator().manual_seed(DATA_SEED)
    rnd = lambda n: torch.randint(3, MODEL_CFG["vocab_size"], (n,), generator=g).tolist()
    prompts = [rnd(n) for n in PROMPT_LENS]
    chosen = [rnd(n) for n in CHOSEN_LENS]
    rejected = [rnd(n) for n in REJECTED_LENS]
    seqs = [p + c for p, c in zip(prompts, chosen)] + [p + r for p, r in zip(prompts, rejected)]
    plens = PROMPT_LENS * 2
    return prompts, chosen, rejected, pad_batch(seqs, plens)


def forward_backward(model, batch, autocast=False):
    """Log-prob sums, counts and the gradient of sum_s dS[s]*S[s], by HF name."""
    model.zero_grad(set_to_none=True)
    ids, am, lm = batch
    if autocast:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            s, n = sequence_logps(model, ids, am, lm)
    else:
        s, n = sequence_logps(model, ids, am, lm)
    dS = torch.tensor(DSUMS, dtype=s.dtype)
    (s * dS).sum().backward()
    grads = OrderedDict((name, p.grad.detach().clone()) for name, p in model.named_parameters())
    return s.detach().double(), n.detach().double(), grads


def drift(sums, counts, grads, ref_sums, ref_grads):
    """The measures model's bf16 test applies, of a run against the float32 one."""
    out = {
        "logp_sum_max_rel_err": float(((sums - ref_sums).abs() / ref_sums.abs().clamp(min=1)).max()),
        "logp_avg_max_abs_err": float(((sums - ref_sums) / counts).abs().max()),
    }
    dot = n1 = n2 = worst = 0.0
    for name, w in ref_grads.items():
        w, g = w.double(), grads[name].double()
        dot += float((w * g).sum()); n1 += float((w * w).sum()); n2 += float((g * g).sum())
        worst = max(worst, float((g - w).abs().max() / w.abs().max().clamp(min=1e-12)))
    out.update(grad_cos=dot / math.sqrt(n1 * n2), grad_norm_ratio=math.sqrt(n2 / n1), worst_tensor_err=worst)
    return out


def gen_model():
    out_dir = os.path.join(ROOT, "model", "testdata", "golden")
    os.makedirs(out_dir, exist_ok=True)
    model = make_model()
    prompts, chosen, rejected, batch = make_data()

    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(MODEL_CFG, f, indent=2)
        f.write("\n")
    save_safetensors(os.path.join(out_dir, "model.safetensors"), state_dict_hf(model), {"format": "pt"})
    back = load_safetensors(os.path.join(out_dir, "model.safetensors"))
    assert all(torch.equal(back[k], v) for k, v in state_dict_hf(model).items())

    sums, counts, grads = forward_backward(model, batch)
    save_safetensors(os.path.join(out_dir, "grads.safetensors"), grads)

    # float64: how far float32 rounding alone moves the same computation
    m64 = make_model().double()
    s64, _, g64 = forward_backward(m64, batch)
    dev = drift(sums, counts, grads, s64, g64)

    # PyTorch's own bf16 autocast on the same batch, against its float32 run
    sb, nb, gb = forward_backward(model, batch, autocast=True)
    assert torch.equal(nb, counts)
    bf = drift(sb, counts, gb, sums, grads)

    write_json(os.path.join(out_dir, "expected.json"), OrderedDict([
        ("generator", GENERATOR),
        ("init", {"seed": MODEL_SEED, "std": WEIGHT_STD, "norm_jitter": NORM_JITTER, "data_seed": DATA_SEED}),
        ("layout", "sequences: prompt_i+chosen_i for each pair i, then prompt_i+rejected_i; "
                   "labels are the response tokens (TRL), the first token of a sequence is never a label"),
        ("prompts", prompts), ("chosen", chosen), ("rejected", rejected),
        ("dsums", DSUMS),
        ("logp_sums", floats(sums)),
        ("counts", [int(c) for c in counts.tolist()]),
        ("f64_logp_sums", floats(s64)),
        ("f32_vs_f64", dev),
        ("bf16_autocast", bf),
        ("bf16_autocast_logp_sums", floats(sb)),
    ]))
    print("model: f32 vs f64", dev)
    print("model: bf16 autocast vs f32", bf)


# -------------------------------------------------------------------- optim
# HF Trainer.get_decay_parameter_names: no decay for names matching these
# (lower-cased), nor for LayerNorm modules.
NO_DECAY = [r"bias", r"layernorm", r"rmsnorm", r"(?:^|\.)norm(?:$|\.)", r"_norm(?:$|\.)"]


def hf_decays(name):
    return not any(re.search(p, name.lower()) for p in NO_DECAY)


OPTIM_PARAMS = [  # HF names, small shapes
    ("model.embed_tokens.weight", [5, 4]),
    ("model.layers.0.input_layernorm.weight", [4]),
    ("model.layers.0.self_attn.q_proj.weight", [4, 4]),
    ("model.layers.0.self_attn.q_proj.bias", [4]),
    ("model.layers.0.mlp.down_proj.weight", [4, 3]),
    ("model.norm.weight", [4]),
    ("lm_head.weight", [5, 4]),
]
OPTIM_CASES = [
    # name, weight decay, max grad norm (0: no clipping), betas, eps, base lr, warmup, steps
    ("wd0.1_clip1", 0.1, 1.0, (0.9, 0.999), 1e-8, 1e-2, 1, 5),
    ("wd0_clip0.5_betas", 0.0, 0.5, (0.8, 0.99), 1e-6, 3e-2, 0, 4),
    ("wd0.5_noclip", 0.5, 0.0, (0.9, 0.999), 1e-8, 1e-2, 2, 5),
]
# (case, step) -> parameters without a gradient on that step (grad None:
# AdamW skips them and their step count lags; clipping ignores them)
OPTIM_NO_GRAD = {("wd0.5_noclip", 2): ["model.layers.0.self_attn.q_proj.bias"],
                 ("wd0.1_clip1", 3): ["model.norm.weight"]}


def linear_lambda(warmup, total):
    def f(k):  # transformers get_linear_schedule_with_warmup
        if k < warmup:
            return float(k) / float(max(1, warmup))
        return max(0.0, float(total - k) / float(max(1, total - warmup)))
    return f


def gen_optim():
    out_dir = os.path.join(ROOT, "optim", "testdata", "golden")
    os.makedirs(out_dir, exist_ok=True)
    g = torch.Generator().manual_seed(7)
    tensors, cases = OrderedDict(), []
    for name, wd, max_norm, betas, eps, base_lr, warmup, steps in OPTIM_CASES:
        params = OrderedDict()
        for pname, shape in OPTIM_PARAMS:
            if pname.endswith("norm.weight"):
                init = 1.0 + 0.1 * torch.randn(shape, generator=g)
            else:
                init = 0.5 * torch.randn(shape, generator=g)
            params[pname] = nn.Parameter(init)
        groups = [{"params": [p for n, p in params.items() if hf_decays(n)], "weight_decay": wd},
                  {"params": [p for n, p in params.items() if not hf_decays(n)], "weight_decay": 0.0}]
        opt = torch.optim.AdamW(groups, lr=base_lr, betas=betas, eps=eps, foreach=False)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, linear_lambda(warmup, steps))
        flat = lambda get: torch.cat([get(pn, p).detach().reshape(-1) for pn, p in params.items()])
        tensors["%s/init" % name] = flat(lambda pn, p: p)
        rec = OrderedDict([("name", name), ("weight_decay", wd), ("max_grad_norm", max_norm),
                           ("beta1", betas[0]), ("beta2", betas[1]), ("eps", eps),
                           ("params", [OrderedDict([("name", n), ("shape", s), ("decay", hf_decays(n))])
                                       for n, s in OPTIM_PARAMS]),
                           ("steps", [])])
        for k in range(steps):
            # gradients of varying size, so clipping acts on some steps only
            scale = [3.0, 0.05, 1.5, 0.2, 0.8][k % 5]
            skip = OPTIM_NO_GRAD.get((name, k), [])
            for pname, p in params.items():
                gr = scale * torch.randn(p.shape, generator=g) / math.sqrt(len(OPTIM_PARAMS))
                p.grad = None if pname in skip else gr
            # gradients as given to the optimizer's caller, before clipping (zeros where None)
            tensors["%s/step%d/grad" % (name, k)] = flat(lambda pn, p: p.grad if p.grad is not None else torch.zeros_like(p))
            with_grad = [p for p in params.values() if p.grad is not None]
            if max_norm > 0:
                norm = float(torch.nn.utils.clip_grad_norm_(with_grad, max_norm))
            else:
                norm = float(torch.norm(torch.stack([torch.norm(p.grad) for p in with_grad])))
            lr = opt.param_groups[0]["lr"]
            opt.step()
            sched.step()
            tensors["%s/step%d/after" % (name, k)] = flat(lambda pn, p: p)
            rec["steps"].append({"lr": lr, "grad_norm": norm, "no_grad": skip,
                                 "clipped": bool(max_norm > 0 and max_norm / (norm + 1e-6) < 1)})
        tensors["%s/exp_avg" % name] = flat(lambda pn, p: opt.state[p]["exp_avg"])
        tensors["%s/exp_avg_sq" % name] = flat(lambda pn, p: opt.state[p]["exp_avg_sq"])
        rec["state_steps"] = OrderedDict((pn, int(opt.state[p]["step"])) for pn, p in params.items())
        cases.append(rec)
    save_safetensors(os.path.join(out_dir, "adamw.safetensors"), tensors)
    write_json(os.path.join(out_dir, "adamw.json"), {"generator": GENERATOR, "cases": cases})

    # transformers get_scheduler lambdas, driven through a real LambdaLR so
    # that lr(k) is the rate optimizer step k (0-based) uses.
    def lam(kind, W, T):
        def warm(k):
            return float(k) / float(max(1.0, W))
        if kind == "constant":
            return lambda k: 1.0
        if kind == "constant_with_warmup":
            return lambda k: warm(k) if k < W else 1.0
        if kind == "linear":
            return linear_lambda(W, T)
        if kind == "cosine":
            def f(k, num_cycles=0.5):
                if k < W:
                    return warm(k)
                p = float(k - W) / float(max(1, T - W))
                return max(0.0, 0.5 * (1.0 + math.cos(math.pi * float(num_cycles) * 2.0 * p)))
            return f
        raise ValueError(kind)

    scheds = []
    for kind, base, W, T in [("constant", 3e-4, 2, 6), ("constant_with_warmup", 1e-3, 3, 8),
                             ("linear", 5e-4, 0, 7), ("linear", 1e-3, 3, 10), ("cosine", 2e-5, 2, 9),
                             ("cosine", 1e-3, 0, 5)]:
        p = nn.Parameter(torch.zeros(1))
        opt = torch.optim.SGD([p], lr=base)
        sch = torch.optim.lr_scheduler.LambdaLR(opt, lam(kind, W, T))
        lrs = []
        for _ in range(T + 3):  # a few steps past the end too
            lrs.append(opt.param_groups[0]["lr"])
            opt.step()
            sch.step()
        scheds.append({"kind": kind, "base_lr": base, "warmup": W, "total": T, "lrs": lrs})
    # TrainingArguments.get_warmup_steps
    warm = [{"warmup_steps": s, "warmup_ratio": r, "total": T,
             "want": s if s > 0 else math.ceil(T * r)}
            for s, r, T in [(0, 0.1, 100), (0, 0.07, 100), (5, 0.5, 100), (0, 0.0, 30), (0, 0.03, 1000), (0, 0.15, 7)]]
    write_json(os.path.join(out_dir, "schedules.json"), {"generator": GENERATOR, "schedules": scheds, "warmup": warm})
    print("optim: %d AdamW cases, %d schedules" % (len(cases), len(scheds)))


# --------------------------------------------------------------------- pref
REF_FREE = ("repo", "repo++", "simpo", "simpo-hinge")

# Six pairs (float64, exact decimals). Pair 4 sits exactly on RePO's
# threshold M = 0.5 (A_w = -1, A_l = -1.5), which PyTorch's ReLU filters.
PREF_INPUTS = OrderedDict([
    ("chosen_logps", [-12.5, -30.25, -7.0, -44.0, -4.0, -9.75]),
    ("rejected_logps", [-15.0, -28.5, -16.5, -40.0, -6.0, -31.5]),
    ("chosen_tokens", [5.0, 12.0, 4.0, 20.0, 4.0, 3.0]),
    ("rejected_tokens", [6.0, 10.0, 5.0, 16.0, 4.0, 9.0]),
    ("ref_chosen_logps", [-13.0, -29.0, -8.5, -45.5, -4.5, -11.0]),
    ("ref_rejected_logps", [-14.0, -29.5, -15.0, -41.0, -5.5, -30.0]),
])


def pref_case(lt, beta, gamma=0.0, ls=0.0, sft=0.0, trl_gamma=None):
    """One loss evaluation by autograd in float64. gamma is relupo's Gamma; for
    simpo, trl_gamma instead evaluates TRL's form beta*M - simpo_gamma (the
    test then uses Gamma = simpo_gamma/beta)."""
    t = lambda k: torch.tensor(PREF_INPUTS[k], dtype=torch.float64)
    pc, pr = t("chosen_logps").requires_grad_(True), t("rejected_logps").requires_grad_(True)
    nc, nr, rc, rr = t("chosen_tokens"), t("rejected_tokens"), t("ref_chosen_logps"), t("ref_rejected_logps")
    if lt in REF_FREE:
        x = pc / nc - pr / nr  # M: margin of average log-probs
    elif lt == "ipo":
        x = (pc / nc - pr / nr) - (rc / nc - rr / nr)  # h on averages (TRL ipo)
    else:
        x = (pc - rc) - (pr - rr)  # h on sums
    arg = weight = None
    if lt in ("repo", "dpo+repo"):
        arg = gamma - x
        per = F.relu(arg)
    elif lt == "repo++":
        arg = gamma - x
        per = -F.logsigmoid(-beta * F.relu(arg))  # -log sigma(-ReLU(-beta(M - gamma)))
        weight = torch.sigmoid(beta * arg.detach()) * (arg.detach() > 0)
    elif lt == "dpo+repo++":
        arg = gamma - beta * x
        per = -F.logsigmoid(-F.relu(arg))  # -log sigma(-ReLU(gamma - beta h))
        weight = torch.sigmoid(arg.detach()) * (arg.detach() > 0)
    elif lt == "simpo":
        z = beta * x - trl_gamma if trl_gamma is not None else beta * (x - gamma)
        per = -(1 - ls) * F.logsigmoid(z) - ls * F.logsigmoid(-z)
    elif lt == "simpo-hinge":  # SimPO's loss_type "hinge": relu(1 - beta * (M - gamma_beta_ratio))
        per = F.relu(1 - beta * (x - gamma))
    elif lt == "dpo":
        z = beta * x
        per = -(1 - ls) * F.logsigmoid(z) - ls * F.logsigmoid(-z)
    elif lt == "ipo":
        per = (x - 1 / (2 * beta)) ** 2
    elif lt == "hinge":
        per = F.relu(1 - beta * x)
    else:
        raise ValueError(lt)
    loss = per.mean()
    sft_loss = -pc.sum() / nc.sum()  # token-mean cross-entropy of the chosen responses
    total = loss + sft * sft_loss if sft else loss
    total.backward()
    with torch.no_grad():
        if lt in REF_FREE:  # official SimPO/RePO trainer: beta * average log-prob
            lw, ll = pc / nc, pr / nr
            cr, rj = beta * lw, beta * ll
        elif lt == "ipo":  # TRL ipo: on averages
            lw, ll = pc / nc, pr / nr
            cr, rj = beta * (lw - rc / nc), beta * (ll - rr / nr)
        else:  # TRL DPOTrainer: on sums
            lw, ll = pc, pr
            cr, rj = beta * (pc - rc), beta * (pr - rr)
        m = OrderedDict([
            ("rewards/chosen", cr.mean()), ("rewards/rejected", rj.mean()),
            ("rewards/margins", (cr - rj).mean()), ("rewards/accuracies", (cr > rj).double().mean()),
            ("logps/chosen", lw.mean()), ("logps/rejected", ll.mean()),
        ])
        if arg is not None:
            m["repo/active_fraction"] = (arg > 0).double().mean()
            m["margin/mean"] = x.mean()
            for q in (10, 50, 90):
                m["margin/p%d" % q] = float(np.quantile(x.numpy(), q / 100))  # numpy's linear method
            if weight is not None:
                m["repo++/mean_weight"] = weight.mean()
        if sft:
            m["sft_loss"] = sft_loss
    cfg = OrderedDict([("loss_type", lt), ("beta", beta),
                       ("gamma", trl_gamma / beta if trl_gamma is not None else gamma),
                       ("label_smoothing", ls)])
    if sft:
        cfg["sft_weight"] = sft
    active = None if arg is None else [bool(a > 0) for a in arg.tolist()]
    return OrderedDict([("config", cfg), ("loss", float(total)), ("per_pair", floats(per)),
                        ("d_chosen", floats(pc.grad)), ("d_rejected", floats(pr.grad)),
                        ("active", active),
                        ("metrics", OrderedDict((k, float(v)) for k, v in m.items()))])


def gen_pref():
    out_dir = os.path.join(ROOT, "pref", "testdata", "golden")
    os.makedirs(out_dir, exist_ok=True)
    cases = OrderedDict([
        ("repo", pref_case("repo", 2.5, 0.5)),
        ("repo_gamma0.2", pref_case("repo", 1.0, 0.2)),
        ("repo++", pref_case("repo++", 2.0, 0.5)),
        ("simpo", pref_case("simpo", 2.5, 0.3)),
        ("simpo_ls0.15", pref_case("simpo", 2.5, 0.3, ls=0.15)),
        ("simpo_trl_gamma", pref_case("simpo", 2.0, trl_gamma=0.5)),
        ("simpo-hinge", pref_case("simpo-hinge", 2.5, 0.3)),
        ("dpo", pref_case("dpo", 0.1)),
        ("dpo_ls0.1", pref_case("dpo", 0.5, ls=0.1)),
        ("ipo", pref_case("ipo", 0.5)),
        ("hinge", pref_case("hinge", 0.5)),
        ("dpo+repo", pref_case("dpo+repo", 0.1, 1.0)),
        ("dpo+repo++", pref_case("dpo+repo++", 0.5, 0.5)),
    ])
    sft_cases = OrderedDict([
        ("repo_sft0.3", pref_case("repo", 2.5, 0.5, sft=0.3)),
        ("simpo_ls0.1_sft0.5", pref_case("simpo", 2.0, 0.25, ls=0.1, sft=0.5)),
        ("dpo_sft1", pref_case("dpo", 0.1, sft=1.0)),
    ])
    for name, c in list(cases.items()) + list(sft_cases.items()):
        act = c["active"]
        if act is not None:  # the batch must mix active and filtered pairs
            assert any(act) and not all(act), (name, act)
    write_json(os.path.join(out_dir, "losses.json"), OrderedDict([
        ("generator", GENERATOR), ("inputs", PREF_INPUTS), ("cases", cases), ("sft_cases", sft_cases)]))
    print("pref: %d loss cases, %d sft cases" % (len(cases), len(sft_cases)))


if __name__ == "__main__":
    gen_model()
    gen_optim()
    gen_pref()
