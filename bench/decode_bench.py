#!/usr/bin/python3
"""PyTorch baseline for `relupo bench --mode decode`: greedy KV-cache
decoding of a randomly initialized Llama of a preset's shape.

B = 4 sequences (2 pairs, as relupo's bench) of P prompt tokens are prefilled
in one forward pass, then N tokens are decoded one forward pass at a time,
each attending to a preallocated key/value cache (grouped-query attention
repeats the kv heads), float32, under torch.inference_mode(). P = N = a
quarter of the preset's sequence length, as relupo's bench does. The model is
written here (rotary embeddings, RMSNorm, SwiGLU, an untied or tied lm_head),
the way transformers' LlamaForCausalLM computes it with a static cache.

  OMP_WAIT_POLICY=PASSIVE OPENBLAS_THREAD_TIMEOUT=4 OMP_NUM_THREADS=2 OPENBLAS_NUM_THREADS=2 \\
    /usr/bin/python3 bench/decode_bench.py [preset=30m] [threads=2] [runs=3]

Prints one JSON object: decoded tokens/s (median run), the median step in
ms, prefill tokens/s, peak RSS.
"""
import json, resource, statistics, sys, time
import torch
import torch.nn.functional as F

SHAPES = {
    "30m": dict(V=8192, D=512, I=1376, L=8, H=8, KV=8, tied=False, seq=512),
    "135m": dict(V=49152, D=576, I=1536, L=30, H=9, KV=3, tied=True, seq=256),
}

preset = sys.argv[1] if len(sys.argv) > 1 else "30m"
threads = int(sys.argv[2]) if len(sys.argv) > 2 else 2
runs = int(sys.argv[3]) if len(sys.argv) > 3 else 3
s = SHAPES[preset]
torch.set_num_threads(threads)
torch.manual_seed(0)
V, D, I, L, H, KV = s["V"], s["D"], s["I"], s["L"], s["H"], s["KV"]
hd = D // H
B, P = 4, s["seq"] // 4
N = P
T = P + N


def w(*shape):
    return torch.randn(*shape) * 0.02


emb = w(V, D)
lm_head = emb if s["tied"] else w(V, D)
layers = [dict(n1=torch.ones(D), wq=w(H * hd, D), wk=w(KV * hd, D), wv=w(KV * hd, D), wo=w(D, H * hd),
               n2=torch.ones(D), wg=w(I, D), wu=w(I, D), wd=w(D, I)) for _ in range(L)]
norm = torch.ones(D)
inv = 1.0 / (10000.0 ** (torch.arange(0, hd, 2).float() / hd))
ang = torch.outer(torch.arange(T).float(), inv)
cos, sin = torch.cat([ang.cos(), ang.cos()], -1), torch.cat([ang.sin(), ang.sin()], -1)


def rms(x, g):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * g


def rope(x, p0):  # x [B, heads, t, hd]
    t = x.shape[2]
    c, sn = cos[p0:p0 + t], sin[p0:p0 + t]
    x1, x2 = x[..., : hd // 2], x[..., hd // 2:]
    return x * c + torch.cat([-x2, x1], -1) * sn


def forward(tokens, cache, p0):
    """tokens [B, t] at positions p0.. ; returns the last position's logits."""
    t = tokens.shape[1]
    x = emb[tokens]
    mask = None
    if t > 1:
        mask = torch.full((t, p0 + t), float("-inf")).triu(p0 + 1)
    for l, ly in enumerate(layers):
        h = rms(x, ly["n1"])
        q = (h @ ly["wq"].T).view(B, t, H, hd).transpose(1, 2)
        k = (h @ ly["wk"].T).view(B, t, KV, hd).transpose(1, 2)
        v = (h @ ly["wv"].T).view(B, t, KV, hd).transpose(1, 2)
        q, k = rope(q, p0), rope(k, p0)
        kc, vc = cache[l]
        kc[:, :, p0:p0 + t] = k
        vc[:, :, p0:p0 + t] = v
        keys = kc[:, :, : p0 + t].repeat_interleave(H // KV, dim=1)
        vals = vc[:, :, : p0 + t].repeat_interleave(H // KV, dim=1)
        sc = (q @ keys.transpose(-1, -2)) / hd ** 0.5
        if mask is not None:
            sc = sc + mask
        o = (sc.softmax(-1) @ vals).transpose(1, 2).reshape(B, t, D)
        x = x + o @ ly["wo"].T
        h = rms(x, ly["n2"])
        x = x + (F.silu(h @ ly["wg"].T) * (h @ ly["wu"].T)) @ ly["wd"].T
    return rms(x[:, -1], norm) @ lm_head.T


def run():
    cache = [(torch.zeros(B, KV, T, hd), torch.zeros(B, KV, T, hd)) for _ in range(L)]
    prompt = torch.randint(0, V, (B, P))
    t0 = time.perf_counter()
    nxt = forward(prompt, cache, 0).argmax(-1, keepdim=True)
    t1 = time.perf_counter()
    steps = []
    for i in range(N):
        a = time.perf_counter()
        nxt = forward(nxt, cache, P + i).argmax(-1, keepdim=True)
        steps.append(time.perf_counter() - a)
    return t1 - t0, time.perf_counter() - t1, steps


with torch.inference_mode():
    run()  # warm-up
    results = [run() for _ in range(runs)]
pre = statistics.median(r[0] for r in results)
dec = statistics.median(r[1] for r in results)
step = statistics.median(x for r in results for x in r[2])
print(json.dumps({
    "preset": preset, "mode": "decode", "threads": threads, "sequences": B, "prompt_tokens": P, "new_tokens": N,
    "runs_measured": runs, "decode_s_median": dec, "tokens_per_s": B * N / dec, "step_ms_median": 1e3 * step,
    "prefill_s_median": pre, "prefill_tokens_per_s": B * P / pre,
    "peak_rss_GB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6, "weights_dtype": "float32",
    "torch": torch.__version__,
}))
