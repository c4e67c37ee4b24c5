#!/usr/bin/python3
"""Regenerate the LoRA goldens of package model (model/testdata/lora).

Usage, from anywhere (paths are relative to this file):

    OMP_WAIT_POLICY=PASSIVE OMP_NUM_THREADS=2 /usr/bin/python3 scripts/goldens/gen_lora_goldens.py

Needs PyTorch and numpy only; no peft, no transformers, no downloads. It
imports the Hugging Face-faithful Llama of gen_goldens.py (the model, the
batch and dL/dS of model/testdata/golden) and wraps its linear layers in a
LoRA written out here as PEFT's LoraLayer computes it:

    result = base(x) + lora_B(lora_A(dropout(x))) * scaling
    scaling = lora_alpha / r   (use_rslora: lora_alpha / sqrt(r))

with nn.Dropout's semantics (kept entries scaled by 1/(1-p)), but the mask
drawn from relupo's counter-based SplitMix64 stream (model/lora_pass.go)
instead of PyTorch's generator, so that the Go test can reproduce it.

Cases (every case: the golden batch, L = sum_s dS[s] * S[s]):
  llama_all        the golden Llama, all-linear, r 4, alpha 8; also the
                   gradients of every base weight through the adapters
  llama_qv_rslora  the golden Llama, q_proj,v_proj, r 4, alpha 16, rslora
  qwen2_all_drop   a Qwen2-style model (q/k/v biases; weights drawn here),
                   all-linear, r 2, alpha 4, dropout 0.25 with seed 7
Adapter weights are random with B nonzero, so the adapters matter.

Outputs (model/testdata/lora):
  qwen2/config.json, qwen2/model.safetensors   the Qwen2-style base
  CASE.adapter.safetensors                     lora_A/lora_B with PEFT names
  CASE.grads.safetensors                       their float32 gradients (and
                                               llama_all's base gradients)
  expected.json                                the cases, their float32
                                               log-prob sums and counts, and
                                               each run's distance from its
                                               float64 twin
"""
import json
import math
import os
import sys
from collections import OrderedDict

import numpy as np
import torch
import torch.nn as nn

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import gen_goldens as G  # noqa: E402  (the shared PyTorch Llama and file helpers)

ROOT = G.ROOT
OUT = os.path.join(ROOT, "model", "testdata", "lora")
GENERATOR = "scripts/goldens/gen_lora_goldens.py, torch %s, numpy %s" % (torch.__version__, np.__version__)
MODULES = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
M64 = (1 << 64) - 1


# ------------------------------------------------------ relupo's dropout mask
def splitmix64(x):
    """SplitMix64's output function on Python ints (mod 2^64)."""
    x = (x + 0x9E3779B97F4A7C15) & M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & M64
    return x ^ (x >> 31)


def splitmix64_np(x):
    """splitmix64 over a numpy uint64 array (wrapping arithmetic)."""
    with np.errstate(over="ignore"):
        x = x + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def keep_mask(seed, layer, module, n, p):
    """Entries [0, n) of relupo's mask for (seed, layer, module): True = kept."""
    ls = splitmix64(seed ^ splitmix64(layer))
    key = splitmix64((ls + module) & M64)
    with np.errstate(over="ignore"):
        h = splitmix64_np(np.uint64(key) + np.arange(n, dtype=np.uint64))
    thr = math.ceil(p * (1 << 24))
    return (h >> np.uint64(40)) >= np.uint64(thr)


# ------------------------------------------------------------------- LoRA
class LoRALinear(nn.Module):
    """PEFT's Linear LoRA layer: base(x) + lora_B(lora_A(dropout(x))) * scaling.
    mask, when set, is the dropout's [B, T, in] multiplier (0 or 1/(1-p))."""

    def __init__(self, base, r, alpha, rslora):
        super().__init__()
        self.base = base
        self.lora_A = nn.Linear(base.in_features, r, bias=False)
        self.lora_B = nn.Linear(r, base.out_features, bias=False)
        self.scaling = alpha / math.sqrt(r) if rslora else alpha / r
        self.mask = None

    def forward(self, x):
        xd = x if self.mask is None else x * self.mask.to(x.dtype)
        return self.base(x) + self.lora_B(self.lora_A(xd)) * self.scaling


