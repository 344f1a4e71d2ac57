"""Names in cards and plots are data: escape them where they are rendered.

Source names, dataset names and benchmark names come from recipes and file names, so they may hold anything. In a
markdown table a ``|`` starts a new cell and a line break ends the table; the Hub renders ``$...$`` as LaTeX and
passes HTML through; matplotlib reads ``$...$`` in a label as mathtext (an unbalanced expression raises when the
figure is drawn, after every stage has run) and leaves out of a legend any label that starts with ``_``. The front
matter is YAML written by ``huggingface_hub``, which quotes what needs quoting, so names are escaped only here.
"""

from __future__ import annotations

import re

_MARKDOWN_ESCAPES = {
    "\\": "\\\\",
    "|": "\\|",
    "$": "\\$",
    "`": "\\`",
    "*": "\\*",
    "[": "\\[",
    "]": "\\]",
    "&": "&amp;",
    "<": "&lt;",
    ">": "&gt;",
}
_MARKDOWN_SPECIAL = re.compile("|".join(re.escape(char) for char in _MARKDOWN_ESCAPES))
_LINE_BREAKS = re.compile(r"[\r\n\t\v\f]+")


def markdown_text(value: object) -> str:
    """``value`` as literal text on one line of markdown: safe in a table cell, a heading or a sentence."""
    text = _LINE_BREAKS.sub(" ", str(value))
    text = _MARKDOWN_SPECIAL.sub(lambda match: _MARKDOWN_ESCAPES[match.group(0)], text)
    # a leading '#', '-', '+', '>' or '=' could start a heading, list, quote or rule when the text opens a line
    return f"\\{text}" if text[:1] in ("#", "-", "+", "=") else text


def plot_label(value: object) -> str:
    """``value`` as a literal matplotlib label: no mathtext, and shown in legends even when it starts with ``_``."""
    text = str(value).replace("$", r"\$")
    return f" {text}" if text.startswith("_") else text
