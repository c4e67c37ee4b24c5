#!/usr/bin/python3
"""Regenerate train/testdata/lora: the PyTorch reference for relupo's LoRA
training (package train's lora tests), from a plain clone (no ../shared).

Usage, from anywhere (paths are relative to this file):

    OMP_WAIT_POLICY=PASSIVE OMP_NUM_THREADS=2 /usr/bin/python3 scripts/goldens/gen_lora_train_goldens.py

Needs PyTorch and numpy only; no peft, transformers or safetensors module.
The Llama, its log-probs and the HF Trainer's AdamW weight-decay rule come
from gen_goldens.py (imported, not copied). LoRA is written out here,
independently of relupo's Go code, with PEFT's semantics:

  * each targeted nn.Linear y = W x becomes y = W x + s * B(A drop(x)), A [r, in],
    B [out, r], s = alpha / r (alpha / sqrt(r) with use_rslora); the base is
    frozen (requires_grad False), only A and B are trained;
  * "adapters off" (TRL's reference model under PEFT: null_ref_context,
    disable_adapter) runs the same modules without the adapter term;
  * merging is PEFT's merge_and_unload: W + s * (B @ A), computed in float32
    and, for a bfloat16 base, rounded to bfloat16 once.

Dropout is 0 here: relupo's dropout masks come from its own random stream,
not PyTorch's (the Go tests check dropout's exact resume on their own).

The HF Trainer loop as gen_multistep.py writes it: each micro-batch's mean
loss divided by gradient_accumulation_steps and backpropagated, then
clip_grad_norm_ over the adapter's parameters, torch.optim.AdamW (weight decay
on lora_A and lora_B: the Trainer's rule decays every weight that is not a
bias or a norm), then the LambdaLR schedule. Every step consumes the whole
data set in micro-batches of equal size, so the result does not depend on
relupo's shuffling order.

Outputs, in train/testdata/lora/:

  base/config.json, base/model.safetensors        the tiny float32 Llama
  base-bf16/config.json, model.safetensors        the same weights rounded to bfloat16
  pairs.jsonl                                      4 pre-tokenized pairs
  init/adapter_config.json, adapter_model.safetensors
                                                   the starting adapter (r 4, alpha 8,
                                                   every linear layer; B nonzero so that
                                                   adapters on and off differ)
  init-rslora/...                                  the same tensors with use_rslora
  expected.json                                    settings, per-step loss and grad norm,
                                                   log-prob sums with the init adapter,
                                                   reference (adapters-off) sums
  after-<setting>.safetensors                      the adapter after 3 steps
  merged.safetensors                               base + init adapter, float32
  merged-bf16.safetensors                          base-bf16 + init adapter, bfloat16
"""
import json
import math
import os
import struct
import sys
from collections import OrderedDict

import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import gen_goldens as G  # noqa: E402  (the Llama, log-probs, safetensors writer, decay rule)

ROOT = G.ROOT
OUT = os.path.join(ROOT, "train", "testdata", "lora")
GENERATOR = "scripts/goldens/gen_lora_train_goldens.py, torch %s" % torch.__version__
MODULES = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
R, ALPHA, STEPS = 4, 8.0, 3
CFG = OrderedDict(G.MODEL_CFG)


class LoRALinear(nn.Module):
    """PEFT's lora.Linear without dropout: base(x) + s * (x A^T) B^T."""

    def __init__(self, base, a, b, scale):
        super().__init__()
        self.base = base
        self.lora_A = nn.Parameter(a.clone())
        self.lora_B = nn.Parameter(b.clone())
        self.scale = scale
        self.enabled = True

    def forward(self, x):
        y = self.base(x)
        if self.enabled:
            y = y + self.scale * ((x @ self.lora_A.t()) @ self.lora_B.t())
        return y


def peft_name(l, mod, ab):
    block = "mlp" if mod in ("gate_proj", "up_proj", "down_proj") else "self_attn"
    return "base_model.model.model.layers.%d.%s.%s.lora_%s.weight" % (l, block, mod, ab)


