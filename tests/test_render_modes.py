"""The three render modes of MathCoder2's ablation, character for character on one fixture document: the reasoning
step paired with its code (the corpus), the code without the step, and the step without the code."""

from __future__ import annotations

import pytest

from mathcode_pile.translation.render import RENDER_MODES, interleave

DOCUMENT = "A shop sells 12 pens for $3 each.\nSo 12 pens cost $36 in total.\nHalf of them, 6 pens, are blue."
COMPUTATIONS = [
    {
        "conditions": "- 12 pens\n- $3 each",
        "expression": "12 \\times 3",
        "result": "36",
        "code": "print(12 * 3)\n",
        "exec_output": "36\n",
        "verified": True,
    },
    {
        "conditions": "None",
        "expression": "$\\frac{12}{2}$",
        "result": "6.",
        "code": "blue = 12 / 2\nprint(int(blue))",
        "exec_output": "6",
        "verified": True,
    },
]
FIRST_STEP = "Given: 12 pens; $3 each. We compute $12 \\times 3$, which gives 36."
SECOND_STEP = "We compute $\\frac{12}{2}$, which gives 6."
FIRST_CODE = "```python\nprint(12 * 3)\n```\n```output\n36\n```"
SECOND_CODE = "```python\nblue = 12 / 2\nprint(int(blue))\n```\n```output\n6\n```"
LINES = DOCUMENT.splitlines()


def expected(first: str, second: str) -> str:
    """The document with each rendered computation after the line that states its result, blank lines around it."""
    return f"{LINES[0]}\n{LINES[1]}\n\n{first}\n\n{LINES[2]}\n\n{second}\n"


def test_paired_writes_the_step_in_words_then_its_code_and_output() -> None:
    rendered = interleave(DOCUMENT, COMPUTATIONS, mode="paired")
    assert rendered == expected(f"{FIRST_STEP}\n{FIRST_CODE}", f"{SECOND_STEP}\n{SECOND_CODE}")
    assert interleave(DOCUMENT, COMPUTATIONS) == rendered  # paired is the default: the corpus as built before


def test_code_only_writes_the_snippets_without_the_reasoning_steps() -> None:
    rendered = interleave(DOCUMENT, COMPUTATIONS, mode="code_only")
    assert rendered == expected(FIRST_CODE, SECOND_CODE)
    assert "We compute" not in rendered and "Given" not in rendered


def test_steps_only_writes_the_reasoning_steps_without_code() -> None:
    rendered = interleave(DOCUMENT, COMPUTATIONS, mode="steps_only")
    assert rendered == expected(FIRST_STEP, SECOND_STEP)
    assert "```" not in rendered
    # the output belongs to the code: without code it is not written even when outputs are asked for
    assert interleave(DOCUMENT, COMPUTATIONS, include_output=True, mode="steps_only") == rendered


def test_an_unknown_mode_is_refused() -> None:
    assert RENDER_MODES == ("paired", "code_only", "steps_only")
    with pytest.raises(ValueError, match="unknown render mode 'prose'"):
        interleave(DOCUMENT, COMPUTATIONS, mode="prose")
