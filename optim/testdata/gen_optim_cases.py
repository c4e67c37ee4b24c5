#!/usr/bin/python3
"""Generate expected values for package optim's tests (optim_cases.json).

Usage (from the repository root):
    /usr/bin/python3 optim/testdata/gen_optim_cases.py > optim/testdata/optim_cases.json

float32 tensors are stored as their IEEE-754 bit patterns (int32), so the Go
tests can compare bit for bit.

  adamw:     torch.optim.AdamW (single-tensor CPU path, foreach=False) over
             several steps with per-step learning rates, with HF Trainer
             parameter groups (no weight decay for biases and norm weights);
             one parameter has grad None on one step (skipped, its step count
             lags). Parameters after every step and the final state.
  clip:      torch.nn.utils.clip_grad_norm_ (norm_type 2): total norm and the
             gradients afterwards.
  schedules: transformers.get_scheduler's lambdas, restated from
             transformers/optimization.py (transformers is not needed):
               warmup part (k < W): k / max(1, W)
               constant: 1;  constant_with_warmup: 1 after warmup
               linear: max(0, (T - k) / max(1, T - W))
               cosine: p = (k - W) / max(1, T - W);
                       max(0, 0.5 * (1 + cos(pi * num_cycles * 2 * p))), num_cycles = 0.5
             LambdaLR evaluates the lambda at the step index before it is
             incremented, so optimizer step k uses base_lr * lambda(k); the
             values below are read back from a real torch LambdaLR driving an
             SGD optimizer, to pin that off-by-one.
  warmup:    TrainingArguments.get_warmup_steps:
             warmup_steps if warmup_steps > 0 else math.ceil(num_training_steps * warmup_ratio)
"""
import json
import math

import torch

torch.set_num_threads(1)


def bits(t):
    return t.detach().contiguous().view(torch.int32).reshape(-1).tolist()


def no_decay(name):  # HF Trainer.get_decay_parameter_names, name patterns
    import re
    pats = [r"bias", r"layernorm", r"rmsnorm", r"(?:^|\.)norm(?:$|\.)", r"_norm(?:$|\.)"]
    return any(re.search(p, name.lower()) for p in pats)


PARAMS = [("model.layers.0.mlp.up_proj.weight", 37), ("model.norm.weight", 16),
          ("model.layers.0.self_attn.q_proj.bias", 5), ("lm_head.weight", 21)]


def adamw_case(name, wd, betas, eps, lrs, seed):
    g = torch.Generator().manual_seed(seed)
    params = {n: torch.nn.Parameter(torch.randn(k, generator=g) * 0.3) for n, k in PARAMS}
    init = {n: bits(p) for n, p in params.items()}
    groups = [{"params": [p for n, p in params.items() if not no_decay(n)], "weight_decay": wd},
              {"params": [p for n, p in params.items() if no_decay(n)], "weight_decay": 0.0}]
    opt = torch.optim.AdamW(groups, lr=lrs[0], betas=betas, eps=eps, foreach=False)
    steps = []
    for s, lr in enumerate(lrs):
        grads = {}
        for i, (n, p) in enumerate(params.items()):
            if s == 2 and n.endswith(".bias"):
                p.grad = None
                grads[n] = None
                continue
            gr = torch.randn(p.numel(), generator=g) * (10.0 ** (-(s + i) % 4))
            if s == 1:
                gr[:3] = 0.0
            if s == 3 and i == 0:
                gr[5] = 1e4
            p.grad = gr.clone()
            grads[n] = bits(gr)
        for grp in opt.param_groups:
            grp["lr"] = lr
        opt.step()
        steps.append({"lr": lr, "grads": grads, "after": {n: bits(p) for n, p in params.items()}})
    state = {}
    for n, p in params.items():
        st = opt.state[p]
        state[n] = {"exp_avg": bits(st["exp_avg"]), "exp_avg_sq": bits(st["exp_avg_sq"]), "step": float(st["step"])}
    return {"name": name, "beta1": betas[0], "beta2": betas[1], "eps": eps, "weight_decay": wd,
            "init": init, "steps": steps, "state": state}


def clip_case(name, max_norm, scale, seed):
    g = torch.Generator().manual_seed(seed)
    ps = [torch.nn.Parameter(torch.zeros(k)) for k in (33, 7, 64)]
    for p in ps:
        p.grad = torch.randn(p.numel(), generator=g) * scale
    before = [bits(p.grad) for p in ps]
    total = torch.nn.utils.clip_grad_norm_(ps, max_norm)
    return {"name": name, "max_norm": max_norm, "grads": before, "total_norm": float(total),
            "after": [bits(p.grad) for p in ps]}


def hf_lambda(kind, W, T):
    def warm(k):
        return float(k) / float(max(1, W))

    def lam(k):
        if kind == "constant":
            return 1.0
        if k < W:
            return warm(k)
        if kind == "constant_with_warmup":
            return 1.0
        if kind == "linear":
            return max(0.0, float(T - k) / float(max(1, T - W)))
        if kind == "cosine":
            p = float(k - W) / float(max(1, T - W))
            return max(0.0, 0.5 * (1.0 + math.cos(math.pi * float(0.5) * 2.0 * p)))
        raise ValueError(kind)
    return lam


def schedule_case(kind, base, W, T):
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=base)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, hf_lambda(kind, W, T))
    lrs = []
    for _ in range(T + 3):
        lrs.append(opt.param_groups[0]["lr"])  # the rate optimizer.step() uses now
        opt.step()
        sched.step()
    return {"kind": kind, "base_lr": base, "warmup": W, "total": T, "lrs": lrs}


if __name__ == "__main__":
    out = {
        "generator": "optim/testdata/gen_optim_cases.py, torch %s" % torch.__version__,
        "adamw": [
            adamw_case("hf_defaults_wd0", 0.0, (0.9, 0.999), 1e-8, [1e-3, 5e-4, 2e-3, 1e-3, 1e-4], 1),
            adamw_case("wd0.01_groups", 0.01, (0.9, 0.999), 1e-8, [1e-3, 5e-4, 2e-3, 1e-3, 1e-4], 2),
            adamw_case("betas0.8_0.99_eps1e-6_wd0.1", 0.1, (0.8, 0.99), 1e-6, [3e-2, 1e-2, 2e-2, 5e-3], 3),
        ],
        "clip": [
            clip_case("clipped", 1.0, 0.5, 4),
            clip_case("not_clipped", 100.0, 0.5, 5),
            clip_case("tiny_grads", 1.0, 1e-6, 6),
        ],
        "schedules": [schedule_case(k, base, W, T) for k, base, W, T in [
            ("constant", 1e-3, 0, 5), ("constant", 1e-3, 3, 5),
            ("constant_with_warmup", 2e-5, 3, 8), ("constant_with_warmup", 2e-5, 0, 4),
            ("linear", 1e-3, 2, 10), ("linear", 5e-7, 0, 7), ("linear", 1e-6, 12, 10),
            ("cosine", 1e-6, 3, 30), ("cosine", 8e-7, 47, 467), ("cosine", 1e-3, 0, 9), ("cosine", 1e-3, 1, 1),
        ]],
        "warmup": [{"warmup_steps": w, "warmup_ratio": r, "total": t,
                    "want": w if w > 0 else math.ceil(t * r)}
                   for w, r, t in [(0, 0.1, 467), (0, 0.1, 30), (0, 0.07, 100), (5, 0.1, 467), (0, 0.0, 10),
                                   (0, 0.03, 1000), (0, 1.0, 9)]],
    }
    print(json.dumps(out))
