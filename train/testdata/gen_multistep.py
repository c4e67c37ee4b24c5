#!/usr/bin/python3
"""Reference for relupo's multi-step training test: three optimizer steps of
the Hugging Face Trainer's loop, written out in PyTorch, on a small random
Llama built with the shared reference implementation
(../shared/reference/llama_ref.py and losses_ref.py).

HF Trainer semantics reproduced here: each micro-batch's mean loss is divided
by gradient_accumulation_steps and backpropagated; then
clip_grad_norm_(max_grad_norm) when max_grad_norm > 0; then AdamW
(torch.optim.AdamW, weight decay only on parameters that are neither biases
nor norms); then the LambdaLR schedule steps. Every step consumes the whole
data set, so the result does not depend on the shuffling order.

Run from the repository root:
    /usr/bin/python3 train/testdata/gen_multistep.py
It writes train/testdata/multistep/: policy/ and reference/ model folders,
pairs.jsonl (pre-tokenized) and one after-<setting>.safetensors per setting,
plus settings.json.
"""
import json, math, os, sys
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "..", "shared", "reference"))
import llama_ref as L  # noqa: E402
import losses_ref as LS  # noqa: E402

torch.set_num_threads(1)
OUT = os.path.join(HERE, "multistep")
os.makedirs(OUT, exist_ok=True)

CFG = L.make_config(vocab_size=64, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                    num_attention_heads=4, num_key_value_heads=2, rms_norm_eps=1e-5, rope_theta=10000.0,
                    tie_word_embeddings=False)
g = torch.Generator().manual_seed(11)
rnd = lambda n: torch.randint(3, 64, (n,), generator=g).tolist()
PAIRS = [{"prompt_input_ids": rnd(p), "chosen_input_ids": rnd(c), "rejected_input_ids": rnd(r)}
         for p, c, r in [(3, 5, 4), (6, 2, 3), (2, 7, 5), (4, 4, 6)]]
with open(os.path.join(OUT, "pairs.jsonl"), "w") as f:
    for p in PAIRS:
        f.write(json.dumps(p) + "\n")

policy0 = L.LlamaForCausalLM(CFG).init_weights(seed=3, std=0.2, norm_jitter=0.1)
ref = L.LlamaForCausalLM(CFG).init_weights(seed=4, std=0.2, norm_jitter=0.1)
L.save_pretrained(policy0, os.path.join(OUT, "policy"))
L.save_pretrained(ref, os.path.join(OUT, "reference"))

SETTINGS = {
    # RePO with weight decay and clipping (γ large enough that pairs stay active)
    "repo-wd-clip": dict(loss_type="repo", gamma_beta_ratio=4.0, beta=2.0, learning_rate=2e-3, weight_decay=0.1,
                         max_grad_norm=0.05, per_device_train_batch_size=4, gradient_accumulation_steps=1,
                         lr_scheduler_type="constant", warmup_steps=0),
    # the same with 2 micro-batches of 2 pairs accumulated
    "repo-accum": dict(loss_type="repo", gamma_beta_ratio=4.0, beta=2.0, learning_rate=2e-3, weight_decay=0.1,
                       max_grad_norm=0.05, per_device_train_batch_size=2, gradient_accumulation_steps=2,
                       lr_scheduler_type="constant", warmup_steps=0),
    # DPO with a separate reference model and linear warmup
    "dpo-ref-warmup": dict(loss_type="dpo", beta=0.1, learning_rate=1e-2, weight_decay=0.0, max_grad_norm=1.0,
                           per_device_train_batch_size=4, gradient_accumulation_steps=1,
                           lr_scheduler_type="linear", warmup_steps=1),
}
STEPS = 3


def lr_lambda(kind, warmup, total):
    def f(s):
        if kind == "constant":
            return 1.0
        if s < warmup:
            return s / max(1, warmup)
        if kind == "linear":
            return max(0.0, (total - s) / max(1, total - warmup))
        raise ValueError(kind)
    return f


def seq_logps(model, pairs):
    ids, am, lm = L.build_preference_batch([p["prompt_input_ids"] for p in pairs], [p["chosen_input_ids"] for p in pairs],
                                           [p["rejected_input_ids"] for p in pairs], pad_id=0)
    return L.sequence_logps(model, ids, am, lm)


for name, s in SETTINGS.items():
    pol = L.LlamaForCausalLM(CFG)
    pol.load_state_dict(policy0.state_dict())
    decay = [p for n, p in pol.named_parameters() if not (n.endswith("norm.weight") or n.endswith(".bias"))]
    nodecay = [p for n, p in pol.named_parameters() if n.endswith("norm.weight") or n.endswith(".bias")]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": s["weight_decay"]}, {"params": nodecay, "weight_decay": 0.0}],
                            lr=s["learning_rate"], betas=(0.9, 0.999), eps=1e-8)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(s["lr_scheduler_type"], s["warmup_steps"], STEPS))
    b, ga = s["per_device_train_batch_size"], s["gradient_accumulation_steps"]
    for step in range(STEPS):
        opt.zero_grad(set_to_none=True)
        for k in range(ga):
            mb = PAIRS[k * b:(k + 1) * b]
            sm, n = seq_logps(pol, mb)
            B = len(mb)
            if s["loss_type"] == "repo":
                loss = LS.repo_loss(sm[:B], sm[B:], n[:B], n[B:], gamma=s["gamma_beta_ratio"])[0]
            else:
                with torch.no_grad():
                    rs, _ = seq_logps(ref, mb)
                loss = LS.dpo_loss(sm[:B], sm[B:], rs[:B], rs[B:], beta=s["beta"])[0]
            (loss / ga).backward()
        if s["max_grad_norm"] > 0:
            torch.nn.utils.clip_grad_norm_(pol.parameters(), s["max_grad_norm"])
        opt.step()
        sched.step()
    L.save_safetensors(os.path.join(OUT, f"after-{name}.safetensors"), {k: v.detach() for k, v in pol.named_parameters()})
    print(name, "done")
with open(os.path.join(OUT, "settings.json"), "w") as f:
    json.dump({"steps": STEPS, "settings": SETTINGS}, f, indent=1)
