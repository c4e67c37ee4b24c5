#!/usr/bin/python3
"""Regenerate the reward-model golden files of package score
(score/testdata/reward/): a tiny random LlamaForSequenceClassification
checkpoint and the scores PyTorch gives it.

Usage, from anywhere (paths are relative to this file):

    OMP_WAIT_POLICY=PASSIVE OMP_NUM_THREADS=2 /usr/bin/python3 scripts/goldens/gen_reward_goldens.py

Needs PyTorch and numpy only; no transformers and no downloads. The decoder
trunk is gen_goldens.py's Hugging Face-faithful Llama (imported from beside
this file); the classification head is written here as transformers'
LlamaForSequenceClassification (GenericForSequenceClassification in current
transformers) computes it:

    hidden = model.norm(last decoder layer's output)      # [B, T, D]
    logits = score(hidden)                                # nn.Linear(D, num_labels, bias=False)
    non_pad = (input_ids != pad_token_id)
    last = (arange(T) * non_pad).argmax(-1)               # the rightmost token that is not the pad id
    pooled = logits[arange(B), last]                      # [B, num_labels]

so a pad id inside the text is skipped when it ends the text (the token
before it is read), ignored elsewhere, and a sequence of nothing but pad ids
is read at position 0. (transformers before 4.48 read the token before the
first pad id instead; the current rule is the one matched here.) The batch
is right-padded with the pad id and an attention mask, as a tokenizer pads
it; a pad id inside the text has attention mask 1.

The sequences are a shared prompt followed by several responses (so that
relupo's prompt-sharing batch is checked too) plus a few standalone
sequences. Outputs, about 25 KB:

  score/testdata/reward/config.json         the checkpoint's config (HF names, num_labels 1)
  score/testdata/reward/model.safetensors   float32 weights: model.* and score.weight [1, hidden]
  score/testdata/reward/expected.json       the sequences, the position read in each,
                                            float32 scores, float64 scores, their deviation
"""
import json
import os
import sys
from collections import OrderedDict

import torch
import torch.nn as nn

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import gen_goldens as g  # noqa: E402  (the Llama reference and the file writers)

OUT = os.path.join(g.ROOT, "score", "testdata", "reward")
GENERATOR = "scripts/goldens/gen_reward_goldens.py, torch %s" % torch.__version__

CFG = OrderedDict([
    ("architectures", ["LlamaForSequenceClassification"]), ("model_type", "llama"),
    ("vocab_size", 48), ("hidden_size", 16), ("intermediate_size", 32),
    ("num_hidden_layers", 2), ("num_attention_heads", 4), ("num_key_value_heads", 2),
    ("hidden_act", "silu"), ("max_position_embeddings", 64), ("initializer_range", 0.02),
    ("rms_norm_eps", 1e-5), ("rope_theta", 10000.0), ("rope_scaling", None),
    ("attention_bias", False), ("attention_dropout", 0.0), ("mlp_bias", False),
    ("tie_word_embeddings", False), ("bos_token_id", 1), ("eos_token_id", 2), ("pad_token_id", 0),
    ("id2label", {"0": "LABEL_0"}), ("label2id", {"LABEL_0": 0}),
    ("torch_dtype", "float32"),
])
PAD = CFG["pad_token_id"]
SEED, DATA_SEED = 20250612, 777
WEIGHT_STD, NORM_JITTER = 0.3, 0.1


class LlamaForSequenceClassification(nn.Module):
    """The Llama trunk under HF names (model.*) and score [num_labels, D]."""

    def __init__(self, cfg, num_labels=1):
        super().__init__()
        base = g.Llama(cfg)
        base.lm_head = nn.Identity()  # base(ids, am) now returns the normed hidden states
        self._base = [base]  # not a submodule: its trunk is registered once, as self.model
        self.model = base.model
        self.score = nn.Linear(cfg["hidden_size"], num_labels, bias=False)

    def forward(self, ids, am):
        hidden = self._base[0](ids, am)
        logits = self.score(hidden)  # every position, as transformers computes it
        non_pad = (ids != PAD).to(torch.int32)
        idx = torch.arange(ids.shape[-1], dtype=torch.int32)
        last = (idx * non_pad).argmax(-1)
        return logits[torch.arange(ids.shape[0]), last], last


