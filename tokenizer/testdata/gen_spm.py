#!/usr/bin/python3
"""Generate llama2_spm.json: Llama-2 token ids computed by SentencePiece.

Run from the repository root with Debian's python3-sentencepiece (0.1.97)
and python3-protobuf:

    /usr/bin/python3 tokenizer/testdata/gen_spm.py \
        ../shared/fixtures/models/tiny-random-llama/tokenizer.json \
        > tokenizer/testdata/llama2_spm.json

What is reconstructed, and why
------------------------------
The Llama-2 fixture ships only the Hugging Face tokenizer.json, not the
SentencePiece tokenizer.model it was converted from. This script rebuilds an
equivalent SentencePiece BPE model from tokenizer.json and encodes test
strings with SentencePiece's own C++ encoder. The test that reads the output
(TestLlama2SentencePiece) therefore checks our BPE merging, normalization
(the "▁" dummy prefix and space escaping) and byte fallback against
SentencePiece's implementation on the same vocabulary and merge order. It does
not check the vocabulary itself, which both sides take from tokenizer.json.

The model proto is built as follows:

- pieces: the vocabulary in id order. Types: UNKNOWN for <unk>, CONTROL for
  <s> and </s>, BYTE for <0x00>..<0xFF>, NORMAL for everything else. The one
  empty piece of the fixture (SentencePiece refuses empty pieces) becomes an
  UNUSED placeholder; no text can produce either.
- scores: SentencePiece's BPE repeatedly merges the adjacent pair whose
  concatenation is a piece with the highest score (leftmost on ties).
  transformers' LlamaConverter made tokenizer.json's merges from the piece
  scores: for each piece in order of decreasing score, every split of it into
  two pieces of the vocabulary, so the merges that create one piece are
  consecutive. Giving each piece the score -(rank of the first merge that
  creates it) therefore reproduces the merge order. Pieces no merge creates
  (single characters, bytes, control tokens) never take part as merge
  results; they get scores below every merge.
- trainer_spec: model_type BPE, byte_fallback, unk/bos/eos ids 0/1/2 and no
  pad, as in Llama-2's tokenizer.model.
- normalizer_spec: "identity" (no Unicode normalization) with
  add_dummy_prefix=True, remove_extra_whitespaces=False and
  escape_whitespaces=True: Llama-2's settings, which tokenizer.json expresses as
  the Prepend("▁") and Replace(" ", "▁") normalizers.

Strings are encoded without BOS (out_type=int), matching
Tokenizer.Encode(text, false). They contain no special-token text such as
"<s>": SentencePiece treats it as plain characters, while Hugging Face matches
added tokens before the model runs, a difference of the two libraries rather
than of the BPE algorithm. As a sanity check the script asserts ids that
transformers' LlamaTokenizerFast is known to produce ("Hello world" ->
[15043, 3186]).
"""

import json
import sys

import sentencepiece as spm
from sentencepiece import sentencepiece_model_pb2 as pb

# The test strings: Unicode, emoji, code, whitespace runs and newlines.
CASES = [
    "",
    " ",
    "  ",
    "   ",
    "\t",
    "\n",
    "\n\n\n",
    "\r\n",
    "Hello world",
    " Hello world",
    "Hello  world",
    "Hello world ",
    "Hello\nworld",
    "Hello\n\nworld\n",
    "    leading four spaces",
    "trailing spaces     ",
    "tabs\tand\t\tmore\ttabs",
    "The quick brown fox jumps over the lazy dog, doesn't it? 12345 times.",
    "I'm here, you're there; they'll've gone. We've it's",
    "3.14159 + 2.71828 = 5.85987; 1,000,000 and 2024-01-31T12:00:00Z",
    "def f(x):\n    return x ** 2  # square\n\nprint(f(3))\n",
    "func main() {\n\tfmt.Println(\"hi\")\n}\n",
    "if (a && b || !c) { x[i] = y->z; } // C",
    "<html><body class=\"x\">&amp;</body></html>",
    "SELECT * FROM t WHERE id = 'abc' AND n >= 10;",
    "Grüße aus Köln, naïve café, São Paulo, Ærøskøbing",
    "e\u0301 vs \u00e9: combining accent and precomposed",
    "Привет, мир! Как дела?",
    "Γειά σου Κόσμε",
    "你好，世界！这是一个测试。",
    "日本語のテキストとカタカナ、ひらがな",
    "한국어 텍스트입니다",
    "مرحبا بالعالم",
    "שלום עולם",
    "हिन्दी पाठ",
    "ไทย ภาษา",
    "Emoji: 😀 😂 🤖 🚀 ❤️ 👍🏽",
    "Family: 👨\u200d👩\u200d👧\u200d👦 and flag 🇯🇵",
    "Math: ∀x ∈ ℝ, ∃y: x² + y² ≤ 1 → ∞ ≠ π",
    "Symbols ™ © ® € £ ¥ § ¶ • … — –",
    "a\u00a0b\u2003c\u3000d",
    "zero\u200bwidth and \ufeffBOM",
    "literal ▁ lower one eighth block ▁▁",
    "control \x01\x02\x7f chars",
    "ab" * 40,
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "supercalifragilisticexpialidocious antidisestablishmentarianism",
    "   \n \t  \n  mixed   whitespace \n\n  ",
    " " * 17,
    " " * 33,
    "a" + " " * 20 + "b" + " " * 7 + "c",
    "indented\n" + " " * 8 + "block\n" + " " * 12 + "deeper\n",
    "ỹ ǅ ǈ ﬁ ﬀ Ⅻ ① ｆｕｌｌｗｉｄｔｈ",
    "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝕕𝕠𝕦𝕓𝕝𝕖 𐍈 𓀀",
]


