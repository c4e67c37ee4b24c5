#!/usr/bin/python3
"""A small Gemma-style tokenizer for relupo's tests, and its expected output.

No real Gemma tokenizer.json is available to the tests (Google's files are
gated and large), so this writes a faithful small one: the structure of
Gemma-2's and Gemma-3's tokenizer.json with a tiny vocabulary.

  * normalizer Replace " " -> "\u2581" and no pre-tokenizer: no dummy prefix
    (unlike Llama-2's SentencePiece conversion), the whole text between added
    tokens is one BPE word;
  * model BPE with byte_fallback and fuse_unk (characters outside the
    vocabulary become <0xXX> byte tokens), unk_token <unk>;
  * added special tokens with Gemma's names: <pad> 0, <eos> 1, <bos> 2,
    <unk> 3, <mask> 4, <start_of_turn>, <end_of_turn>;
  * post-processor TemplateProcessing prepending <bos>; decoder Replace
    "\u2581" -> " ", ByteFallback, Fuse;
  * tokenizer_config.json with bos_token <bos>, eos_token <eos> and Gemma-2's
    chat template (which raises on a system message), and
    generation_config.json with eos_token_id [1, <end_of_turn>].

Expected values come from code written here, not from relupo: a plain BPE
(merge the adjacent pair of lowest merge rank, leftmost first, until none is
in the merge list; byte fallback for characters outside the vocabulary) and
the chat template rendered by jinja2 the way transformers' apply_chat_template
does (trim_blocks, lstrip_blocks, raise_exception).

Run from the repository root:
    /usr/bin/python3 model/testdata/gen_gemma_tokenizer.py
Writes model/testdata/gemma/tokenizer/{tokenizer.json,tokenizer_config.json,
generation_config.json,expected.json}.
"""
import json
import os

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "gemma", "tokenizer")

SP = "\u2581"
# Gemma-2's chat template, as in google/gemma-2-*-it's tokenizer_config.json.
TEMPLATE = (
    "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}"
    "{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if (message['role'] == 'assistant') %}{% set role = 'model' %}{% else %}{% set role = message['role'] %}{% endif %}"
    "{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{'<start_of_turn>model\n'}}{% endif %}")

SPECIALS = ["<pad>", "<eos>", "<bos>", "<unk>", "<mask>", "<start_of_turn>", "<end_of_turn>"]
CHARS = [SP, "\n"] + [chr(c) for c in range(ord("a"), ord("z") + 1)] + [chr(c) for c in range(ord("A"), ord("Z") + 1)] + list(".,!?'")
MERGES = [(SP, "t"), ("h", "e"), (SP + "t", "he"), ("i", "n"), ("e", "r"), (SP, "a"), ("r", "e"), ("o", "n"),
          ("l", "l"), ("ll", "o"), ("H", "e"), ("He", "llo"), (SP, "w"), ("o", "r"), ("l", "d"), ("or", "ld"),
          ("u", "s"), ("us", "er"), ("m", "o"), ("d", "e"), ("de", "l"), ("mo", "del"), (SP + "w", "orld"),
          ("i", "s"), (SP, "is"), ("a", "t"), (SP + "a", "t")]


def build_vocab():
    vocab = {}
    for t in SPECIALS:
        vocab[t] = len(vocab)
    for b in range(256):
        vocab["<0x%02X>" % b] = len(vocab)
    for c in CHARS:
        vocab.setdefault(c, len(vocab))
    for a, b in MERGES:
        assert a in vocab and b in vocab, (a, b)
        vocab.setdefault(a + b, len(vocab))
    return vocab


VOCAB = build_vocab()
RANK = {m: i for i, m in enumerate(MERGES)}


def bpe_word(word):
    syms = []
    for ch in word:
        if ch in VOCAB:
            syms.append(ch)
        else:
            syms.extend("<0x%02X>" % b for b in ch.encode("utf-8"))
    while True:
        best, at = None, -1
        for i in range(len(syms) - 1):
            r = RANK.get((syms[i], syms[i + 1]))
            if r is not None and (best is None or r < best):
                best, at = r, i
        if best is None:
            return [VOCAB[s] for s in syms]
        syms[at:at + 2] = [syms[at] + syms[at + 1]]