def parent(model, l, mod):
    layer = model.model.layers[l]
    return layer.mlp if mod in ("gate_proj", "up_proj", "down_proj") else layer.self_attn


def make_base():
    """The tiny Llama of gen_goldens.py, with its own seed."""
    m = G.Llama(CFG)
    g = torch.Generator().manual_seed(515)
    with torch.no_grad():
        for name, p in m.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.15 * torch.randn(p.shape, generator=g))
    for p in m.parameters():
        p.requires_grad_(False)
    return m


def make_adapter():
    """PEFT names -> tensors: A Kaiming-uniform-sized, B nonzero."""
    g = torch.Generator().manual_seed(616)
    D, I = CFG["hidden_size"], CFG["intermediate_size"]
    H, KV = CFG["num_attention_heads"], CFG["num_key_value_heads"]
    hd = D // H
    shapes = {"q_proj": (H * hd, D), "k_proj": (KV * hd, D), "v_proj": (KV * hd, D), "o_proj": (D, H * hd),
              "gate_proj": (I, D), "up_proj": (I, D), "down_proj": (D, I)}
    out = OrderedDict()
    for l in range(CFG["num_hidden_layers"]):
        for mod in MODULES:
            o, i = shapes[mod]
            out[peft_name(l, mod, "A")] = (2 * torch.rand(R, i, generator=g) - 1) / math.sqrt(i)
            out[peft_name(l, mod, "B")] = 0.2 * torch.randn(o, R, generator=g)
    return out


def attach(model, adapter, scale):
    """Wraps every targeted linear layer; returns the LoRA modules by PEFT prefix."""
    mods = OrderedDict()
    for l in range(CFG["num_hidden_layers"]):
        for mod in MODULES:
            par = parent(model, l, mod)
            lin = LoRALinear(getattr(par, mod), adapter[peft_name(l, mod, "A")], adapter[peft_name(l, mod, "B")], scale)
            setattr(par, mod, lin)
            mods[(l, mod)] = lin
    return mods


def set_enabled(mods, on):
    for m in mods.values():
        m.enabled = on


def adapter_state(mods):
    out = OrderedDict()
    for (l, mod), m in mods.items():
        out[peft_name(l, mod, "A")] = m.lora_A.detach().clone()
        out[peft_name(l, mod, "B")] = m.lora_B.detach().clone()
    return out


def adapter_config(use_rslora):
    return OrderedDict([
        ("alpha_pattern", {}), ("base_model_name_or_path", "base"), ("bias", "none"), ("fan_in_fan_out", False),
        ("inference_mode", True), ("init_lora_weights", True), ("lora_alpha", ALPHA), ("lora_dropout", 0.0),
        ("modules_to_save", None), ("peft_type", "LORA"), ("r", R), ("rank_pattern", {}), ("revision", None),
        ("target_modules", sorted(MODULES)), ("task_type", "CAUSAL_LM"), ("use_dora", False), ("use_rslora", use_rslora),
    ])