def make_model():
    m = LlamaForSequenceClassification(CFG)
    gen = torch.Generator().manual_seed(SEED)
    with torch.no_grad():
        for name, p in m.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(1.0 + NORM_JITTER * torch.randn(p.shape, generator=gen))
            else:
                p.copy_(WEIGHT_STD * torch.randn(p.shape, generator=gen))
    return m


def make_sequences():
    gen = torch.Generator().manual_seed(DATA_SEED)
    rnd = lambda n: torch.randint(3, CFG["vocab_size"], (n,), generator=gen).tolist()
    prompt = rnd(5)
    responses = [
        rnd(4),                        # plain
        rnd(3) + [PAD] + rnd(3),       # a pad id inside the text: ignored
        rnd(2) + [PAD],                # the text ends with a pad id: the token before is read
        [PAD, PAD],                    # nothing but pad ids after the prompt: the prompt's last token
        rnd(9),
    ]
    standalone = [
        rnd(1),                        # one token
        [PAD, PAD, PAD],               # nothing but pad ids: position 0
        rnd(20),
    ]
    return prompt, responses, standalone


def pad_right(seqs):
    T = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), T), PAD, dtype=torch.int64)
    am = torch.zeros(len(seqs), T, dtype=torch.int64)
    for i, s in enumerate(seqs):
        ids[i, :len(s)] = torch.tensor(s)
        am[i, :len(s)] = 1
    return ids, am


def main():
    os.makedirs(OUT, exist_ok=True)
    model = make_model()
    prompt, responses, standalone = make_sequences()
    seqs = [prompt + r for r in responses] + standalone
    ids, am = pad_right(seqs)
    with torch.no_grad():
        s32, last = model(ids, am)
        m64 = make_model().double()
        s64, _ = m64(ids, am)
    s32, s64 = s32[:, 0], s64[:, 0]
    rel = ((s32.double() - s64) / s64.abs().clamp(min=1e-3)).abs().max().item()

    with open(os.path.join(OUT, "config.json"), "w") as f:
        json.dump(CFG, f, indent=2)
        f.write("\n")
    sd = OrderedDict((n, p.detach()) for n, p in model.named_parameters())
    assert "score.weight" in sd and not any(n.startswith("lm_head") for n in sd)
    g.save_safetensors(os.path.join(OUT, "model.safetensors"), sd, {"format": "pt"})
    back = g.load_safetensors(os.path.join(OUT, "model.safetensors"))
    assert all(torch.equal(back[k], v) for k, v in sd.items())

    g.write_json(os.path.join(OUT, "expected.json"), OrderedDict([
        ("generator", GENERATOR),
        ("init", {"seed": SEED, "std": WEIGHT_STD, "norm_jitter": NORM_JITTER, "data_seed": DATA_SEED}),
        ("layout", "sequences 0..%d are prompt + responses[i]; the rest are standalone; "
                   "scores are LlamaForSequenceClassification's pooled logits (num_labels 1) "
                   "of a right-padded batch" % (len(responses) - 1)),
        ("pad_token_id", PAD),
        ("prompt", prompt), ("responses", responses), ("standalone", standalone),
        ("sequences", seqs),
        ("read_position", [int(x) for x in last.tolist()]),
        ("scores", g.floats(s32)),
        ("f64_scores", g.floats(s64)),
        ("f32_vs_f64_max_rel", rel),
    ]))
    print("reward: %d sequences, f32 vs f64 max rel %.3g" % (len(seqs), rel))
    print("scores", [round(x, 5) for x in s32.tolist()], "read at", last.tolist())


if __name__ == "__main__":
    main()
