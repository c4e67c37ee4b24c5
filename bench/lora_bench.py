#!/usr/bin/python3
"""PyTorch side of `relupo bench --side-by-side` (issue 15): one RePO training
step of a Llama-shaped model with random weights, fully fine-tuned or with
LoRA adapters, with or without gradient checkpointing, timed the way
`relupo bench` times its own rows. One process per row, so that its peak RSS
is the row's own.

  OMP_WAIT_POLICY=PASSIVE OMP_NUM_THREADS=2 OPENBLAS_NUM_THREADS=2 \\
    /usr/bin/python3 bench/lora_bench.py --preset llama3.2-1b --mode lora \\
      [--checkpointing] [--base-dtype bf16|float32] [--seq 512] [--seconds 60 | --steps 3]
  ... --shape V,D,I,L,H,KV      an explicit shape, as `relupo bench --shape` reads it

The model is written out here (not transformers): the Llama of
../shared/reference/llama_ref.py (RMSNorm, rotate-half RoPE, GQA, eager
softmax attention with an additive causal mask, SwiGLU), weights N(0, 0.02²),
norms 1. One step, as relupo's rows: one pair = 2 sequences of --seq tokens
(the first quarter prompt, random ids), batched as [2, seq] like TRL's
concatenated forward; logits for every position (as TRL computes them), the
response tokens' summed log-probs, the RePO loss with gamma 10 (every pair
active), backward, AdamW (lr 1e-5, no weight decay, no clipping) over the
trainable weights.

--mode full trains every weight in float32. --mode lora freezes the base and
trains adapters as PEFT's LoRA does, written out: each targeted linear layer
computes W x + (alpha/r)·B(A x) with A [r, in] from Kaiming-uniform (a = √5), B
[out, r] zero, both float32 (r 16, alpha 32, all linear layers: q, k, v, o,
gate, up, down; no dropout, as relupo's row). The frozen base is held in
--base-dtype, as relupo holds it: float32, or bfloat16 (2 bytes a weight:
embeddings, linear layers and lm_head; the norms stay float32). A bfloat16
weight's product widens it to float32 a block of at most 2^24 values at a
time (a custom autograd.Function that saves only the bfloat16 weight), so the
products are float32 ones on exactly the bfloat16 values, as relupo's float32
precision computes them, and no float32 copy of the base ever exists.
--checkpointing wraps every decoder layer in torch.utils.checkpoint
(use_reentrant=False: the reentrant variant gives no gradients to adapters
when the layer's input does not require one, the frozen embedding's output).

One warm-up step, then --steps steps, or steps until --seconds after the
warm-up began (at least one, at most 20). Prints one JSON object (the last
line) with tokens_per_s, step_s_median, peak_rss_GB (VmHWM) and rss_model_GB
(VmRSS once the model is built), and the parameter counts.

--self-check checks what the timings rest on, on a small shape (see
self_check), and exits.
"""
import argparse
import json
import math
import os
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

# bench.Presets in bench/train.go. Llama-3.2-1B's rope_scaling (llama3) is
# left out on both sides: it changes the rotation's frequencies, not the work.
PRESETS = {
    "llama3.2-1b": dict(vocab=128256, hidden=2048, inter=8192, layers=16, heads=32, kv=8, head_dim=64,
                        tied=True, theta=500000.0, eps=1e-5, seq=512),
    "llama3-8b": dict(vocab=128256, hidden=4096, inter=14336, layers=32, heads=32, kv=8, head_dim=128,
                      tied=False, theta=500000.0, eps=1e-5, seq=512),
}

# Values of a widened bfloat16 block: 64 MB of float32.
WIDEN_BLOCK = 1 << 24


