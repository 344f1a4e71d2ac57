"""Solve many problems with the LCE loop, recording each in a ledger the moment it is done (shared by evaluation and
instruction-data builds), and read the answer a solution gives."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from evaluation.lce.engine import LCEInferenceEngine, LCESolution
from mathcode_pile.lce.syntax import NO_ANSWER_FINISH_REASONS
from mathcode_pile.ledger import Ledger

logger = logging.getLogger(__name__)


def prediction_text(solution: LCESolution) -> str | None:
    """What the grader reads: the last text block when it comes after the last execution, else that execution output.

    MathCoder states the answer in a final text block; a solution that ends on a code block leaves its answer in the
    execution output. A failed solution has none, nor has one that left a code fence open or asked for more code calls
    than allowed (:data:`~mathcode_pile.lce.syntax.NO_ANSWER_FINISH_REASONS`): it is graded as ``no_answer``.
    """
    if solution.finish_reason in NO_ANSWER_FINISH_REASONS:
        return None
    for block in reversed(solution.blocks):
        if block.kind in ("text", "execution") and block.content.strip():
            return block.content
    return None


async def solve_into_ledger(
    engine: LCEInferenceEngine, items: Sequence[tuple[str, str, dict[str, Any]]], ledger: Ledger
) -> dict[str, dict[str, Any]]:
    """Solve every ``(key, question, facts)`` not yet in ``ledger``; returns the row of every item by key.

    A row is ``facts`` plus the solution (blocks, finish reason, counters) and its ``prediction``. A problem whose
    solving failed for good (``finish_reason == "error"``: the server or the sandbox gave up) is returned for this run
    but marked for retry in the ledger, so the next run solves it again.
    """
    results = {key: ledger[key] for key, _, _ in items if key in ledger}
    todo = [item for item in items if item[0] not in results]
    if results:
        logger.info("%s: %d problem(s) already solved, %d to go", ledger.path.name, len(results), len(todo))
    semaphore = asyncio.Semaphore(engine.config.max_concurrent_problems)

    async def solve_one(key: str, question: str, facts: dict[str, Any]) -> None:
        async with semaphore:
            solution = await engine.solve(question)
        row = {**facts, "prediction": prediction_text(solution), **solution.to_dict()}
        results[key] = ledger.add(key, {**row, "retry": solution.finish_reason == "error"})

    await asyncio.gather(*(solve_one(*item) for item in todo))
    return results
