#!/usr/bin/python3
"""Reference values for relupo's Gemma (1), Gemma-2 and Gemma-3 (text) tests.

A PyTorch Gemma written here from Hugging Face transformers' modeling_gemma2.py
and modeling_gemma3.py (the eager attention path) and their configuration
classes; it needs PyTorch only (no transformers, no safetensors module, no
downloads). What it reproduces, detail by detail:

  * Gemma RMSNorm: x.float() * rsqrt(mean(x^2) + eps) * (1.0 + weight.float())
    (the weights act as 1 + w), on the input of attention, on the attention
    output before the residual add (post_attention_layernorm), on the MLP input
    (pre_feedforward_layernorm), on the MLP output before its residual add
    (post_feedforward_layernorm), and at the end (model.norm);
  * embeddings times the normalizer torch.tensor(hidden_size ** 0.5) in the
    compute dtype (float32);
  * GeGLU: down(gelu(gate(x), approximate="tanh") * up(x)) (gelu_pytorch_tanh);
  * attention with head_dim independent of hidden_size / heads, grouped KV heads
    (repeat_kv), scores (q @ k^T) * query_pre_attn_scalar ** -0.5, then for
    Gemma-2 the soft cap scores / cap -> tanh -> * cap (Gemma-3's attention
    never passes attn_logit_softcapping to the attention function, so its
    scores are never capped), the causal mask and, on sliding layers, the
    sliding-window mask (key j visible from query i when i - window < j <= i),
    float32 softmax;
  * sliding layers: layer_types when the config has it; otherwise Gemma-2's
    rule (layer i slides when i is even) and Gemma-3's (layer i slides unless
    (i + 1) % sliding_window_pattern == 0, pattern 6 by default);
  * Gemma-3: per-head RMSNorm (1 + w) of q and k before RoPE; RoPE with
    rope_local_base_freq (no scaling) on sliding layers and rope_theta with
    rope_scaling (linear: inv_freq / factor) on full-attention layers;
  * final_logit_softcapping on the logits (logits / cap -> tanh -> * cap) when
    not null; tied embeddings (lm_head is embed_tokens).

Before writing anything it checks the reference itself: its float64 autograd
gradients against central finite differences, and that each feature under test
is active in the cases (sequences longer than the window, raw logits beyond the
final cap, attention scores beyond the attention cap).

Outputs, per case (model/testdata/gemma/<case>/):
  config.json         the HF config (a small random model, not public weights)
  model.safetensors   float32 weights, HF names (norm weights 0.1*N(0,1), the
                      rest N(0, 0.3^2) so that the caps bend)
  grads.safetensors   float32 autograd gradients of L = sum_s dsums[s] * S[s]
  after3.safetensors  (gemma2 and gemma3) the weights after 3 optimizer steps of the RePO trainer
                      (loss mean_i relu(gamma - M_i), clip_grad_norm_, AdamW
                      with the HF Trainer's decay groups), constant LR
and model/testdata/gemma/expected.json: the sequences, dsums, float32 log-prob
sums and counts, the greedy continuation of a prompt (and the last step's
logits), the training pairs and settings.

Run from the repository root (a few seconds):
    OMP_WAIT_POLICY=PASSIVE OMP_NUM_THREADS=2 /usr/bin/python3 model/testdata/gen_gemma.py
"""
import json
import math
import os
import re
import struct
from collections import OrderedDict

import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "gemma")
torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))


# ------------------------------------------------------------------- files
def save_safetensors(path, tensors):
    """safetensors: u64 little-endian header size, JSON header padded with
    spaces to a multiple of 8, then the raw float32 data (names sorted)."""
    header, blobs, off = OrderedDict(), [], 0
    header["__metadata__"] = {"format": "pt"}
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


# ------------------------------------------------------------- the model
def layer_types(cfg):
    if cfg.get("layer_types") is not None:
        return list(cfg["layer_types"])
    n = cfg["num_hidden_layers"]
    if cfg["model_type"] == "gemma":  # Gemma 1: every layer attends to everything
        return ["full_attention"] * n
    if cfg["model_type"] == "gemma2":
        return ["sliding_attention" if (i + 1) % 2 else "full_attention" for i in range(n)]
    pattern = cfg.get("sliding_window_pattern") or 6
    return ["sliding_attention" if (i + 1) % pattern else "full_attention" for i in range(n)]


