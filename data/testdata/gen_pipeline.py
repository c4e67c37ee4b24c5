"""Generates data/testdata/pipeline.json: the token ids that the official
SimPO/RePO training script (princeton-nlp/SimPO and junkangwu/RePO,
scripts/simpo_trainer.py: build_tokenized_answer and tokenize_row; see
../shared/spec/method.md section A.3) produces for a set of preference pairs,
with relupo's rendering decisions (data/tokenization.go):

  * prompt_text = template(prompt messages, add_generation_prompt) where
    add_generation_prompt is False, or True in TRL's convention;
  * response text = template(prompt messages + [response]) minus prompt_text
    (which must be a prefix), with a leading BOS string removed;
  * no empty system message is inserted;
  * plain-text ("standard") pairs use no template.

Rendering is Jinja2 with the environment transformers' apply_chat_template
uses. The tokenization step alone is done by relupo's own tokenizer (through
`go run ./cmd/relupo tokenize`, with add_special_tokens off): the fixtures ship
tokenizer.json only, without the tokenizer.model that the sentencepiece
library would need, and the Hugging Face tokenizers library is not available
here. relupo's tokenizer is checked against Hugging Face's separately (package
tokenizer). Everything after tokenization - the boundary between prompt and
response, the merge check, BOS and EOS - is implemented below as the official
code does it, keeping separate prompt ids for the chosen and the rejected
sequence.

Run from the repository root, with ../shared beside it:

    python3 data/testdata/gen_pipeline.py
"""

import json
import os
import subprocess
from datetime import datetime

import jinja2
from jinja2.ext import loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SHARED = os.path.join(ROOT, "..", "shared")
OUT = os.path.join(ROOT, "data", "testdata", "pipeline.json")

LLAMA = "fixtures/models/tiny-random-llama"
QWEN3 = "fixtures/tokenizers/qwen3"
DPO_EN = "fixtures/data/dpo_en_demo.json"


# --- rendering, as transformers' apply_chat_template ---------------------------------


def raise_exception(message):
    raise jinja2.exceptions.TemplateError(message)


def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def environment():
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = lambda f: datetime.now().strftime(f)
    return env


def token_content(v):
    if isinstance(v, dict):
        return v.get("content")
    return v


class Tok:
    """The special tokens and chat template of a tokenizer folder."""

    def __init__(self, rel):
        self.rel = rel
        self.dir = os.path.join(SHARED, rel)
        with open(os.path.join(self.dir, "tokenizer_config.json"), encoding="utf-8") as f:
            cfg = json.load(f)
        special_map = {}
        p = os.path.join(self.dir, "special_tokens_map.json")
        if os.path.exists(p):
            with open(p, encoding="utf-8") as f:
                special_map = json.load(f)
        self.special = {}
        for name in ("bos_token", "eos_token", "pad_token", "unk_token"):
            v = token_content(cfg.get(name)) or token_content(special_map.get(name))
            if v:
                self.special[name] = v
        self.bos = self.special.get("bos_token")
        self.eos = self.special.get("eos_token")
        self.template = cfg.get("chat_template")


def simpo_mistral_template():
    """chat.SimPOMistralTemplate, read from the Go source."""
    with open(os.path.join(ROOT, "chat", "template.go"), encoding="utf-8") as f:
        src = f.read()
    start = src.index("const SimPOMistralTemplate = ") + len("const SimPOMistralTemplate = ")
    end = src.index("\n", start)
    return json.loads(src[start:end])


def render(env, template, special, messages, add_generation_prompt):
    return env.from_string(template).render(messages=messages, add_generation_prompt=add_generation_prompt, **special)


def texts(env, tok, case):
    """prompt_text, chosen_text, rejected_text of a case."""
    if case["plain_text"]:
        return case["prompt"][0]["content"], case["chosen"]["content"], case["rejected"]["content"]
    template = tok.template if case["template"] == "" else simpo_mistral_template()
    prompt = render(env, template, tok.special, case["prompt"], case["header_in_prompt"])
    out = [prompt]
    for key in ("chosen", "rejected"):
        full = render(env, template, tok.special, case["prompt"] + [case[key]], False)
        assert full.startswith(prompt), (case["name"], key)
        rest = full[len(prompt):]
        if tok.bos and rest.startswith(tok.bos):
            rest = rest[len(tok.bos):]
        out.append(rest)
    return tuple(out)


# --- tokenization (relupo's tokenizer; see the module doc) ------------------------------