def parse_shape(s):
    """V,D,I,L,H,KV as bench.ParseShape reads it (head_dim D/H, theta 1e4, untied)."""
    v = [int(x) for x in s.split(",")]
    if len(v) != 6 or min(v) < 1 or v[1] % v[4] or v[4] % v[5]:
        sys.exit("lora_bench.py: --shape wants V,D,I,L,H,KV with D a multiple of H and H of KV, got %r" % s)
    return dict(vocab=v[0], hidden=v[1], inter=v[2], layers=v[3], heads=v[4], kv=v[5], head_dim=v[1] // v[4],
                tied=False, theta=10000.0, eps=1e-5, seq=512)


def rows_per_block(w):
    return max(1, WIDEN_BLOCK // w.shape[1])


class WidenedLinear(torch.autograd.Function):
    """y = x·Wᵀ for a frozen bfloat16 W [out, in], widened to float32 a block
    of rows at a time; saves only W (W gets no gradient)."""

    @staticmethod
    def forward(ctx, x, w):
        ctx.save_for_backward(w)
        x2 = x.reshape(-1, x.shape[-1])
        rows = rows_per_block(w)
        if w.shape[0] <= rows:
            y = x2 @ w.float().t()
        else:
            y = x2.new_empty(x2.shape[0], w.shape[0])
            for i in range(0, w.shape[0], rows):
                y[:, i:i + rows] = x2 @ w[i:i + rows].float().t()
        return y.reshape(*x.shape[:-1], w.shape[0])

    @staticmethod
    def backward(ctx, gy):
        (w,) = ctx.saved_tensors
        g2 = gy.reshape(-1, gy.shape[-1])
        rows = rows_per_block(w)
        gx = None
        for i in range(0, w.shape[0], rows):
            part = g2[:, i:i + rows] @ w[i:i + rows].float()
            gx = part if gx is None else gx.add_(part)
        return gx.reshape(*gy.shape[:-1], w.shape[1]), None


def frozen_linear(x, w):
    if w.dtype == torch.bfloat16:
        return WidenedLinear.apply(x, w)
    return F.linear(x, w)


class Linear(nn.Module):
    """A Llama linear layer (no bias): trainable float32 W, or a frozen W in
    the base's dtype plus a LoRA adapter: W x + scale·B(A x)."""

    def __init__(self, out_f, in_f, a):
        super().__init__()
        if a.mode == "full":
            self.weight = nn.Parameter(torch.empty(out_f, in_f))
            self.lora_A = None
            return
        self.weight = nn.Parameter(torch.empty(out_f, in_f, dtype=a.base_torch_dtype), requires_grad=False)
        self.lora_A = nn.Parameter(torch.empty(a.lora_r, in_f))
        self.lora_B = nn.Parameter(torch.zeros(out_f, a.lora_r))
        self.scale = a.lora_alpha / a.lora_r
        with torch.no_grad():  # PEFT's reset_lora_parameters: kaiming_uniform_(a=√5), B zero
            nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))

    def forward(self, x):
        if self.lora_A is None:
            return F.linear(x, self.weight)
        return frozen_linear(x, self.weight) + F.linear(F.linear(x, self.lora_A), self.lora_B) * self.scale


class RMSNorm(nn.Module):
    def __init__(self, n, eps, trainable):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(n), requires_grad=trainable)
        self.eps = eps

    def forward(self, x):
        return self.weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps))


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), -1)


