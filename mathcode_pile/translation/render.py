"""Interleave verified computations with the document they came from: the text MathCode-Pile pretrains on.

Each verified computation becomes a short natural-language step (the conditions it uses, its LaTeX expression and
its result) followed by its Python code (and, optionally, the output the code printed). The step is placed right
after the line of the document that states its result (or, failing that, uses its numbers), so the text reads as the
original reasoning with the code that checks it beside each step. Every line of the document is kept, in order.

MathCoder2's ablations ask what the code and what the words contribute, so a step can be rendered three ways
(:data:`RENDER_MODES`): ``paired`` (the step in words, then its code and output: the corpus the paper trains on),
``code_only`` (the code and its output without the words) and ``steps_only`` (the words without the code).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

#: How a verified computation is written into its document (see the module docstring).
RENDER_MODES = ("paired", "code_only", "steps_only")

NUMBER = re.compile(r"(?<![\w.])-?\d+(?:[.,]\d+)*(?![\w])")


def _normalize_number(token: str) -> str:
    token = token.replace(",", "")
    if "." in token:
        token = token.rstrip("0").rstrip(".")
    return token.lstrip("+") or "0"


def numbers_in(text: str) -> set[str]:
    return {_normalize_number(token) for token in NUMBER.findall(text)}


def _inline_conditions(conditions: str) -> str:
    """Conditions as one clause: list markers removed, items joined with semicolons."""
    items = []
    for line in conditions.splitlines():
        item = re.sub(r"^\s*(?:[-*+•]|\d{1,3}[.)])\s*", "", line).strip().rstrip(".;")
        if item:
            items.append(item)
    return "; ".join(items)


def _as_math(text: str) -> str:
    stripped = text.strip().rstrip(".")
    return stripped if "$" in stripped else f"${stripped}$"


def render_step(computation: dict[str, Any], include_output: bool = True, mode: str = "paired") -> str:
    """One computation as text: the step in words, then its code (and what the code printed), or one of the two alone
    (``mode``, one of :data:`RENDER_MODES`); the output belongs to the code and is never written without it."""
    if mode not in RENDER_MODES:
        raise ValueError(f"unknown render mode {mode!r}; expected one of {list(RENDER_MODES)}")
    conditions = _inline_conditions(str(computation.get("conditions") or ""))
    expression = _as_math(str(computation["expression"]))
    result = str(computation["result"]).strip().rstrip(".")
    sentence = f"We compute {expression}, which gives {result}."
    if conditions and conditions.lower() not in ("none", "n/a"):
        sentence = f"Given: {conditions}. We compute {expression}, which gives {result}."
    if mode == "steps_only":
        return sentence
    parts = [] if mode == "code_only" else [sentence]
    parts += ["```python", str(computation["code"]).rstrip(), "```"]
    output = str(computation.get("exec_output") or "").strip()
    if include_output and output:
        parts += ["```output", output, "```"]
    return "\n".join(parts)


def _anchor_line(lines: Sequence[str], computation: dict[str, Any]) -> int | None:
    """Index of the line a computation belongs after: the one sharing most numbers with its result (weight 3: the
    line that states the result) and its expression; the earliest on a tie, None when no line shares any."""
    result_numbers = numbers_in(str(computation.get("result", "")))
    expression_numbers = numbers_in(str(computation.get("expression", "")))
    best, best_score = None, 0
    for index, line in enumerate(lines):
        present = numbers_in(line)
        score = 3 * len(result_numbers & present) + len(expression_numbers & present)
        if score > best_score:
            best, best_score = index, score
    return best


def interleave(
    document: str, computations: Sequence[dict[str, Any]], include_output: bool = True, mode: str = "paired"
) -> str:
    """The document with each computation's rendered step (:func:`render_step` in ``mode``) placed after the line it
    belongs to (unplaced ones at the end), in the order the model listed them within a line."""
    lines = document.splitlines()
    after: dict[int, list[str]] = {}
    for computation in computations:
        anchor = _anchor_line(lines, computation)
        after.setdefault(len(lines) - 1 if anchor is None else anchor, []).append(
            render_step(computation, include_output, mode)
        )
    pieces: list[str] = []
    for index, line in enumerate(lines):
        pieces.append(line)
        steps = after.get(index, [])
        for step in steps:
            pieces += ["", step]
        if steps and index + 1 < len(lines):
            pieces.append("")
    if not lines:
        pieces = "\n\n".join(step for steps in after.values() for step in steps).splitlines()
    return "\n".join(pieces) + "\n"
