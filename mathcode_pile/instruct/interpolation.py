"""Problem interpolation: a new problem written between an easier and a harder seed problem.

MathCoder's D1 data: the teacher sees one GSM8K-like and one MATH-like problem and writes a new problem whose
difficulty lies between them, which widens the range of difficulties the LCE model is trained on. A new problem is
kept only when it is well formed, new (not a normalized copy of a seed or of another new problem) and shares no
n-gram with any benchmark test item.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass

#: The prompt's last words; the model's continuation is the new problem.
NEW_PROBLEM_CUE = "New problem:"
#: Where a model that keeps writing after the problem is cut (a solution, another problem, an LCE marker).
STOP_SEQUENCES = ["\n\nProblem", "\n\nSolution", "\nSolution:", "\nAnswer:", "<|endofblock|>", "<|endofmessage|>"]
_TRAILING_SECTION = re.compile(r"\n\s*(?:solution|answer|explanation)\s*:.*\Z", re.IGNORECASE | re.DOTALL)
MIN_PROBLEM_CHARS = 20


@dataclass(frozen=True)
class SeedProblem:
    """A problem with a gold answer, from one seed source."""

    id: str
    question: str
    answer: str
    source: str
    hard: bool


def interpolation_prompt(easier: str, harder: str) -> str:
    """The problem-writing prompt (a raw completion prompt: the continuation is the new problem)."""
    return (
        "You write new math problems. Problem A is easier and Problem B is harder. Write one new problem whose "
        "difficulty lies between them: it may combine ideas from both, it must be self-contained, and it must have "
        "a single final answer. Write only the problem, not its solution.\n\n"
        f"Problem A:\n{easier.strip()}\n\nProblem B:\n{harder.strip()}\n\n{NEW_PROBLEM_CUE}"
    )


def parse_new_problem(response: str) -> tuple[str | None, str | None]:
    """The new problem in a response, or (None, reason): ``empty_problem`` or ``contains_markers``."""
    text = response.strip()
    for stop in STOP_SEQUENCES:
        text = text.split(stop, 1)[0]
    text = _TRAILING_SECTION.sub("", text).strip()
    if "<|" in text:
        return None, "contains_markers"
    if len(text) < MIN_PROBLEM_CHARS:
        return None, "empty_problem"
    return text, None


def interpolation_pairs(
    easier: Sequence[SeedProblem], harder: Sequence[SeedProblem], count: int, seed: int
) -> list[tuple[SeedProblem, SeedProblem]]:
    """``count`` distinct (easier, harder) pairs drawn with ``seed`` (fewer when fewer pairs exist).

    The draw depends only on the seed and the two lists, so a rerun asks for exactly the same prompts.
    """
    total = len(easier) * len(harder)
    if not total or count <= 0:
        return []
    picks = random.Random(seed).sample(range(total), min(count, total))
    return [(easier[pick // len(harder)], harder[pick % len(harder)]) for pick in picks]