class Layer(nn.Module):
    def __init__(self, c, a):
        super().__init__()
        D, hd = c["hidden"], c["head_dim"]
        self.H, self.KV, self.hd = c["heads"], c["kv"], hd
        self.q_proj = Linear(self.H * hd, D, a)
        self.k_proj = Linear(self.KV * hd, D, a)
        self.v_proj = Linear(self.KV * hd, D, a)
        self.o_proj = Linear(D, self.H * hd, a)
        self.gate_proj = Linear(c["inter"], D, a)
        self.up_proj = Linear(c["inter"], D, a)
        self.down_proj = Linear(D, c["inter"], a)
        self.input_layernorm = RMSNorm(D, c["eps"], a.mode == "full")
        self.post_attention_layernorm = RMSNorm(D, c["eps"], a.mode == "full")

    def forward(self, x, cos, sin, mask):
        b, t, _ = x.shape
        h = self.input_layernorm(x)
        q = self.q_proj(h).view(b, t, self.H, self.hd).transpose(1, 2)
        k = self.k_proj(h).view(b, t, self.KV, self.hd).transpose(1, 2)
        v = self.v_proj(h).view(b, t, self.KV, self.hd).transpose(1, 2)
        q, k = q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin
        rep = self.H // self.KV
        k = k[:, :, None].expand(b, self.KV, rep, t, self.hd).reshape(b, self.H, t, self.hd)
        v = v[:, :, None].expand(b, self.KV, rep, t, self.hd).reshape(b, self.H, t, self.hd)
        att = F.softmax(q @ k.transpose(2, 3) / math.sqrt(self.hd) + mask, dim=-1)
        x = x + self.o_proj((att @ v).transpose(1, 2).reshape(b, t, self.H * self.hd))
        h = self.post_attention_layernorm(x)
        return x + self.down_proj(F.silu(self.gate_proj(h)) * self.up_proj(h))


class Llama(nn.Module):
    def __init__(self, c, a):
        super().__init__()
        self.c, self.a = c, a
        full = a.mode == "full"
        dt = torch.float32 if full else a.base_torch_dtype
        self.embed = nn.Parameter(torch.empty(c["vocab"], c["hidden"], dtype=dt), requires_grad=full)
        self.layers = nn.ModuleList([Layer(c, a) for _ in range(c["layers"])])
        self.norm = RMSNorm(c["hidden"], c["eps"], full)
        self.lm_head = None if c["tied"] else nn.Parameter(torch.empty(c["vocab"], c["hidden"], dtype=dt),
                                                           requires_grad=full)
        hd = c["head_dim"]
        self.inv_freq = 1.0 / (c["theta"] ** (torch.arange(0, hd, 2, dtype=torch.int64).float() / hd))

    def init_weights(self, seed):
        torch.manual_seed(seed)
        with torch.no_grad():
            for name, p in self.named_parameters():
                if name.endswith("lora_A") or name.endswith("lora_B") or name.endswith("norm.weight") \
                        or name.endswith("layernorm.weight"):
                    continue  # set by their constructors
                p.normal_(0, 0.02)
        return self

    def forward(self, ids):
        b, t = ids.shape
        x = F.embedding(ids, self.embed).float()
        freqs = torch.arange(t, dtype=torch.float32)[:, None] * self.inv_freq
        emb = torch.cat((freqs, freqs), -1)
        cos, sin = emb.cos(), emb.sin()
        mask = torch.full((t, t), torch.finfo(torch.float32).min).triu(1)
        for layer in self.layers:
            if self.a.checkpointing:
                x = checkpoint(layer, x, cos, sin, mask, use_reentrant=False)
            else:
                x = layer(x, cos, sin, mask)
        x = self.norm(x)
        w = self.embed if self.lm_head is None else self.lm_head
        return F.linear(x, w) if self.a.mode == "full" else frozen_linear(x, w)