def tokenize_all(tok, strings):
    lines = "".join(json.dumps({"text": s}, ensure_ascii=False) + "\n" for s in strings)
    res = subprocess.run(
        ["go", "run", "./cmd/relupo", "tokenize", "--tokenizer", tok.dir, "--add-special-tokens=false"],
        cwd=ROOT, input=lines.encode("utf-8"), capture_output=True, check=True,
    )
    ids = [json.loads(l)["ids"] for l in res.stdout.decode("utf-8").splitlines()]
    assert len(ids) == len(strings)
    return dict(zip(strings, ids))


def token_id(ids_of, tok, token):
    """The id of a special token string: it tokenizes to itself."""
    ids = ids_of[token]
    assert len(ids) == 1, token
    return ids[0]


# --- the official algorithm (simpo_trainer.py) --------------------------------------------


def build_tokenized_answer(encode, prompt, answer):
    full_tokenized = encode(prompt + answer)
    prompt_input_ids = encode(prompt)

    answer_input_ids = full_tokenized[len(prompt_input_ids):]
    full_concat_input_ids = prompt_input_ids + answer_input_ids
    if len(full_tokenized) != len(full_concat_input_ids):
        raise ValueError("Prompt input ids and answer input ids should have the same length.")

    response_token_ids_start_idx = len(prompt_input_ids)
    if prompt_input_ids != full_tokenized[:response_token_ids_start_idx]:
        response_token_ids_start_idx -= 1

    prompt_input_ids = full_tokenized[:response_token_ids_start_idx]
    answer_input_ids = full_tokenized[response_token_ids_start_idx:]
    return dict(prompt_input_ids=prompt_input_ids, input_ids=answer_input_ids)


def tokenize_row(encode, bos_token_id, eos_token_id, prompt, chosen, rejected):
    prompt_tokens = {"prompt_input_ids": encode(prompt)}
    chosen_tokens = build_tokenized_answer(encode, prompt, chosen)
    rejected_tokens = build_tokenized_answer(encode, prompt, rejected)

    chosen_prompt_len_input_ids = len(chosen_tokens["prompt_input_ids"])
    rejected_prompt_len_input_ids = len(rejected_tokens["prompt_input_ids"])
    prompt_len_input_ids = min(chosen_prompt_len_input_ids, rejected_prompt_len_input_ids)
    for k, v in prompt_tokens.items():
        prompt_tokens[k] = v[:prompt_len_input_ids]

    num_diff_tokens = sum(a != b for a, b in zip(chosen_tokens["prompt_input_ids"], rejected_tokens["prompt_input_ids"]))
    num_diff_len = abs(chosen_prompt_len_input_ids - rejected_prompt_len_input_ids)
    if num_diff_tokens > 1 or num_diff_len > 1:
        raise ValueError("Chosen and rejected prompt_input_ids might only differ on the last token due to tokenizer merge ops.")

    # The official code prepends bos_token_id unconditionally; a tokenizer
    # without a BOS token (Qwen) gets none here.
    if bos_token_id is not None:
        for t in (prompt_tokens, chosen_tokens, rejected_tokens):
            if len(t["prompt_input_ids"]) == 0 or bos_token_id != t["prompt_input_ids"][0]:
                t["prompt_input_ids"] = [bos_token_id] + t["prompt_input_ids"]

    for t in (chosen_tokens, rejected_tokens):
        if len(t["input_ids"]) == 0 or eos_token_id != t["input_ids"][-1]:
            t["input_ids"].append(eos_token_id)

    return dict(
        chosen_prompt_ids=chosen_tokens["prompt_input_ids"],
        chosen_ids=chosen_tokens["input_ids"],
        rejected_prompt_ids=rejected_tokens["prompt_input_ids"],
        rejected_ids=rejected_tokens["input_ids"],
    )


# --- the cases -----------------------------------------------------------------------------


def msg(role, content):
    return {"role": role, "content": content}


def sharegpt(record):
    roles = {"human": "user", "gpt": "assistant", "system": "system"}
    prompt = [msg(roles[t["from"]], t["value"]) for t in record["conversations"]]
    return prompt, msg("assistant", record["chosen"]["value"]), msg("assistant", record["rejected"]["value"])


