#!/usr/bin/python3
"""PyTorch baseline for `relupo bench --data`: realistic preference batches
trained the way TRL's DPOTrainer / the SimPO-RePO trainer lay them out.

Reads the pair lengths written by `relupo bench --data FILE --tokenizer DIR
--write-lengths LENGTHS` and trains one pass over all pairs, in batches of
B pairs: the chosen and rejected sequences (prompt + response) of a batch are
right-padded to the batch's longest sequence and stacked into 2B rows (TRL's
concatenated forward), with an attention mask; the RePO loss on average
log-probs; backward; AdamW. The model is the shared reference Llama
(../shared/reference/llama_ref.py) in the preset's shape, randomly
initialized, with random token ids of the given lengths.

  OMP_WAIT_POLICY=PASSIVE OPENBLAS_THREAD_TIMEOUT=4 OMP_NUM_THREADS=2 OPENBLAS_NUM_THREADS=2 \\
    /usr/bin/python3 bench/trl_style_bench.py LENGTHS [preset=30m] [pairs_per_batch=2] [threads=2] [f32|bf16]

bf16 runs the forward under torch.autocast("cpu", dtype=torch.bfloat16), as
../shared/reference/bench_train.py does.

Prints one JSON object: pairs/s, real and padded tokens, peak RSS.
"""
import json, os, sys, time
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "shared", "reference"))
import llama_ref as L  # noqa: E402
import losses_ref as LS  # noqa: E402

lengths_path = sys.argv[1]
preset = sys.argv[2] if len(sys.argv) > 2 else "30m"
B = int(sys.argv[3]) if len(sys.argv) > 3 else 2
threads = int(sys.argv[4]) if len(sys.argv) > 4 else 2
prec = sys.argv[5] if len(sys.argv) > 5 else "f32"
assert prec in ("f32", "bf16"), prec
torch.set_num_threads(threads)

CONFIGS = {  # the shapes of bench_train.py
    "30m": L.make_config(vocab_size=8192, hidden_size=512, intermediate_size=1376, num_hidden_layers=8,
                         num_attention_heads=8, num_key_value_heads=8, max_position_embeddings=2048,
                         rms_norm_eps=1e-5, tie_word_embeddings=False),
    "135m": L.make_config(vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                          num_attention_heads=9, num_key_value_heads=3, max_position_embeddings=2048,
                          rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=True),
}
cfg = CONFIGS[preset]
lens = [json.loads(l) for l in open(lengths_path) if l.strip()]
g = torch.Generator().manual_seed(0)
ids = lambda n: torch.randint(3, cfg["vocab_size"], (n,), generator=g).tolist()
pairs = [(ids(l["prompt"]), ids(l["chosen"]), ids(l["rejected"])) for l in lens]

torch.manual_seed(0)
model = L.LlamaForCausalLM(cfg).init_weights(seed=0)
opt = torch.optim.AdamW(model.parameters(), lr=1e-5, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)


def step(batch):
    ids_, am, lm = L.build_preference_batch([p for p, _, _ in batch], [c for _, c, _ in batch],
                                           [r for _, _, r in batch], pad_id=cfg["pad_token_id"])
    opt.zero_grad(set_to_none=True)
    if prec == "bf16":
        with torch.autocast("cpu", dtype=torch.bfloat16):
            s, n = L.sequence_logps(model, ids_, am, lm)
        s, n = s.float(), n.float()
    else:
        s, n = L.sequence_logps(model, ids_, am, lm)
    k = len(batch)
    loss = LS.repo_loss(s[:k], s[k:], n[:k], n[k:], gamma=10.0)[0]
    loss.backward()
    opt.step()
    return int(am.sum()), ids_.numel()


step(pairs[:B])  # warm-up
t0 = time.perf_counter()
real = padded = 0
for lo in range(0, len(pairs), B):
    r, p = step(pairs[lo:lo + B])
    real += r
    padded += p
secs = time.perf_counter() - t0
with open("/proc/self/status") as f:
    rss = next(int(l.split()[1]) / 1e6 for l in f if l.startswith("VmHWM"))
print(json.dumps({"preset": preset, "pairs": len(pairs), "batch_pairs": B, "seconds": secs,
                  "pairs_per_s": len(pairs) / secs, "real_tokens": real, "padded_tokens": padded,
                  "padding_fraction": 1 - real / padded, "tokens_per_s": real / secs, "peak_rss_GB": rss,
                  "torch": torch.__version__, "threads": threads, "precision": prec}))
