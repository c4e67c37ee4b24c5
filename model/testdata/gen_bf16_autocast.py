#!/usr/bin/python3
"""Measure how far PyTorch's bf16 autocast moves the golden model's numbers
from their float32 values, for relupo's BF16 accuracy test to compare with.

It runs ../shared/fixtures/golden/tiny-llama on the golden pairs under
torch.autocast("cpu", dtype=torch.bfloat16) (the same call bench_train.py's
bf16 mode makes), computes the RePO, SimPO and DPO gradients (reference
log-probs from golden.json's float32 values, as the golden gradients use),
and compares them with golden.json's float32 log-probs and the golden
gradient files using the same measures as model/bf16_test.go.

Run from the repository root:
    /usr/bin/python3 model/testdata/gen_bf16_autocast.py
It writes model/testdata/bf16_autocast.json. Tests read only that file.
"""
import json, math, os, sys
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED = os.path.join(HERE, "..", "..", "..", "shared")
sys.path.insert(0, os.path.join(SHARED, "reference"))
import llama_ref as L  # noqa: E402
import losses_ref as LS  # noqa: E402

torch.set_num_threads(1)
GOLD = os.path.join(SHARED, "fixtures", "golden")
g = json.load(open(os.path.join(GOLD, "golden.json")))
hp = g["hyperparameters"]
model = L.from_pretrained(os.path.join(GOLD, "tiny-llama"))
ids, am, lm = L.build_preference_batch(g["data"]["prompts"], g["data"]["chosen"], g["data"]["rejected"],
                                       g["data"]["pad_token_id"])
want_sum = torch.tensor(g["f32"]["policy_logp_sum"], dtype=torch.float64)
want_n = torch.tensor(g["f32"]["token_count"], dtype=torch.float64)
ref = torch.tensor(g["f32"]["reference_logp_sum"], dtype=torch.float32)
B = len(g["data"]["prompts"])

out = {"torch": torch.__version__, "description": __doc__.strip().splitlines()[0]}
for kind in ("repo", "simpo", "dpo"):
    model.zero_grad(set_to_none=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        s, n = L.sequence_logps(model, ids, am, lm)
    s, n = s.float(), n.float()
    if kind == "repo":
        loss = LS.repo_loss(s[:B], s[B:], n[:B], n[B:], gamma=hp["repo"]["gamma"])[0]
    elif kind == "simpo":
        loss = LS.simpo_loss(s[:B], s[B:], n[:B], n[B:], beta=hp["simpo"]["beta"], gamma=hp["simpo"]["gamma"])[0]
    else:
        loss = LS.dpo_loss(s[:B], s[B:], ref[:B], ref[B:], beta=hp["dpo"]["beta"])[0]
    loss.backward()
    if kind == "repo":
        sd = s.detach().double()
        out["logp_sum_max_rel_err"] = float(((sd - want_sum).abs() / want_sum.abs().clamp(min=1)).max())
        out["logp_avg_max_abs_err"] = float((sd / want_n - want_sum / want_n).abs().max())
    want, _ = L.load_safetensors(os.path.join(GOLD, f"grads_{kind}.safetensors"))
    got = {k: v.grad for k, v in model.named_parameters()}  # the HF names
    dot = n1 = n2 = 0.0
    worst = 0.0
    for name, w in want.items():
        gg = got[name].double()
        w = w.double()
        dot += float((w * gg).sum()); n1 += float((w * w).sum()); n2 += float((gg * gg).sum())
        worst = max(worst, float((gg - w).abs().max() / w.abs().max().clamp(min=1e-12)))
    out[kind] = {"grad_cos": dot / math.sqrt(n1 * n2), "grad_norm_ratio": math.sqrt(n2 / n1), "worst_tensor_err": worst}
    print(kind, out[kind])
print(out)
json.dump(out, open(os.path.join(HERE, "bf16_autocast.json"), "w"), indent=1)