class RMSNorm(nn.Module):
    def __init__(self, dim, eps, ct):
        super().__init__()
        self.eps, self.ct = eps, ct
        self.weight = nn.Parameter(torch.zeros(dim))

    def forward(self, x):
        out = x.to(self.ct)
        out = out * torch.rsqrt(out.pow(2).mean(-1, keepdim=True) + self.eps)
        out = out * (1.0 + self.weight.to(self.ct))
        return out.type_as(x)


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


def inv_freq(base, dim, scaling=None):
    inv = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.int64).float() / dim))
    if scaling and scaling.get("rope_type", scaling.get("type")) == "linear":
        inv = inv / scaling["factor"]
    return inv


def cos_sin(inv, t, dtype):
    pos = torch.arange(t, dtype=torch.int64)[None, None, :].float()
    freqs = (inv[None, :, None].float() @ pos).transpose(1, 2)
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos().to(dtype), emb.sin().to(dtype)


class Attention(nn.Module):
    def __init__(self, cfg, sliding, ct):
        super().__init__()
        D, H, KV, hd = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["head_dim"]
        self.H, self.KV, self.hd = H, KV, hd
        # GemmaAttention scales by head_dim ** -0.5; Gemma-2 and 3 by query_pre_attn_scalar ** -0.5
        self.scaling = cfg.get("query_pre_attn_scalar", hd) ** -0.5
        self.softcap = cfg.get("attn_logit_softcapping") if cfg["model_type"] == "gemma2" else None
        self.window = cfg["sliding_window"] if sliding else None
        bias = cfg.get("attention_bias", False)
        self.q_proj = nn.Linear(D, H * hd, bias=bias)
        self.k_proj = nn.Linear(D, KV * hd, bias=bias)
        self.v_proj = nn.Linear(D, KV * hd, bias=bias)
        self.o_proj = nn.Linear(H * hd, D, bias=bias)
        self.qk_norm = cfg["model_type"] == "gemma3_text"
        if self.qk_norm:
            self.q_norm = RMSNorm(hd, cfg["rms_norm_eps"], ct)
            self.k_norm = RMSNorm(hd, cfg["rms_norm_eps"], ct)
        self.max_score = 0.0  # the largest |scaled score| of the last forward

    def forward(self, x, cos, sin):
        b, t, _ = x.shape
        q = self.q_proj(x).view(b, t, self.H, self.hd).transpose(1, 2)
        k = self.k_proj(x).view(b, t, self.KV, self.hd).transpose(1, 2)
        v = self.v_proj(x).view(b, t, self.KV, self.hd).transpose(1, 2)
        if self.qk_norm:
            q, k = self.q_norm(q), self.k_norm(k)
        c, s = cos.unsqueeze(1), sin.unsqueeze(1)
        q, k = q * c + rotate_half(q) * s, k * c + rotate_half(k) * s
        g = self.H // self.KV
        k = k[:, :, None].expand(b, self.KV, g, t, self.hd).reshape(b, self.H, t, self.hd)
        v = v[:, :, None].expand(b, self.KV, g, t, self.hd).reshape(b, self.H, t, self.hd)
        w = torch.matmul(q, k.transpose(2, 3)) * self.scaling
        self.max_score = float(w.detach().abs().max())
        if self.softcap is not None:
            w = w / self.softcap
            w = torch.tanh(w)
            w = w * self.softcap
        i = torch.arange(t)[:, None]
        j = torch.arange(t)[None, :]
        allowed = j <= i
        if self.window is not None:
            allowed = allowed & (j > i - self.window)
        mask = torch.zeros(t, t, dtype=w.dtype).masked_fill(~allowed, torch.finfo(w.dtype).min)
        # upcast to float32 as HF does (float64 stays float64 for the self-test)
        w = F.softmax(w + mask, dim=-1, dtype=torch.promote_types(w.dtype, torch.float32)).to(q.dtype)
        o = torch.matmul(w, v).transpose(1, 2).reshape(b, t, self.H * self.hd)
        return self.o_proj(o)


