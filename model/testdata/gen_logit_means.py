#!/usr/bin/python3
"""Reference values for model.Workspace.LogitMeans: for each sequence of
model/testdata/arch/expected.json, the sum over its label rows (the rows that
predict a response token) of the row's mean logit over the vocabulary, which
is what TRL's logits/chosen averages (DPOTrainer.concatenated_forward:
logits[loss_mask].mean()).

The model is the checked-in llama-gqa-tied case, run with the shared PyTorch
reference (../shared/reference/llama_ref.py); the script first checks that it
reproduces that case's log-prob sums.

Run from the repository root:
    /usr/bin/python3 model/testdata/gen_logit_means.py
It writes model/testdata/arch/logit_means.json; tests read only that file.
"""
import json, os, sys
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "..", "shared", "reference"))
import llama_ref as L  # noqa: E402

torch.set_num_threads(1)
CASE = "llama-gqa-tied"
exp = json.load(open(os.path.join(HERE, "arch", "expected.json")))
m = L.from_pretrained(os.path.join(HERE, "arch", CASE))
m.eval()
means, sums = [], []
with torch.no_grad():
    for seq in exp["sequences"]:
        p, r = seq["prompt"], seq["response"]
        ids = torch.tensor([p + r])
        out = m(ids)
        logits = (out.logits if hasattr(out, "logits") else out)[0, :-1].double()
        first = max(len(p), 1)
        lp = torch.log_softmax(logits, -1).gather(1, ids[0, 1:, None])[:, 0]
        sums.append(float(lp[first - 1:].sum()))
        means.append(float(logits[first - 1:].mean(-1).sum()))
want = exp["cases"][CASE]["logp_sums"]
assert all(abs(a - b) < 1e-3 for a, b in zip(sums, want)), (sums, want)
with open(os.path.join(HERE, "arch", "logit_means.json"), "w") as f:
    json.dump({"case": CASE, "logit_mean_sums": means}, f, indent=1)
print(means)