def build_model(tokenizer_json):
    with open(tokenizer_json, encoding="utf-8") as f:
        tj = json.load(f)
    m = tj["model"]
    assert m["type"] == "BPE" and m["byte_fallback"], "not a SentencePiece-style BPE"
    vocab = m["vocab"]
    pieces = sorted(vocab, key=vocab.get)
    assert [vocab[p] for p in pieces] == list(range(len(pieces))), "vocabulary ids are not 0..n-1"

    merges = [tuple(x) if isinstance(x, list) else tuple(x.split(" ", 1)) for x in m["merges"]]
    ranks = {}  # piece -> [first, last] rank of the merges that create it
    for rank, (a, b) in enumerate(merges):
        ranks.setdefault(a + b, [rank, rank])[1] = rank

    # Pieces whose merge intervals overlap share one score: the first rank
    # of the union. In Llama-2 these are exactly the whitespace runs
    # ("▁▁" .. 16 × "▁"), which share the score -1e9 in its tokenizer.model;
    # the converter lists their merges last, interleaved in piece-id order.
    score = {}
    groups = []  # lists of pieces with overlapping merge intervals, in rank order
    hi = -1
    for piece, (first, last) in sorted(ranks.items(), key=lambda kv: kv[1]):
        if first > hi:
            groups.append([])
        groups[-1].append(piece)
        hi = max(hi, last)
    for group in groups:
        if len(group) > 1:
            assert all(set(p) == {"\u2581"} for p in group), f"interleaved merges outside whitespace runs: {group}"
        for p in group:
            score[p] = -float(ranks[group[0]][0])

    special = {"<unk>": pb.ModelProto.SentencePiece.UNKNOWN,
               "<s>": pb.ModelProto.SentencePiece.CONTROL,
               "</s>": pb.ModelProto.SentencePiece.CONTROL}
    proto = pb.ModelProto()
    floor = -float(len(merges))
    for i, p in enumerate(pieces):
        sp = proto.pieces.add()
        sp.piece = p
        if p == "":
            # The fixture's vocabulary holds one empty piece, which no merge
            # creates and no text produces; SentencePiece refuses empty
            # pieces, so it is replaced by an unused placeholder.
            sp.piece = f"<empty piece {i}>"
            sp.type = pb.ModelProto.SentencePiece.UNUSED
        elif p in special:
            sp.type = special[p]
            sp.score = 0.0
        elif len(p) == 6 and p.startswith("<0x") and p.endswith(">"):
            sp.type = pb.ModelProto.SentencePiece.BYTE
            sp.score = 0.0
        else:
            sp.type = pb.ModelProto.SentencePiece.NORMAL
            sp.score = score[p] if p in score else floor - i

    ts = proto.trainer_spec
    ts.model_type = pb.TrainerSpec.BPE
    ts.vocab_size = len(pieces)
    ts.byte_fallback = True
    ts.unk_id, ts.bos_id, ts.eos_id, ts.pad_id = 0, 1, 2, -1

    ns = proto.normalizer_spec
    ns.name = "identity"
    ns.add_dummy_prefix = True
    ns.remove_extra_whitespaces = False
    ns.escape_whitespaces = True
    return proto


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else "../shared/fixtures/models/tiny-random-llama/tokenizer.json"
    sp = spm.SentencePieceProcessor(model_proto=build_model(path).SerializeToString())

    # Ids transformers' LlamaTokenizerFast gives (add_special_tokens=False).
    known = {"Hello world": [15043, 3186], "Hello": [15043], "\n": [29871, 13]}
    for text, ids in known.items():
        got = sp.encode(text, out_type=int)
        assert got == ids, f"{text!r}: sentencepiece gives {got}, transformers {ids}"

    cases = [json.dumps({"text": t, "ids": sp.encode(t, out_type=int)}, ensure_ascii=False) for t in CASES]
    gen = json.dumps("tokenizer/testdata/gen_spm.py with sentencepiece " + spm.__version__)
    print("{")
    print(f' "generator": {gen},')
    print(' "tokenizer": "tiny-random-llama/tokenizer.json (Llama-2)",')
    print(' "cases": [')
    print(",\n".join("  " + c for c in cases))
    print(" ]")
    print("}")


if __name__ == "__main__":
    main()