def module_parent(layer, name):
    return layer.self_attn if name in ("q_proj", "k_proj", "v_proj", "o_proj") else layer.mlp


def add_lora(model, lc, g):
    """Wraps the targeted linears; A and B drawn from g (B nonzero)."""
    for layer in model.model.layers:
        for name in lc["targets"]:
            parent = module_parent(layer, name)
            lo = LoRALinear(getattr(parent, name), lc["r"], lc["alpha"], lc["rslora"])
            with torch.no_grad():
                lo.lora_A.weight.copy_(torch.randn(lo.lora_A.weight.shape, generator=g) / math.sqrt(lo.base.in_features))
                lo.lora_B.weight.copy_(0.2 * torch.randn(lo.lora_B.weight.shape, generator=g))
            setattr(parent, name, lo)


def lora_modules(model):
    """(peft name prefix, module) of every adapter, in PEFT's order."""
    out = []
    for l, layer in enumerate(model.model.layers):
        for name in MODULES:
            parent = module_parent(layer, name)
            mod = getattr(parent, name)
            if isinstance(mod, LoRALinear):
                block = "self_attn" if parent is layer.self_attn else "mlp"
                out.append(("base_model.model.model.layers.%d.%s.%s" % (l, block, name), l, MODULES.index(name), mod))
    return out


def set_masks(model, lc, seqs, T):
    """Dropout masks on the padded [B, T, in] layout from relupo's packed
    one: token t of sequence s is row offsets[s] + t."""
    offsets = np.cumsum([0] + [len(s) for s in seqs])
    for _, l, mi, mod in lora_modules(model):
        if lc["dropout"] == 0:
            mod.mask = None
            continue
        n_in = mod.base.in_features
        keep = keep_mask(lc["dropout_seed"], l, mi, int(offsets[-1]) * n_in, lc["dropout"]).reshape(-1, n_in)
        scale = torch.tensor(1.0 / (1.0 - lc["dropout"]), dtype=torch.float32)
        m = torch.zeros(len(seqs), T, n_in, dtype=torch.float32)
        for s in range(len(seqs)):
            k = torch.from_numpy(keep[offsets[s]:offsets[s + 1]].astype(np.float32))
            m[s, :len(seqs[s])] = k * scale
        mod.mask = m


# ---------------------------------------------------------------- models
def golden_llama():
    m = G.Llama(G.MODEL_CFG)
    w = G.load_safetensors(os.path.join(ROOT, "model", "testdata", "golden", "model.safetensors"))
    with torch.no_grad():
        for name, p in m.named_parameters():
            p.copy_(w[name])
    return m


QWEN_CFG = OrderedDict(G.MODEL_CFG)
QWEN_CFG.update([("architectures", ["Qwen2ForCausalLM"]), ("model_type", "qwen2"), ("use_sliding_window", False)])
QWEN_CFG.pop("attention_bias")
QWEN_CFG.pop("mlp_bias")
QWEN_SEED = 31337


def qwen2():
    """The Llama with biases on q, k and v (Qwen2), weights drawn here."""
    m = G.Llama(QWEN_CFG)
    for layer in m.model.layers:
        a = layer.self_attn
        for name in ("q_proj", "k_proj", "v_proj"):
            old = getattr(a, name)
            setattr(a, name, nn.Linear(old.in_features, old.out_features, bias=True))
    g = torch.Generator().manual_seed(QWEN_SEED)
    with torch.no_grad():
        for name, p in m.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(1.0 + G.NORM_JITTER * torch.randn(p.shape, generator=g))
            elif name.endswith(".bias"):
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(G.WEIGHT_STD * torch.randn(p.shape, generator=g))
    return m


