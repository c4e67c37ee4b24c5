#!/usr/bin/python3
"""Expected Markdown counts of Arena-Hard answers for generate.CountMarkdown.

The counting follows arena-hard-auto's style-control metadata
(utils/add_markdown_info.py): the text inside each ```...``` pair is deleted
with str.replace (the fences stay), then ATX headers h1-h6, ordered and
unordered list items and **/__ bold spans are counted with Python's re on
str patterns (Unicode \\s and \\d). Written here from that description.

Run from the repository root:
    /usr/bin/python3 generate/testdata/gen_markdown_counts.py
It writes generate/testdata/markdown_counts.json; tests read only that file.
"""
import json, os, re

HERE = os.path.dirname(os.path.abspath(__file__))

ANSWERS = [
    "plain text, nothing to count",
    "# Title\n## Part\n### Sub\n#### a\n##### b\n###### c\n####### seven\n#nospace",
    "1. one\n2. two\n  10. nested\n- a\n* b\n+ c\n-no space\n3.no space",
    "**bold** and __also__ and **not\nbold** and ****",
    "```python\n# comment, not a header\n- not a list\n```\n# Real header\n- real item",
    "```\nx\n```\nx marks the spot\n# x",  # the block's text is deleted everywhere
    "#\u00a0nbsp header\n\u0661. Arabic-Indic digit\n\u3000- ideographic space\n#\u2003em space",
    "- item\n\n  \n* after blank lines",
    "unclosed ```fence\n# header after it\n**b**",
    "```a``` text ```b```\n## h2",
    "\n\n   \n- spans blank lines",
    "#\x0bvertical tab header\n-\x1cfile separator item",
]


def counts(text):
    for block in re.compile("```([^`]*)```").findall(text):
        text = text.replace(block, "")
    h = {f"h{i}": len(re.findall(r"^#{%d}\s" % i, text, re.MULTILINE)) for i in range(1, 7)}
    return {
        "header_count": h,
        "list_count": {
            "ordered": len(re.findall(r"^\s*\d+\.\s", text, re.MULTILINE)),
            "unordered": len(re.findall(r"^\s*[-*+]\s", text, re.MULTILINE)),
        },
        "bold_count": {
            "**": len(re.findall(r"\*\*[^*\n]+\*\*", text)),
            "__": len(re.findall(r"__[^_\n]+__", text)),
        },
    }


with open(os.path.join(HERE, "markdown_counts.json"), "w") as f:
    json.dump([{"answer": a, "counts": counts(a)} for a in ANSWERS], f, indent=1, ensure_ascii=False)