class MLP(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        D, I = cfg["hidden_size"], cfg["intermediate_size"]
        self.gate_proj = nn.Linear(D, I, bias=False)
        self.up_proj = nn.Linear(D, I, bias=False)
        self.down_proj = nn.Linear(I, D, bias=False)

    def forward(self, x):
        return self.down_proj(F.gelu(self.gate_proj(x), approximate="tanh") * self.up_proj(x))


class Layer(nn.Module):
    def __init__(self, cfg, sliding, ct):
        super().__init__()
        D, eps = cfg["hidden_size"], cfg["rms_norm_eps"]
        self.sliding = sliding
        self.self_attn = Attention(cfg, sliding, ct)
        self.mlp = MLP(cfg)
        self.input_layernorm = RMSNorm(D, eps, ct)
        self.post_attention_layernorm = RMSNorm(D, eps, ct)
        self.gemma1 = cfg["model_type"] == "gemma"
        if not self.gemma1:
            self.pre_feedforward_layernorm = RMSNorm(D, eps, ct)
            self.post_feedforward_layernorm = RMSNorm(D, eps, ct)

    def forward(self, x, rope_global, rope_local):
        cos, sin = rope_local if self.sliding else rope_global
        if self.gemma1:  # GemmaDecoderLayer: Llama's layout, Gemma's norms and MLP
            x = x + self.self_attn(self.input_layernorm(x), cos, sin)
            return x + self.mlp(self.post_attention_layernorm(x))
        h = self.post_attention_layernorm(self.self_attn(self.input_layernorm(x), cos, sin))
        x = x + h
        h = self.post_feedforward_layernorm(self.mlp(self.pre_feedforward_layernorm(x)))
        return x + h


class Inner(nn.Module):
    def __init__(self, cfg, ct):
        super().__init__()
        self.embed_tokens = nn.Embedding(cfg["vocab_size"], cfg["hidden_size"])
        self.layers = nn.ModuleList([Layer(cfg, lt == "sliding_attention", ct) for lt in layer_types(cfg)])
        self.norm = RMSNorm(cfg["hidden_size"], cfg["rms_norm_eps"], ct)


class Gemma(nn.Module):
    """GemmaForCausalLM / Gemma2ForCausalLM / Gemma3ForCausalLM; ct is the compute dtype."""

    def __init__(self, cfg, ct=torch.float32):
        super().__init__()
        self.cfg, self.ct = cfg, ct
        self.model = Inner(cfg, ct)
        self.lm_head = nn.Linear(cfg["hidden_size"], cfg["vocab_size"], bias=False)
        self.lm_head.weight = self.model.embed_tokens.weight  # tied
        self.max_raw_logit = 0.0

    def forward(self, ids):
        cfg, t = self.cfg, ids.shape[1]
        hd = cfg["head_dim"]
        if cfg["model_type"] == "gemma3_text":
            g = inv_freq(cfg["rope_theta"], hd, cfg.get("rope_scaling"))
            loc = inv_freq(cfg["rope_local_base_freq"], hd)
        else:
            g = loc = inv_freq(cfg["rope_theta"], hd, cfg.get("rope_scaling"))
        rope_global, rope_local = cos_sin(g, t, self.ct), cos_sin(loc, t, self.ct)
        x = self.model.embed_tokens(ids)
        x = x * torch.tensor(cfg["hidden_size"] ** 0.5, dtype=x.dtype)
        for layer in self.model.layers:
            x = layer(x, rope_global, rope_local)
        logits = self.lm_head(self.model.norm(x))
        self.max_raw_logit = float(logits.detach().abs().max())
        cap = cfg.get("final_logit_softcapping")
        if cap is not None:
            logits = logits / cap
            logits = torch.tanh(logits)
            logits = logits * cap
        return logits

    def max_attn_score(self):
        return max(l.self_attn.max_score for l in self.model.layers)


def seq_logps(model, prompt, response):
    """Sum of log p(label) over the response tokens (the first token of a
    sequence is never a label), and the label count."""
    ids = torch.tensor([prompt + response])
    lp = torch.log_softmax(model(ids)[0, :-1], -1).gather(1, ids[0, 1:, None])[:, 0]
    first = max(len(prompt), 1)
    return lp[first - 1:].sum(), len(prompt) + len(response) - first


def init_weights(model, seed):
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(0.1 * torch.randn(p.shape, generator=gen))
            else:
                p.copy_(0.3 * torch.randn(p.shape, generator=gen))


def hf_state_dict(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items() if k != "lm_head.weight"}


def decays(name):
    """HF Trainer.get_decay_parameter_names: no decay for biases and norms."""
    n = name.lower()
    return not any(re.search(p, n) for p in [r"bias", r"layernorm", r"rmsnorm", r"(?:^|\.)norm(?:$|\.)", r"_norm(?:$|\.)"])


# ------------------------------------------------------------- the cases
def base(**kw):
    cfg = dict(vocab_size=40, hidden_size=16, intermediate_size=16, num_hidden_layers=3, num_attention_heads=4,
               num_key_value_heads=2, head_dim=8, rms_norm_eps=1e-6, max_position_embeddings=256, rope_theta=10000.0,
               attention_bias=False, hidden_activation="gelu_pytorch_tanh", tie_word_embeddings=True,
               bos_token_id=2, eos_token_id=1, pad_token_id=0, torch_dtype="float32")
    cfg.update(kw)
    return cfg


CASES = OrderedDict([
    # Gemma-2: sliding on layers 0 and 2 by the parity rule (no layer_types),
    # both caps active, a window shorter than most sequences.
    ("gemma2", base(model_type="gemma2", architectures=["Gemma2ForCausalLM"], query_pre_attn_scalar=12,
                    attn_logit_softcapping=3.0, final_logit_softcapping=2.0, sliding_window=6,
                    hidden_act="gelu_pytorch_tanh")),
    # Gemma-3: four layers with sliding_window_pattern 3 (sliding, sliding,
    # full, sliding), local and global RoPE bases, linear scaling on the
    # global layers, q/k norms, no caps (nulls).
    ("gemma3", base(model_type="gemma3_text", architectures=["Gemma3ForCausalLM"], num_hidden_layers=4,
                    query_pre_attn_scalar=8, rope_theta=1000000.0, rope_local_base_freq=100.0,
                    rope_scaling={"rope_type": "linear", "factor": 8.0}, sliding_window=5, sliding_window_pattern=3,
                    attn_logit_softcapping=None, final_logit_softcapping=None)),
    # Gemma-3 with explicit layer_types, a final cap, and an
    # attn_logit_softcapping that Gemma-3's attention ignores.
    ("gemma3-layer-types", base(model_type="gemma3_text", architectures=["Gemma3ForCausalLM"], num_hidden_layers=2,
                                query_pre_attn_scalar=16, rope_theta=10000.0, rope_local_base_freq=10000.0,
                                sliding_window=4, layer_types=["full_attention", "sliding_attention"],
                                attn_logit_softcapping=0.5, final_logit_softcapping=1.5, num_key_value_heads=1)),
    # Gemma 1 (gemma-2b/7b, 1.1, CodeGemma): Llama's layer layout with (1 + w)
    # norms, scaled embeddings and GeGLU; head_dim**-0.5, no caps, no windows.
    ("gemma", base(model_type="gemma", architectures=["GemmaForCausalLM"], hidden_act="gelu",
                   hidden_activation="gelu_pytorch_tanh")),
])

gen = torch.Generator().manual_seed(17)
SEQS = []
for plen, rlen in [(5, 7), (1, 9), (12, 4), (0, 6), (9, 17)]:
    SEQS.append((torch.randint(3, 40, (plen,), generator=gen).tolist(), torch.randint(3, 40, (rlen,), generator=gen).tolist()))
WEIGHTS = [0.7, -1.3, 0.25, 2.0, -0.5]
PROMPT = torch.randint(3, 40, (4,), generator=gen).tolist()
NEW_TOKENS = 16
PAIRS = [{"prompt": torch.randint(3, 40, (p,), generator=gen).tolist(),
          "chosen": torch.randint(3, 40, (c,), generator=gen).tolist(),
          "rejected": torch.randint(3, 40, (r,), generator=gen).tolist()} for p, c, r in [(4, 6, 5), (7, 3, 9), (2, 8, 4)]]
TRAINED = ["gemma2", "gemma3"]  # the cases with after3.safetensors
# torch.optim.AdamW's defaults, clipping active (gradient norms of 4 to 11).
TRAIN = dict(loss_type="repo", gamma=10.0, beta=2.0, learning_rate=5e-3, weight_decay=0.1, max_grad_norm=1.0,
             betas=[0.9, 0.999], eps=1e-8, steps=3)


def objective(model):
    total = 0.0
    sums, counts = [], []
    for (p, r), w in zip(SEQS, WEIGHTS):
        s, n = seq_logps(model, p, r)
        sums.append(s)
        counts.append(n)
        total = total + w * s
    return total, sums, counts


def self_test(cfg, seed):
    """float64 autograd gradients against central differences, on a few
    coordinates of every kind of parameter."""
    m = Gemma(cfg, torch.float64).double()
    init_weights(m, seed)
    loss, _, _ = objective(m)
    m.zero_grad()
    loss.backward()
    g = torch.Generator().manual_seed(seed + 1)
    worst = 0.0
    for name, p in m.named_parameters():
        for _ in range(3):
            i = int(torch.randint(0, p.numel(), (1,), generator=g))
            h = 1e-6
            with torch.no_grad():
                old = p.view(-1)[i].item()
                p.view(-1)[i] = old + h
                up = objective(m)[0].item()
                p.view(-1)[i] = old - h
                down = objective(m)[0].item()
                p.view(-1)[i] = old
            fd = (up - down) / (2 * h)
            ad = p.grad.view(-1)[i].item()
            err = abs(fd - ad) / max(abs(ad), 1e-3)
            worst = max(worst, err)
            assert err < 1e-5, "%s[%d]: autograd %.10g, finite differences %.10g" % (name, i, ad, fd)
    return worst


def train_steps(cfg, seed):
    m = Gemma(cfg)
    init_weights(m, seed)
    params = list(m.named_parameters())
    groups = [{"params": [p for n, p in params if decays(n)], "weight_decay": TRAIN["weight_decay"]},
              {"params": [p for n, p in params if not decays(n)], "weight_decay": 0.0}]
    opt = torch.optim.AdamW(groups, lr=TRAIN["learning_rate"], betas=tuple(TRAIN["betas"]), eps=TRAIN["eps"], foreach=False)
    losses = []
    for _ in range(TRAIN["steps"]):
        opt.zero_grad()
        terms = []
        for pair in PAIRS:
            sw, nw = seq_logps(m, pair["prompt"], pair["chosen"])
            sl, nl = seq_logps(m, pair["prompt"], pair["rejected"])
            terms.append(torch.relu(TRAIN["gamma"] - (sw / nw - sl / nl)))
        loss = torch.stack(terms).mean()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(m.parameters(), TRAIN["max_grad_norm"])
        opt.step()
        losses.append(float(loss))
    return m, losses


def greedy(model, prompt, n):
    ids = list(prompt)
    margins = []
    with torch.no_grad():
        for _ in range(n):
            logits = model(torch.tensor([ids]))[0, -1]
            top = torch.topk(logits, 2).values
            margins.append(float(top[0] - top[1]))
            ids.append(int(logits.argmax()))
    return ids[len(prompt):], [float(x) for x in logits], min(margins)


def main():
    os.makedirs(OUT, exist_ok=True)
    expected = {"generator": "model/testdata/gen_gemma.py, torch %s" % torch.__version__,
                "sequences": [{"prompt": p, "response": r} for p, r in SEQS], "dsums": WEIGHTS,
                "prompt": PROMPT, "pairs": PAIRS, "train": TRAIN, "cases": OrderedDict()}
    for ci, (name, cfg) in enumerate(CASES.items()):
        seed = 100 + ci
        fd = self_test(cfg, seed)
        m = Gemma(cfg)
        init_weights(m, seed)
        loss, sums, counts = objective(m)
        m.zero_grad()
        loss.backward()
        if cfg["model_type"] != "gemma":
            window = cfg["sliding_window"]
            longest = max(len(p) + len(r) for p, r in SEQS)
            assert longest > 2 * window, "sequences must be longer than the window"
        cap = cfg.get("final_logit_softcapping")
        # the caps must bend: raw values beyond the cap somewhere
        max_logit = max_score = 0.0
        with torch.no_grad():
            for p, r in SEQS:
                m(torch.tensor([p + r]))
                max_logit, max_score = max(max_logit, m.max_raw_logit), max(max_score, m.max_attn_score())
        if cap is not None:
            assert max_logit > cap, "logits %.3g never pass the final cap %g" % (max_logit, cap)
        if cfg["model_type"] == "gemma2":
            assert max_score > cfg["attn_logit_softcapping"], "scores never pass the attention cap"
        tokens, last_logits, margin = greedy(m, PROMPT, NEW_TOKENS)
        assert margin > 1e-3, "greedy decoding has a near tie (margin %g)" % margin
        d = os.path.join(OUT, name)
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "config.json"), "w") as f:
            json.dump(cfg, f, indent=2)
        save_safetensors(os.path.join(d, "model.safetensors"), hf_state_dict(m))
        save_safetensors(os.path.join(d, "grads.safetensors"),
                         {n: p.grad for n, p in m.named_parameters()})
        expected["cases"][name] = {"logp_sums": [float(s) for s in sums], "counts": counts,
                                   "greedy": tokens, "last_logits": last_logits, "greedy_min_margin": margin}
        losses = []
        if name in TRAINED:
            trained, losses = train_steps(cfg, seed)
            save_safetensors(os.path.join(d, "after3.safetensors"), hf_state_dict(trained))
            expected["cases"][name]["train_losses"] = losses
        print("%s: finite differences within %.1e; max raw logit %.3g (cap %s), max score %.3g; greedy %s; losses %s"
              % (name, fd, max_logit, cap, max_score, tokens, ["%.4f" % l for l in losses]))
    with open(os.path.join(OUT, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