def cases():
    with open(os.path.join(SHARED, DPO_EN), encoding="utf-8") as f:
        demo = json.load(f)
    out = []

    def add(name, tok, prompt, chosen, rejected, template="", header_in_prompt=False, plain_text=False, record=None):
        out.append(dict(name=name, tokenizer=tok, template=template, header_in_prompt=header_in_prompt,
                        plain_text=plain_text, record=record, prompt=prompt, chosen=chosen, rejected=rejected))

    for tok in (LLAMA, QWEN3):
        short = "llama2" if tok == LLAMA else "qwen3"
        for i, what in ((0, "single-turn"), (10, "single-turn"), (4, "multi-turn"), (9, "multi-turn"),
                        (1, "system"), (23, "system")):
            p, c, r = sharegpt(demo[i])
            add(f"{short}/dpo_en_demo/{i}/{what}", tok, p, c, r, record=i)
        add(f"{short}/unicode", tok,
            [msg("system", "Réponds en français. 日本語も可。"), msg("user", "¿Qué tal? 😀 naïve café")],
            msg("assistant", "Très bien ! 🎉 ça va. 中文也行。"), msg("assistant", "  Bof…  \n"))
        add(f"{short}/whitespace", tok, [msg("user", "  padded question \n")],
            msg("assistant", "\n\nanswer with leading newlines"), msg("assistant", "tab\tseparated "))
    p, c, r = sharegpt(demo[4])
    add("llama2/simpo-mistral/multi-turn", LLAMA, p, c, r, template="simpo-mistral", record=4)
    p, c, r = sharegpt(demo[0])
    add("llama2/simpo-mistral/single-turn", LLAMA, p, c, r, template="simpo-mistral", record=0)
    add("llama2/header-in-prompt", LLAMA, p, c, r, header_in_prompt=True, record=0)
    p, c, r = sharegpt(demo[9])
    add("qwen3/header-in-prompt/multi-turn", QWEN3, p, c, r, header_in_prompt=True, record=9)
    p, c, r = sharegpt(demo[1])
    add("qwen3/header-in-prompt/system", QWEN3, p, c, r, header_in_prompt=True, record=1)

    # Plain text (TRL standard): boundary merges happen here.
    for tok in (LLAMA, QWEN3):
        short = "llama2" if tok == LLAMA else "qwen3"
        add(f"{short}/text/no-merge", tok, [msg("user", "Question: what is 2+2?")],
            msg("assistant", " It is 4."), msg("assistant", " Five."), plain_text=True)
        add(f"{short}/text/chosen-merges", tok, [msg("user", "Hello wor")],
            msg("assistant", "ld! How are you?"), msg("assistant", " there."), plain_text=True)
        add(f"{short}/text/both-merge", tok, [msg("user", "The cat sat on the ma")],
            msg("assistant", "t."), msg("assistant", "ttress."), plain_text=True)
        add(f"{short}/text/unicode", tok, [msg("user", "Translate: 猫")],
            msg("assistant", " → cat 🐈"), msg("assistant", " → dog"), plain_text=True)
    return out


def main():
    env = environment()
    toks = {rel: Tok(rel) for rel in (LLAMA, QWEN3)}
    all_cases = cases()
    rendered = [texts(env, toks[c["tokenizer"]], c) for c in all_cases]
    results = []
    for rel, tok in toks.items():
        strings = {s for s in (tok.bos, tok.eos) if s}
        for c, (p, ch, rj) in zip(all_cases, rendered):
            if c["tokenizer"] == rel:
                strings.update([p, p + ch, p + rj])
        ids_of = tokenize_all(tok, sorted(strings))
        bos_id = token_id(ids_of, tok, tok.bos) if tok.bos else None
        eos_id = token_id(ids_of, tok, tok.eos)
        encode = lambda s, ids_of=ids_of: list(ids_of[s])
        for c, (p, ch, rj) in zip(all_cases, rendered):
            if c["tokenizer"] != rel:
                continue
            row = tokenize_row(encode, bos_id, eos_id, p, ch, rj)
            results.append(dict(c, tokenizer="../shared/" + rel, prompt_text=p, chosen_text=ch, rejected_text=rj, **row))
    order = {c["name"]: i for i, c in enumerate(all_cases)}
    results.sort(key=lambda r: order[r["name"]])
    with open(OUT, "w", encoding="utf-8") as f:
        json.dump(results, f, ensure_ascii=False, indent=1)
        f.write("\n")
    merged = sum(r["chosen_prompt_ids"] != r["rejected_prompt_ids"] for r in results)
    print(f"wrote {len(results)} cases ({merged} with differing chosen/rejected prompt ids) to {OUT}")


if __name__ == "__main__":
    main()
