#!/usr/bin/python3
"""Generate expected values for package pref's tests (pref_cases.json).

Usage (from the repository root):
    /usr/bin/python3 pref/testdata/gen_pref_cases.py > pref/testdata/pref_cases.json

Each case gives a loss configuration, a batch of per-sequence log-prob sums,
label counts and reference sums (float64), and the expected batch loss,
per-pair losses, d loss / d sum for every policy sequence (PyTorch autograd)
and metrics. The losses are written here independently of the Go code, in the
PyTorch form of the project's method notes (section B):

  repo        relu(gamma - M)                        M = pc/nc - pr/nr
  repo++      -logsigmoid(-beta * relu(gamma - M))   (log 2 floor kept)
  simpo       -(1-ls) logsigmoid(beta*(M - gamma)) - ls logsigmoid(-beta*(M - gamma))
  dpo         the same on h = (pc - rc) - (pr - rr) with gamma = 0
  ipo         (hbar - 1/(2 beta))^2                  hbar: h on averages
  hinge       relu(1 - beta*h)
  dpo+repo    relu(gamma - h)
  dpo+repo++  -logsigmoid(-relu(gamma - beta*h))

Metrics (relupo's convention):
  rewards/chosen|rejected: beta*avg logp for repo, repo++, simpo (official
  SimPO/RePO trainer); beta*(policy - reference) on sums for dpo, hinge,
  dpo+repo, dpo+repo++; on averages for ipo. margins = mean(chosen - rejected),
  accuracies = mean(chosen > rejected). logps/*: averages for repo, repo++,
  simpo, ipo; sums otherwise. RePO family: repo/active_fraction =
  mean(relu argument > 0), margin/mean and margin/p10|p50|p90 (numpy linear
  quantiles) of M (repo, repo++) or h (dpo+repo, dpo+repo++);
  repo++/mean_weight = mean(sigmoid(relu argument scaled as in the loss) *
  active).
"""
import json
import math

import numpy as np
import torch
import torch.nn.functional as F

REF_FREE = ("repo", "repo++", "simpo")


def compute(cfg, inp):
    lt, beta, gamma, ls = cfg["loss_type"], cfg["beta"], cfg["gamma"], cfg["label_smoothing"]
    t = lambda k: torch.tensor(inp[k], dtype=torch.float64)
    pc = t("chosen_logps").requires_grad_(True)
    pr = t("rejected_logps").requires_grad_(True)
    nc, nr = t("chosen_tokens"), t("rejected_tokens")
    rc, rr = t("ref_chosen_logps"), t("ref_rejected_logps")

    arg = None  # relu argument (RePO family)
    if lt in REF_FREE:
        x = pc / nc - pr / nr
    elif lt == "ipo":
        x = (pc / nc - pr / nr) - (rc / nc - rr / nr)
    else:
        x = (pc - rc) - (pr - rr)

    if lt in ("repo", "dpo+repo"):
        arg = gamma - x
        per = F.relu(arg)
    elif lt == "repo++":
        arg = gamma - x
        per = -F.logsigmoid(-beta * F.relu(arg))
        weight = torch.sigmoid(beta * F.relu(arg.detach())) * (arg.detach() > 0)
    elif lt == "dpo+repo++":
        arg = gamma - beta * x
        per = -F.logsigmoid(-F.relu(arg))
        weight = torch.sigmoid(F.relu(arg.detach())) * (arg.detach() > 0)
    elif lt in ("simpo", "dpo"):
        z = beta * (x - gamma) if lt == "simpo" else beta * x
        per = -(1 - ls) * F.logsigmoid(z) - ls * F.logsigmoid(-z)
    elif lt == "ipo":
        per = (x - 1 / (2 * beta)) ** 2
    elif lt == "hinge":
        per = F.relu(1 - beta * x)
    else:
        raise ValueError(lt)
    loss = per.mean()
    loss.backward()

    with torch.no_grad():
        if lt in REF_FREE:
            lw, ll = pc / nc, pr / nr
            cr, rj = beta * lw, beta * ll
        elif lt == "ipo":
            lw, ll = pc / nc, pr / nr
            cr, rj = beta * (lw - rc / nc), beta * (ll - rr / nr)
        else:
            lw, ll = pc, pr
            cr, rj = beta * (pc - rc), beta * (pr - rr)
        m = {
            "rewards/chosen": cr.mean(), "rewards/rejected": rj.mean(),
            "rewards/margins": (cr - rj).mean(), "rewards/accuracies": (cr > rj).double().mean(),
            "logps/chosen": lw.mean(), "logps/rejected": ll.mean(),
        }
        if arg is not None:
            m["repo/active_fraction"] = (arg > 0).double().mean()
            xs = x.detach().numpy()
            m["margin/mean"] = x.mean()
            for q in (10, 50, 90):
                m["margin/p%d" % q] = float(np.quantile(xs, q / 100))
            if lt in ("repo++", "dpo+repo++"):
                m["repo++/mean_weight"] = weight.mean()
    fl = lambda v: [float(a) for a in v.detach().reshape(-1).tolist()]
    return {"loss": float(loss), "per_pair": fl(per), "d_chosen": fl(pc.grad), "d_rejected": fl(pr.grad),
            "metrics": {k: float(v) for k, v in m.items()}}


# The synthetic inputs of the project's golden file, reused so cases are comparable.
SYN = {"chosen_logps": [-12.5, -30.0, -7.25, -44.0], "rejected_logps": [-15.0, -28.5, -9.0, -40.0],
       "ref_chosen_logps": [-13.0, -29.0, -8.0, -45.5], "ref_rejected_logps": [-14.0, -29.5, -8.5, -41.0],
       "chosen_tokens": [5.0, 12.0, 3.0, 20.0], "rejected_tokens": [6.0, 10.0, 4.0, 16.0]}