def save_bf16(path, tensors, metadata=None):
    """safetensors with BF16 data (round to nearest even, torch's .to(bfloat16))."""
    header = OrderedDict()
    if metadata:
        header["__metadata__"] = metadata
    blobs, off = [], 0
    for name in sorted(tensors):
        t = tensors[name].detach().to(torch.bfloat16).contiguous().reshape(-1)
        b = t.view(torch.int16).numpy().astype("<i2").tobytes()
        header[name] = {"dtype": "BF16", "shape": list(tensors[name].shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    hb = json.dumps(header, separators=(",", ":")).encode()
    hb += b" " * ((8 - len(hb) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hb)))
        f.write(hb)
        for b in blobs:
            f.write(b)


def write_model(dir_, model, dtype):
    os.makedirs(dir_, exist_ok=True)
    cfg = OrderedDict(CFG)
    cfg["torch_dtype"] = dtype
    with open(os.path.join(dir_, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
        f.write("\n")
    sd = G.state_dict_hf(model)
    if dtype == "bfloat16":
        save_bf16(os.path.join(dir_, "model.safetensors"), sd, {"format": "pt"})
    else:
        G.save_safetensors(os.path.join(dir_, "model.safetensors"), sd, {"format": "pt"})


def write_adapter(dir_, tensors, use_rslora):
    os.makedirs(dir_, exist_ok=True)
    G.save_safetensors(os.path.join(dir_, "adapter_model.safetensors"), tensors, {"format": "pt"})
    G.write_json(os.path.join(dir_, "adapter_config.json"), adapter_config(use_rslora))


# Four pairs; each setting's steps consume all four in equal micro-batches.
g = torch.Generator().manual_seed(717)
rnd = lambda n: torch.randint(3, CFG["vocab_size"], (n,), generator=g).tolist()
PAIRS = [{"prompt_input_ids": rnd(p), "chosen_input_ids": rnd(c), "rejected_input_ids": rnd(r)}
         for p, c, r in [(4, 5, 3), (6, 2, 4), (2, 7, 6), (5, 4, 5)]]

SETTINGS = OrderedDict([
    # RePO, 2 micro-batches of 2 accumulated, weight decay, clipping that acts
    # (γ large enough that every pair stays active through the steps)
    ("repo", dict(loss_type="repo", gamma_beta_ratio=6.0, beta=2.0, learning_rate=1e-2, weight_decay=0.1,
                  max_grad_norm=0.5, per_device_train_batch_size=2, gradient_accumulation_steps=2,
                  lr_scheduler_type="constant", warmup_steps=0, lora_init="init")),
    # the same from the rsLoRA adapter: scale α/√r
    ("repo-rslora", dict(loss_type="repo", gamma_beta_ratio=6.0, beta=2.0, learning_rate=1e-2, weight_decay=0.1,
                         max_grad_norm=0.5, per_device_train_batch_size=2, gradient_accumulation_steps=2,
                         lr_scheduler_type="constant", warmup_steps=0, lora_init="init-rslora")),
    # DPO whose reference is the base with the adapters off, linear warmup
    ("dpo", dict(loss_type="dpo", beta=0.5, learning_rate=2e-2, weight_decay=0.0, max_grad_norm=1.0,
                 per_device_train_batch_size=4, gradient_accumulation_steps=1,
                 lr_scheduler_type="linear", warmup_steps=1, lora_init="init")),
])


def batch_logps(model, pairs):
    """Log-prob sums and counts: prompt+chosen for every pair, then prompt+rejected."""
    seqs = [p["prompt_input_ids"] + p["chosen_input_ids"] for p in pairs] + \
           [p["prompt_input_ids"] + p["rejected_input_ids"] for p in pairs]
    plens = [len(p["prompt_input_ids"]) for p in pairs] * 2
    ids, am, lm = G.pad_batch(seqs, plens)
    return G.sequence_logps(model, ids, am, lm)


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    base = make_base()
    write_model(os.path.join(OUT, "base"), base, "float32")
    bf16 = make_base()
    with torch.no_grad():
        for p in bf16.parameters():
            p.copy_(p.to(torch.bfloat16).float())
    write_model(os.path.join(OUT, "base-bf16"), bf16, "bfloat16")
    with open(os.path.join(OUT, "pairs.jsonl"), "w") as f:
        for p in PAIRS:
            f.write(json.dumps(p) + "\n")
    init = make_adapter()
    write_adapter(os.path.join(OUT, "init"), init, False)
    write_adapter(os.path.join(OUT, "init-rslora"), init, True)

    expected = OrderedDict([("generator", GENERATOR), ("steps", STEPS), ("r", R), ("lora_alpha", ALPHA)])

    # log-prob sums with the init adapter, and with the adapters off
    m = make_base()
    mods = attach(m, init, ALPHA / R)
    with torch.no_grad():
        s_on, n = batch_logps(m, PAIRS)
        set_enabled(mods, False)
        s_off, _ = batch_logps(m, PAIRS)
    B = len(PAIRS)
    expected["logps_init_adapter"] = {"chosen": G.floats(s_on[:B]), "rejected": G.floats(s_on[B:]),
                                      "chosen_tokens": G.floats(n[:B]), "rejected_tokens": G.floats(n[B:])}
    expected["logps_adapters_off"] = {"chosen": G.floats(s_off[:B]), "rejected": G.floats(s_off[B:])}

    # merged weights, float32 and bfloat16 (one rounding)
    for name, src, path in [("float32", make_base(), "merged.safetensors"), ("bfloat16", bf16, "merged-bf16.safetensors")]:
        sd = OrderedDict((k, v.clone()) for k, v in G.state_dict_hf(src).items())
        for l in range(CFG["num_hidden_layers"]):
            for mod in MODULES:
                block = "mlp" if mod in ("gate_proj", "up_proj", "down_proj") else "self_attn"
                key = "model.layers.%d.%s.%s.weight" % (l, block, mod)
                delta = (init[peft_name(l, mod, "B")] @ init[peft_name(l, mod, "A")]) * (ALPHA / R)
                sd[key] = sd[key].float() + delta
        if name == "bfloat16":
            save_bf16(os.path.join(OUT, path), sd)
        else:
            G.save_safetensors(os.path.join(OUT, path), sd)

    settings = OrderedDict()
    for sname, s in SETTINGS.items():
        rs = s["lora_init"] == "init-rslora"
        m = make_base()
        mods = attach(m, init, ALPHA / math.sqrt(R) if rs else ALPHA / R)
        params = OrderedDict()
        for (l, mod), lm in mods.items():
            params[peft_name(l, mod, "A")] = lm.lora_A
            params[peft_name(l, mod, "B")] = lm.lora_B
        decay = [p for n_, p in params.items() if G.hf_decays(n_)]
        assert len(decay) == len(params)  # lora_A / lora_B weights all decay
        opt = torch.optim.AdamW([{"params": decay, "weight_decay": s["weight_decay"]}], lr=s["learning_rate"],
                                betas=(0.9, 0.999), eps=1e-8, foreach=False)
        if s["lr_scheduler_type"] == "constant":
            lam = lambda k: 1.0
        else:
            lam = G.linear_lambda(s["warmup_steps"], STEPS)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lam)
        bs, ga = s["per_device_train_batch_size"], s["gradient_accumulation_steps"]
        ref = None
        if s["loss_type"] == "dpo":
            with torch.no_grad():
                set_enabled(mods, False)
                ref, _ = batch_logps(m, PAIRS)
                set_enabled(mods, True)
        steps = []
        for step in range(STEPS):
            opt.zero_grad(set_to_none=True)
            total = 0.0
            for k in range(ga):
                idx = list(range(k * bs, (k + 1) * bs))
                mb = [PAIRS[i] for i in idx]
                sm, cnt = batch_logps(m, mb)
                nb = len(mb)
                pc, pr, nc, nr = sm[:nb], sm[nb:], cnt[:nb], cnt[nb:]
                if s["loss_type"] == "repo":
                    margin = pc / nc - pr / nr
                    assert bool((margin < s["gamma_beta_ratio"] - 0.5).all()), margin  # every pair active
                    loss = F.relu(s["gamma_beta_ratio"] - margin).mean()
                else:
                    rc = torch.stack([ref[i] for i in idx])
                    rr = torch.stack([ref[len(PAIRS) + i] for i in idx])
                    loss = -F.logsigmoid(s["beta"] * ((pc - rc) - (pr - rr))).mean()
                (loss / ga).backward()
                total += float(loss) / ga
            norm = float(torch.nn.utils.clip_grad_norm_(list(params.values()), s["max_grad_norm"]))
            steps.append({"loss": total, "grad_norm": norm, "learning_rate": opt.param_groups[0]["lr"],
                          "clipped": norm > s["max_grad_norm"]})
            opt.step()
            sched.step()
        G.save_safetensors(os.path.join(OUT, "after-%s.safetensors" % sname), adapter_state(mods))
        settings[sname] = OrderedDict([("options", s), ("steps", steps)])
        print(sname, ["%.6g/%.4g" % (x["loss"], x["grad_norm"]) for x in steps])
    expected["settings"] = settings
    G.write_json(os.path.join(OUT, "expected.json"), expected)


if __name__ == "__main__":
    main()