def encode(text, add_bos):
    """Split out added tokens, normalize the rest (" " -> "\u2581"), BPE."""
    ids = [VOCAB["<bos>"]] if add_bos else []
    i, seg = 0, ""
    while i < len(text):
        for sp in SPECIALS:
            if text.startswith(sp, i):
                if seg:
                    ids += bpe_word(seg.replace(" ", SP))
                    seg = ""
                ids.append(VOCAB[sp])
                i += len(sp)
                break
        else:
            seg += text[i]
            i += 1
    if seg:
        ids += bpe_word(seg.replace(" ", SP))
    return ids


def render(messages, add_generation_prompt):
    def raise_exception(msg):
        raise jinja2.exceptions.TemplateError(msg)
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.globals["raise_exception"] = raise_exception
    return env.from_string(TEMPLATE).render(messages=messages, add_generation_prompt=add_generation_prompt,
                                            bos_token="<bos>", eos_token="<eos>")


def main():
    os.makedirs(OUT, exist_ok=True)
    added = [{"id": VOCAB[t], "content": t, "single_word": False, "lstrip": False, "rstrip": False,
              "normalized": False, "special": True} for t in SPECIALS]
    tok = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": {"type": "Replace", "pattern": {"String": " "}, "content": SP},
        "pre_tokenizer": None,
        "post_processor": {"type": "TemplateProcessing",
                           "single": [{"SpecialToken": {"id": "<bos>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
                           "pair": [{"SpecialToken": {"id": "<bos>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                                    {"SpecialToken": {"id": "<bos>", "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
                           "special_tokens": {"<bos>": {"id": "<bos>", "ids": [VOCAB["<bos>"]], "tokens": ["<bos>"]}}},
        "decoder": {"type": "Sequence", "decoders": [{"type": "Replace", "pattern": {"String": SP}, "content": " "},
                                                     {"type": "ByteFallback"}, {"type": "Fuse"}]},
        "model": {"type": "BPE", "dropout": None, "unk_token": "<unk>", "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": True, "byte_fallback": True, "ignore_merges": False,
                  "vocab": VOCAB, "merges": [a + " " + b for a, b in MERGES]},
    }
    with open(os.path.join(OUT, "tokenizer.json"), "w") as f:
        json.dump(tok, f, ensure_ascii=False, indent=1)
    with open(os.path.join(OUT, "tokenizer_config.json"), "w") as f:
        json.dump({"bos_token": "<bos>", "eos_token": "<eos>", "pad_token": "<pad>", "unk_token": "<unk>",
                   "add_bos_token": True, "add_eos_token": False, "chat_template": TEMPLATE,
                   "tokenizer_class": "GemmaTokenizer"}, f, indent=1)
    with open(os.path.join(OUT, "generation_config.json"), "w") as f:
        json.dump({"bos_token_id": 2, "eos_token_id": [1, VOCAB["<end_of_turn>"]], "pad_token_id": 0}, f, indent=1)
    texts = ["Hello world", " Hello  world!", "the user is at the model", "Héllo, wörld ✓", "\n\nHe\n", "zq"]
    conv = [{"role": "user", "content": "Hello world "}, {"role": "assistant", "content": " the model is at"},
            {"role": "user", "content": "Héllo?"}]
    rendered = render(conv, True)
    try:
        render([{"role": "system", "content": "x"}] + conv, False)
        raise AssertionError("the template accepted a system message")
    except jinja2.exceptions.TemplateError as e:
        system_error = str(e)
    exp = {"vocab_size": len(VOCAB), "encode": [{"text": t, "ids": encode(t, True)} for t in texts],
           "conversation": conv, "rendered": rendered, "rendered_ids": encode(rendered, False),
           "system_error": system_error, "end_of_turn": VOCAB["<end_of_turn>"]}
    with open(os.path.join(OUT, "expected.json"), "w") as f:
        json.dump(exp, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print("vocab %d; rendered %r" % (len(VOCAB), rendered))


if __name__ == "__main__":
    main()