CASES = [
    OrderedDict(name="llama_all", model="golden", r=4, alpha=8.0, rslora=False, dropout=0.0, dropout_seed=0,
                targets=MODULES, base_grads=True, seed=101),
    OrderedDict(name="llama_qv_rslora", model="golden", r=4, alpha=16.0, rslora=True, dropout=0.0, dropout_seed=0,
                targets=["q_proj", "v_proj"], base_grads=False, seed=202),
    OrderedDict(name="qwen2_all_drop", model="qwen2", r=2, alpha=4.0, rslora=False, dropout=0.25, dropout_seed=7,
                targets=MODULES, base_grads=False, seed=303),
]


def run(lc, dtype):
    """Builds the case's model in dtype, returns sums, counts, adapter
    tensors, adapter gradients and base gradients (by name)."""
    model = golden_llama() if lc["model"] == "golden" else qwen2()
    add_lora(model, lc, torch.Generator().manual_seed(lc["seed"]))
    model = model.to(dtype)
    prompts, chosen, rejected, batch = G.make_data()
    seqs = [p + c for p, c in zip(prompts, chosen)] + [p + r for p, r in zip(prompts, rejected)]
    ids, am, lm = batch
    set_masks(model, lc, seqs, ids.shape[1])
    for p in model.parameters():
        p.requires_grad_(True)
    s, n = G.sequence_logps(model, ids, am, lm)
    (s * torch.tensor(G.DSUMS, dtype=s.dtype)).sum().backward()
    adapter, agrads, bgrads = OrderedDict(), OrderedDict(), OrderedDict()
    for pre, _, _, mod in lora_modules(model):
        for ab in ("lora_A", "lora_B"):
            w = getattr(mod, ab).weight
            adapter["%s.%s.weight" % (pre, ab)] = w.detach().float()
            agrads["%s.%s.weight" % (pre, ab)] = w.grad.detach().float()
    for name, p in model.named_parameters():
        if ".lora_" in name:
            continue
        bgrads[name.replace(".base.", ".")] = p.grad.detach().float()
    return s.detach().double(), n.detach(), adapter, agrads, bgrads


def max_rel(a, b):
    return max(float((a[k].double() - b[k].double()).abs().max() / b[k].double().abs().max().clamp(min=1e-30)) for k in b)


def main():
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    os.makedirs(os.path.join(OUT, "qwen2"), exist_ok=True)
    with open(os.path.join(OUT, "qwen2", "config.json"), "w") as f:
        json.dump(QWEN_CFG, f, indent=2)
        f.write("\n")
    G.save_safetensors(os.path.join(OUT, "qwen2", "model.safetensors"), G.state_dict_hf(qwen2()), {"format": "pt"})

    prompts, chosen, rejected, _ = G.make_data()
    cases = []
    for lc in CASES:
        s, n, adapter, agrads, bgrads = run(lc, torch.float32)
        s64, _, _, ag64, bg64 = run(lc, torch.float64)
        G.save_safetensors(os.path.join(OUT, lc["name"] + ".adapter.safetensors"), adapter)
        out = OrderedDict(agrads)
        if lc["base_grads"]:
            out.update(bgrads)
        G.save_safetensors(os.path.join(OUT, lc["name"] + ".grads.safetensors"), out)
        dev = OrderedDict([
            ("logp_sum_max_rel_err", float(((s - s64).abs() / s64.abs().clamp(min=1)).max())),
            ("adapter_grad_worst_tensor_err", max_rel(agrads, ag64)),
        ])
        if lc["base_grads"]:
            dev["base_grad_worst_tensor_err"] = max_rel(bgrads, bg64)
        case = OrderedDict((k, v) for k, v in lc.items() if k != "seed")
        case.update([("logp_sums", G.floats(s)), ("counts", [int(c) for c in n.tolist()]), ("f32_vs_f64", dev)])
        cases.append(case)
        print(lc["name"], dev)
    G.write_json(os.path.join(OUT, "expected.json"), OrderedDict([
        ("generator", GENERATOR),
        ("layout", "sequences: prompt_i+chosen_i for each pair i, then prompt_i+rejected_i (model/testdata/golden's batch)"),
        ("prompts", prompts), ("chosen", chosen), ("rejected", rejected), ("dsums", G.DSUMS),
        ("cases", cases),
    ]))


if __name__ == "__main__":
    main()