def rss_gb(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1e6
    return 0.0


def self_check():
    """Checks what the timings rest on, on a small shape: the full model's
    logits equal ../shared/reference/llama_ref.py's with the same weights
    (when ../shared is there), the widened bfloat16 product equals F.linear on
    the widened weight forward and backward, across blocks, and
    checkpointing changes neither the output nor any adapter's gradient."""
    import types
    torch.manual_seed(0)
    c = parse_shape("512,64,176,2,4,2")

    def args(mode, ckpt, base):
        return types.SimpleNamespace(mode=mode, checkpointing=ckpt, base_dtype=base, lora_r=4, lora_alpha=8.0,
                                     base_torch_dtype=torch.bfloat16 if base == "bf16" else torch.float32)

    ids = torch.randint(3, c["vocab"], (2, 40))
    ref_dir = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "reference")
    if os.path.exists(os.path.join(ref_dir, "llama_ref.py")):
        sys.path.insert(0, ref_dir)
        import llama_ref as L
        m = Llama(c, args("full", False, "float32")).init_weights(0)
        ref = L.LlamaForCausalLM(L.make_config(vocab_size=512, hidden_size=64, intermediate_size=176,
                                               num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                               rms_norm_eps=1e-5, max_position_embeddings=512))
        sd = {"model.embed_tokens.weight": m.embed, "model.norm.weight": m.norm.weight, "lm_head.weight": m.lm_head}
        for i, l in enumerate(m.layers):
            for n in ("q_proj", "k_proj", "v_proj", "o_proj"):
                sd["model.layers.%d.self_attn.%s.weight" % (i, n)] = getattr(l, n).weight
            for n in ("gate_proj", "up_proj", "down_proj"):
                sd["model.layers.%d.mlp.%s.weight" % (i, n)] = getattr(l, n).weight
            sd["model.layers.%d.input_layernorm.weight" % i] = l.input_layernorm.weight
            sd["model.layers.%d.post_attention_layernorm.weight" % i] = l.post_attention_layernorm.weight
        ref.load_state_dict({k: v.detach() for k, v in sd.items()})
        d = (m(ids) - ref(ids)).abs().max().item()
        print("full model vs llama_ref.py: logits differ by %g" % d)
        assert d == 0, d
    else:
        print("../shared/reference is absent: the comparison with llama_ref.py is skipped")

    global WIDEN_BLOCK
    saved, WIDEN_BLOCK = WIDEN_BLOCK, 70 * 64  # 64 rows a block: 300 rows take five
    x = torch.randn(3, 5, 70, requires_grad=True)
    w = torch.randn(300, 70).bfloat16()
    y = WidenedLinear.apply(x, w)
    gy = torch.randn_like(y)
    y.backward(gy)
    gx = x.grad.clone()
    x.grad = None
    y2 = F.linear(x, w.float())
    y2.backward(gy)
    WIDEN_BLOCK = saved
    # float32 sums in another order: a few units of the last place of values ~10 (forward) and ~30 (backward)
    dy, dg = (y - y2).abs().max().item(), (gx - x.grad).abs().max().item()
    print("widened bf16 product vs F.linear: forward %g, backward %g" % (dy, dg))
    assert dy < 1e-4 and dg < 1e-4, (dy, dg)

    for base in ("bf16", "float32"):
        outs = []
        for ckpt in (False, True):
            torch.manual_seed(1)
            m = Llama(c, args("lora", ckpt, base)).init_weights(0)
            with torch.no_grad():  # B nonzero, so that A's gradients are too
                for l in m.layers:
                    for n in ("q_proj", "down_proj"):
                        getattr(l, n).lora_B.normal_(0, 0.1)
            out = m(ids)
            out.logsumexp(-1).sum().backward()
            outs.append((out, {n: p.grad for n, p in m.named_parameters() if p.requires_grad}))
        (o0, g0), (o1, g1) = outs
        assert len(g0) == 2 * 7 * c["layers"] and all(g is not None for g in g0.values())
        assert g0["layers.0.q_proj.lora_A"].abs().max() > 0
        d = max([(o0 - o1).abs().max().item()] + [(g0[k] - g1[k]).abs().max().item() for k in g0])
        print("LoRA, %s base: checkpointing changes output and adapter gradients by %g" % (base, d))
        assert d == 0, d
    print("self-check passed")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--preset", default="llama3.2-1b", choices=sorted(PRESETS))
    ap.add_argument("--shape", help="V,D,I,L,H,KV instead of a preset")
    ap.add_argument("--mode", default="lora", choices=["full", "lora"])
    ap.add_argument("--checkpointing", action="store_true", help="torch.utils.checkpoint around every decoder layer")
    ap.add_argument("--base-dtype", default="bf16", choices=["bf16", "float32"], help="the frozen base's dtype (lora)")
    ap.add_argument("--lora-r", type=int, default=16)
    ap.add_argument("--lora-alpha", type=float, default=32.0)
    ap.add_argument("--seq", type=int, default=0, help="tokens per sequence (default: the preset's)")
    ap.add_argument("--pairs", type=int, default=1)
    ap.add_argument("--steps", type=int, default=3, help="timed steps after the warm-up")
    ap.add_argument("--seconds", type=float, default=0, help="instead of --steps: time steps until this many seconds after the warm-up began (at most 20)")
    ap.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "2")))
    ap.add_argument("--self-check", action="store_true", help="check the model, the widened product and checkpointing on a small shape, and exit")
    a = ap.parse_args()
    if a.self_check:
        self_check()
        return
    if a.lora_r < 1 or a.seq < 0 or a.seq == 1 or a.pairs < 1 or a.steps < 1 or a.seconds < 0:
        ap.error("--lora-r, --pairs and --steps must be ≥ 1, --seq ≥ 2 and --seconds ≥ 0")
    c = parse_shape(a.shape) if a.shape else PRESETS[a.preset]
    name = "shape " + a.shape if a.shape else a.preset
    T = a.seq or c["seq"]
    a.base_torch_dtype = torch.bfloat16 if a.base_dtype == "bf16" else torch.float32
    torch.set_num_threads(a.threads)
    label = "[%s %s%s%s] " % (name, a.mode, "+ckpt" if a.checkpointing else "",
                              "" if a.mode == "full" else " " + a.base_dtype)

    t0 = time.perf_counter()
    model = Llama(c, a).init_weights(0)
    trainable = [p for p in model.parameters() if p.requires_grad]
    n_train = sum(p.numel() for p in trainable)
    n_total = sum(p.numel() for p in model.parameters() if not (p.requires_grad and a.mode == "lora"))
    rss_model = rss_gb("VmRSS")
    print(label + "model built in %.1fs: %d trainable, %d base parameters, RSS %.2f GB"
          % (time.perf_counter() - t0, n_train, n_total, rss_model), file=sys.stderr, flush=True)
    opt = torch.optim.AdamW(trainable, lr=1e-5, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
    g = torch.Generator().manual_seed(0)
    nseq, P = 2 * a.pairs, T // 4
    ids = torch.randint(3, c["vocab"], (nseq, T), generator=g)

    def step():
        t = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        logits = model(ids)[:, P - 1:-1]
        lp = torch.log_softmax(logits, -1).gather(2, ids[:, P:, None])[..., 0]
        s = lp.sum(-1)
        m = (s[:a.pairs] - s[a.pairs:]) / (T - P)
        loss = torch.relu(10.0 - m).mean()
        loss.backward()
        opt.step()
        return time.perf_counter() - t

    start = time.perf_counter()
    print(label + "warm-up step %.2fs" % step(), file=sys.stderr, flush=True)
    times = []
    while len(times) < (20 if a.seconds > 0 else a.steps):
        if a.seconds > 0 and times and time.perf_counter() - start >= a.seconds:
            break
        times.append(step())
        print(label + "step %d: %.3fs" % (len(times), times[-1]), file=sys.stderr, flush=True)
    times.sort()
    med = times[len(times) // 2]
    tokens = nseq * T
    print(json.dumps({
        "side": "pytorch", "preset": name, "mode": a.mode, "checkpointing": a.checkpointing,
        "base_dtype": "float32" if a.mode == "full" else a.base_dtype,
        "lora_r": a.lora_r if a.mode == "lora" else 0, "seq_len": T, "sequences": nseq, "tokens_per_step": tokens,
        "params_trainable": n_train, "params_base": n_total, "steps_measured": len(times),
        "step_s_median": med, "step_s_min": times[0], "tokens_per_s": tokens / med,
        "rss_model_GB": rss_model, "peak_rss_GB": rss_gb("VmHWM"),
        "torch": torch.__version__, "threads": torch.get_num_threads()}))


if __name__ == "__main__":
    main()