# M = [0, -0.35, -0.1667, 0.3], h = [1.5, -2, 0.25, -2.5]

# Ties: every pair sits exactly on its threshold (values exact in binary).
# Average log-probs: A_w = -1, A_l = -1.5 -> M = 0.5 exactly; sums: h = (S_w - S_ref,w) - (S_l - S_ref,l) = 1 exactly.
TIE = {"chosen_logps": [-2.0, -4.0, -8.0], "rejected_logps": [-3.0, -6.0, -12.0],
       "ref_chosen_logps": [-3.0, -5.0, -9.0], "ref_rejected_logps": [-3.0, -6.0, -12.0],
       "chosen_tokens": [2.0, 4.0, 8.0], "rejected_tokens": [2.0, 4.0, 8.0]}
# Large margins in both directions: |beta*z| up to ~5e4.
BIG = {"chosen_logps": [-5.0, -900.0, -1.0, -800.0], "rejected_logps": [-900.0, -5.0, -700.0, -2.0],
       "ref_chosen_logps": [-10.0, -10.0, -10.0, -10.0], "ref_rejected_logps": [-10.0, -10.0, -10.0, -10.0],
       "chosen_tokens": [1.0, 2.0, 1.0, 1.0], "rejected_tokens": [1.0, 1.0, 2.0, 1.0]}
# Eight pairs with a spread of margins, for quantiles and mixed activity.
rng = np.random.default_rng(7)
n8c = rng.integers(1, 40, 8).astype(float); n8r = rng.integers(1, 40, 8).astype(float)
MIX = {"chosen_tokens": n8c.tolist(), "rejected_tokens": n8r.tolist()}
MIX["chosen_logps"] = (-n8c * rng.uniform(0.2, 2.0, 8)).round(6).tolist()
MIX["rejected_logps"] = (-n8r * rng.uniform(0.2, 2.0, 8)).round(6).tolist()
MIX["ref_chosen_logps"] = (np.array(MIX["chosen_logps"]) + rng.normal(0, 2, 8)).round(6).tolist()
MIX["ref_rejected_logps"] = (np.array(MIX["rejected_logps"]) + rng.normal(0, 2, 8)).round(6).tolist()


def cfg(lt, beta=1.0, gamma=0.0, ls=0.0):
    return {"loss_type": lt, "beta": beta, "gamma": gamma, "label_smoothing": ls}


CASES = [
    ("repo_syn_beta2.5", cfg("repo", 2.5, 0.5), SYN),
    ("repo_mix_gamma0.4", cfg("repo", 10, 0.4), MIX),
    ("repo_all_filtered", cfg("repo", 2, -1.0), SYN),
    ("repo_tie", cfg("repo", 2, 0.5), TIE),
    ("repo++_syn", cfg("repo++", 2, 0.5), SYN),
    ("repo++_syn_gamma0.1", cfg("repo++", 10, 0.1), SYN),
    ("repo++_mix", cfg("repo++", 2.5, 0.6), MIX),
    ("repo++_all_filtered", cfg("repo++", 2, -1.0), SYN),
    ("repo++_tie", cfg("repo++", 2, 0.5), TIE),
    ("repo++_big", cfg("repo++", 100, 0.5), BIG),
    ("simpo_ls0.1", cfg("simpo", 2.5, 0.3, 0.1), SYN),
    ("simpo_mix_ls0.2", cfg("simpo", 10, 0.5, 0.2), MIX),
    ("simpo_big", cfg("simpo", 100, 0.5), BIG),
    ("simpo_big_ls0.1", cfg("simpo", 100, 0.5, 0.1), BIG),
    ("dpo_mix", cfg("dpo", 0.1), MIX),
    ("dpo_big", cfg("dpo", 10), BIG),
    ("ipo_mix", cfg("ipo", 0.5), MIX),
    ("hinge_mix", cfg("hinge", 0.5), MIX),
    ("hinge_tie", cfg("hinge", 1.0), TIE),
    ("dpo+repo_syn", cfg("dpo+repo", 0.1, 1.0), SYN),
    ("dpo+repo_mix", cfg("dpo+repo", 0.1, 0.5), MIX),
    ("dpo+repo_tie", cfg("dpo+repo", 0.1, 1.0), TIE),
    ("dpo+repo_all_filtered", cfg("dpo+repo", 0.1, -10.0), SYN),
    ("dpo+repo++_syn", cfg("dpo+repo++", 0.5, 0.5), SYN),
    ("dpo+repo++_mix", cfg("dpo+repo++", 0.1, 0.2), MIX),
    ("dpo+repo++_tie", cfg("dpo+repo++", 0.5, 0.5), TIE),
    ("dpo+repo++_big", cfg("dpo+repo++", 50, 1.0), BIG),
]

if __name__ == "__main__":
    torch.set_num_threads(1)
    out = {"generator": "pref/testdata/gen_pref_cases.py, torch %s, numpy %s" % (torch.__version__, np.__version__),
           "cases": []}
    for name, c, inp in CASES:
        exp = compute(c, inp)
        assert all(math.isfinite(v) for v in [exp["loss"]] + exp["per_pair"] + exp["d_chosen"] + exp["d_rejected"]), name
        out["cases"].append({"name": name, "config": c, "inputs": inp, "expected": exp})
    print(json.dumps(out, indent=1))
