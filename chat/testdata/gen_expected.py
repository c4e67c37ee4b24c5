"""Generates chat/testdata/expected.json: chat templates rendered by Jinja2
with the environment transformers' apply_chat_template uses
(ImmutableSandboxedEnvironment, trim_blocks, lstrip_blocks, loop controls,
raise_exception, strftime_now, and its tojson filter).

Run from the repository root: python3 chat/testdata/gen_expected.py
"""

import json
import os
import re
from datetime import datetime

import jinja2
from jinja2.ext import loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SHARED = os.path.join(ROOT, "..", "shared", "fixtures")
HERE = os.path.join(ROOT, "chat", "testdata")


def raise_exception(message):
    raise jinja2.exceptions.TemplateError(message)


def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def strftime_now(format):
    return datetime.now().strftime(format)


def environment():
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env


def config_template(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)["chat_template"]


def go_constant(name):
    with open(os.path.join(ROOT, "chat", "template.go"), encoding="utf-8") as f:
        src = f.read()
    m = re.search(r"const " + name + r' = (".*")\n', src)
    return json.loads(m.group(1))


def read(name):
    with open(os.path.join(HERE, "templates", name), encoding="utf-8") as f:
        return f.read()


TEMPLATES = {
    "llama2": (config_template(os.path.join(SHARED, "models", "tiny-random-llama", "tokenizer_config.json")),
               {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "pad_token": "<unk>"}),
    "qwen3": (config_template(os.path.join(SHARED, "tokenizers", "qwen3", "tokenizer_config.json")),
              {"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"}),
    "simpo_mistral": (go_constant("SimPOMistralTemplate"), {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"}),
    "llama3": (read("llama3.jinja"), {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>"}),
    "gemma2": (read("gemma2.jinja"), {"bos_token": "<bos>", "eos_token": "<eos>", "pad_token": "<pad>"}),
}

U = {"role": "user", "content": "Hello, who are you?"}
A = {"role": "assistant", "content": "  I am a helpful assistant.\n"}
U2 = {"role": "user", "content": "Tell me a joke."}
S = {"role": "system", "content": " You are terse. "}
UNI = {"role": "user", "content": "Ünïcödé — 日本語 😀 «ok»\n\ttabs"}
THINK = {"role": "assistant", "content": "<think>\nLet me think.\n</think>\n\nThe answer is 4."}

CONVERSATIONS = {
    "single": [U],
    "multi": [U, A, U2],
    "multi_closed": [U, A, U2, A],
    "system": [S, U, A, U2],
    "unicode": [UNI, A],
    "lone_assistant": [A],
    "think": [U, THINK, U2, THINK],
}


def main():
    env = environment()
    cases = []
    for tname, (source, special) in TEMPLATES.items():
        tmpl = env.from_string(source)
        for cname, messages in CONVERSATIONS.items():
            for gen in (False, True):
                case = {"template": tname, "conversation": cname, "messages": messages,
                        "add_generation_prompt": gen, "special": special}
                try:
                    case["output"] = tmpl.render(messages=messages, add_generation_prompt=gen,
                                                 tools=None, documents=None, **special)
                except jinja2.exceptions.TemplateError as e:
                    case["error"] = str(e)
                cases.append(case)
    with open(os.path.join(HERE, "expected.json"), "w", encoding="utf-8") as f:
        json.dump({"generator": "chat/testdata/gen_expected.py", "jinja2": jinja2.__version__, "cases": cases},
                  f, ensure_ascii=False, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
