#!/usr/bin/python3
"""Regenerate the ArmoRM golden files of package score (score/testdata/armorm/):
a tiny random LlamaForRewardModelWithGating checkpoint and the scores PyTorch
gives it.

Usage, from anywhere (paths are relative to this file):

    OMP_WAIT_POLICY=PASSIVE OMP_NUM_THREADS=2 /usr/bin/python3 scripts/goldens/gen_armorm_goldens.py

Needs PyTorch only. The trunk is gen_goldens.py's Hugging Face-faithful Llama;
the heads are written here as ArmoRM's modeling code (RLHFlow/ArmoRM-Llama3-8B-v0.1,
modeling_custom.py) computes them, for a batch of one sequence (how the SimPO
on-policy annotation script calls it):

    hidden = model.norm(last layer's output)                       # [1, T, D]
    pos = (first index of pad_token_id) - 1, modulo T             # T - 1 without a pad id
    rewards = regression_layer(hidden[pos])                        # [K], no bias
    gate_pos = start of the last occurrence of the token pattern   # ArmoRM: the Llama-3 ids of
                                                                   # <|eot_id|><|start_header_id|>assistant<|end_header_id|>\\n\\n
    x = hidden[gate_pos]; for each hidden layer: x = relu(W x + b); x = W_last x + b_last
    gate = softmax(x / gating_temperature) * logit_scale
    score = sum(gate * (rewards @ reward_transform_matrix))

The vocabulary here is 48 tokens, so the pattern is [5, 6, 7] instead of
ArmoRM's Llama-3 ids (expected.json names it; the test sets it). Outputs, about
20 KB: config.json, model.safetensors (float32: model.*, regression_layer.weight,
reward_transform_matrix, gating.*), expected.json.
"""
import json
import os
import sys
from collections import OrderedDict

import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import gen_goldens as g  # noqa: E402
import gen_reward_goldens as rg  # noqa: E402

OUT = os.path.join(g.ROOT, "score", "testdata", "armorm")
GENERATOR = "scripts/goldens/gen_armorm_goldens.py, torch %s" % torch.__version__

# gen_reward_goldens.py's tiny Llama, with ArmoRM's architecture and heads.
CFG = OrderedDict((k, v) for k, v in rg.CFG.items() if k not in ("id2label", "label2id", "torch_dtype"))
CFG["architectures"] = ["LlamaForRewardModelWithGating"]
CFG.update([("num_objectives", 5), ("gating_temperature", 7.0), ("gating_hidden_dim", 8), ("gating_n_hidden", 2),
            ("torch_dtype", "float32")])
PAD = CFG["pad_token_id"]
PATTERN = [5, 6, 7]
SEED, DATA_SEED = 20261205, 99


class Gating(nn.Module):
    def __init__(self, d, k, hidden, n_hidden, temperature):
        super().__init__()
        self.temperature = temperature
        self.logit_scale = nn.Parameter(torch.ones(1))
        dims = [d] + [hidden] * n_hidden + [k]
        self.layers = nn.ModuleList([nn.Linear(a, b) for a, b in zip(dims, dims[1:])])

    def forward(self, x):
        for i, layer in enumerate(self.layers):
            x = F.relu(layer(x)) if i < len(self.layers) - 1 else layer(x)
        return F.softmax(x / self.temperature, dim=1) * self.logit_scale[0]


def gate_position(ids):
    for j in range(len(ids) - len(PATTERN), -1, -1):
        if ids[j:j + len(PATTERN)] == PATTERN:
            return j
    raise ValueError("pattern not found")


class ArmoRM(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        base = g.Llama(cfg)
        base.lm_head = nn.Identity()
        self._base = [base]
        self.model = base.model
        K = cfg["num_objectives"]
        self.regression_layer = nn.Linear(cfg["hidden_size"], K, bias=False)
        self.reward_transform_matrix = nn.Parameter(torch.eye(K))
        self.gating = Gating(cfg["hidden_size"], K, cfg["gating_hidden_dim"], cfg["gating_n_hidden"],
                             cfg["gating_temperature"])

    def forward(self, seq):
        ids = torch.tensor([seq])
        hidden = self._base[0](ids, torch.ones_like(ids))
        pos = (torch.eq(ids, PAD).int().argmax(-1) - 1) % ids.shape[-1]
        h = hidden[torch.arange(1), pos]
        rewards = self.regression_layer(h)
        gp = [gate_position(seq)]
        gate = self.gating(hidden[torch.arange(1), gp, :])
        return torch.sum(gate * (rewards @ self.reward_transform_matrix), dim=1)[0], int(pos[0]), gp[0]


def make_model():
    m = ArmoRM(CFG)
    gen = torch.Generator().manual_seed(SEED)
    with torch.no_grad():
        for name, p in m.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=gen))
            elif name == "gating.logit_scale":
                p.fill_(1.7)
            elif name == "reward_transform_matrix":
                p.copy_(torch.eye(p.shape[0]) + 0.2 * torch.randn(p.shape, generator=gen))
            else:
                p.copy_(0.4 * torch.randn(p.shape, generator=gen))
    return m


def make_sequences():
    gen = torch.Generator().manual_seed(DATA_SEED)
    rnd = lambda n: torch.randint(8, CFG["vocab_size"], (n,), generator=gen).tolist()
    prompt = [1] + rnd(4) + PATTERN
    responses = [rnd(4), rnd(2) + [PAD] + rnd(3), rnd(6) + [2], rnd(1)]
    standalone = [
        [1] + rnd(2) + PATTERN + rnd(3) + PATTERN + rnd(2),  # the last occurrence gates
        [PAD] + rnd(2) + PATTERN + rnd(2),                   # a pad id first: the last token is read
        rnd(3) + PATTERN,                                    # the pattern at the very end
    ]
    return prompt, responses, standalone


def main():
    os.makedirs(OUT, exist_ok=True)
    model = make_model()
    prompt, responses, standalone = make_sequences()
    seqs = [prompt + r for r in responses] + standalone
    scores, pos, gates = [], [], []
    with torch.no_grad():
        for s in seqs:
            v, p, gp = model(s)
            scores.append(float(v))
            pos.append(p)
            gates.append(gp)
        m64 = make_model().double()
        s64 = [float(m64(s)[0]) for s in seqs]
    rel = max(abs(a - b) / max(abs(b), 1e-3) for a, b in zip(scores, s64))
    with open(os.path.join(OUT, "config.json"), "w") as f:
        json.dump(CFG, f, indent=2)
        f.write("\n")
    sd = OrderedDict((n, p.detach()) for n, p in model.named_parameters())
    g.save_safetensors(os.path.join(OUT, "model.safetensors"), sd, {"format": "pt"})
    g.write_json(os.path.join(OUT, "expected.json"), OrderedDict([
        ("generator", GENERATOR),
        ("layout", "sequences 0..%d are prompt + responses[i]; the rest are standalone; each scored alone"
                   % (len(responses) - 1)),
        ("pattern", PATTERN), ("pad_token_id", PAD),
        ("prompt", prompt), ("responses", responses),
        ("sequences", seqs),
        ("read_position", pos), ("gate_position", gates),
        ("scores", scores), ("f64_scores", s64), ("f32_vs_f64_max_rel", rel),
    ]))
    print("armorm: %d sequences, f32 vs f64 max rel %.3g" % (len(seqs), rel))
    print("scores", [round(x, 5) for x in scores], "read at", pos, "gated at", gates)


if __name__ == "__main__":
    main()
