#!/usr/bin/python3
"""PyTorch side of `relupo bench --preset gemma3-1b|gemma2-2b`: the same step
on the same shapes, with the eager PyTorch Gemma of model/testdata/gen_gemma.py
(written from transformers' modeling_gemma2.py / modeling_gemma3.py: (1 + w)
RMSNorms, four per layer, scaled embeddings, GeGLU, query_pre_attn_scalar,
soft caps, sliding-window masks, Gemma-3's q/k norms and two RoPE bases).

  OMP_WAIT_POLICY=PASSIVE OMP_NUM_THREADS=2 OPENBLAS_NUM_THREADS=2 \\
    /usr/bin/python3 bench/gemma_bench.py {gemma3-1b|gemma2-2b} [train|ref-forward] [seq=256] [max_seconds=300]

One step, as relupo's: 2 pairs = 4 sequences of seq tokens (the first quarter
prompt), random ids, random weights (N(0, 0.02²), norms 0). train: log-prob
sums over the response tokens, RePO loss (gamma 10: every pair active),
backward, AdamW (no clipping); ref-forward: the no-gradient forward and log-probs.
One warm-up step, then steps until max_seconds (at least one, at most 20).
Prints one JSON object with tokens_per_s and peak_rss_GB.
"""
import json
import os
import sys
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "model", "testdata"))
import gen_gemma as G  # noqa: E402

name = sys.argv[1] if len(sys.argv) > 1 else "gemma3-1b"
mode = sys.argv[2] if len(sys.argv) > 2 else "train"
T = int(sys.argv[3]) if len(sys.argv) > 3 else 256
max_s = float(sys.argv[4]) if len(sys.argv) > 4 else 300.0
torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))

PRESETS = {  # bench.Presets in bench/train.go
    "gemma3-1b": dict(model_type="gemma3_text", vocab_size=262144, hidden_size=1152, intermediate_size=6912,
                      num_hidden_layers=26, num_attention_heads=4, num_key_value_heads=1, head_dim=256,
                      query_pre_attn_scalar=256, sliding_window=512, sliding_window_pattern=6, rope_theta=1000000.0,
                      rope_local_base_freq=10000.0, rope_scaling=None, rms_norm_eps=1e-6,
                      attn_logit_softcapping=None, final_logit_softcapping=None),
    "gemma2-2b": dict(model_type="gemma2", vocab_size=256000, hidden_size=2304, intermediate_size=9216,
                      num_hidden_layers=26, num_attention_heads=8, num_key_value_heads=4, head_dim=256,
                      query_pre_attn_scalar=256, sliding_window=4096, attn_logit_softcapping=50.0,
                      final_logit_softcapping=30.0, rope_theta=10000.0, rms_norm_eps=1e-6),
}
cfg = PRESETS[name]
torch.manual_seed(0)
model = G.Gemma(cfg)
with torch.no_grad():
    for n, p in model.named_parameters():
        if n.endswith("norm.weight"):
            p.zero_()
        else:
            p.normal_(0, 0.02)
if mode != "train":
    for p in model.parameters():
        p.requires_grad_(False)
g = torch.Generator().manual_seed(0)
pairs = 2
ids = torch.randint(3, cfg["vocab_size"], (2 * pairs, T), generator=g)
P = T // 4
opt = torch.optim.AdamW(model.parameters(), lr=1e-5, eps=1e-8, weight_decay=0.0) if mode == "train" else None


def logps():
    """Per sequence: summed log-probs of the response tokens and their count."""
    sums = []
    for row in ids:
        logits = model(row[None])[0, P - 1:-1]
        lp = torch.log_softmax(logits, -1).gather(1, row[P:, None])[:, 0]
        sums.append(lp.sum())
    return torch.stack(sums), T - P


def step():
    t0 = time.perf_counter()
    if mode == "train":
        opt.zero_grad(set_to_none=True)
        s, n = logps()
        m = (s[:pairs] - s[pairs:]) / n
        loss = torch.relu(10.0 - m).mean()
        loss.backward()
        opt.step()
    else:
        with torch.no_grad():
            logps()
    return time.perf_counter() - t0


def rss_gb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM"):
                return int(line.split()[1]) / 1e6


start = time.perf_counter()
print("[%s %s] warm-up step %.2fs" % (name, mode, step()), file=sys.stderr, flush=True)
times = []
while (time.perf_counter() - start < max_s or not times) and len(times) < 20:
    times.append(step())
    print("[%s %s] step %d: %.3fs" % (name, mode, len(times), times[-1]), file=sys.stderr, flush=True)
times.sort()
med = times[len(times) // 2]
tokens = 2 * pairs * T
print(json.dumps({"preset": name, "mode": mode, "seq_len": T, "tokens_per_step": tokens, "steps_measured": len(times),
                  "step_s_median": med, "tokens_per_s": tokens / med, "peak_rss_GB": rss_gb(),
                  "torch": torch.__version__, "threads": torch.get_num_threads()}))
