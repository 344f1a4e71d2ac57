"""The one answer grader of the project: every benchmark score and every LCE evaluation is graded here.

Public API::

    extract_answer(text, dataset=None) -> str | None
    grade(prediction, gold, dataset=None, rel_tol=1e-5, abs_tol=0.0) -> GradeResult(extracted, correct, reason)
    answers_match(extracted, gold, dataset=None, rel_tol=..., abs_tol=...) -> (bool, reason)
    grade_rows(rows, dataset=None, ...) -> list[dict]   # adds ``extracted``, ``correct``, ``grade_reason``

How two answers are compared, first rule that decides wins:

1. **choices**: for a multiple-choice dataset, or a gold answer that is only an option letter (``C``, ``(C)``,
   ``\\text{(C)}``), the prediction must name the same letter as a whole answer (``(b)`` names B; it does not match a
   gold ``5``, nor a gold ``C``);
2. **exact**: the cleaned spellings are equal (LaTeX spacing, ``\\left``, ``$``, ``%``, degree marks, units,
   thousands separators and a ``x =`` prefix removed, see :func:`evaluation.answers.clean_answer`);
3. **numeric**: both sides are numbers (``1,000``, ``4.5e33``, ``4.5\\times 10^{33}``, ``\\frac{3}{4}``) and
   ``math.isclose(pred, gold, rel_tol, abs_tol)`` decides. The default ``rel_tol=1e-5`` is the tolerance of
   ``numpy.isclose``, which the OCW grader of the reference evaluation applies, so ``30`` vs ``30.003`` is wrong.
   ``abs_tol`` defaults to 0 because OCW answers go down to 1e-27: any fixed absolute slack would accept wrong tiny
   values. A number against an expression in a variable (``x + 1``, ``2.2 \\tau``) is wrong without further work;
4. **lists**: both sides hold several values: bracketed tuples compare in order, bare lists (``-2, 3, 5`` or
   ``-2 3 5``) as multisets, each element by these same rules;
5. **math-verify** decides everything else (symbolic expressions, intervals, sets, matrices).

No ``eval``, no state kept between calls. math-verify bounds its own work with ``signal.alarm``, which only works in
the main thread of a process: :func:`grade` refuses to run elsewhere (use ``grade_rows(num_proc=N)``, which grades in
worker processes).
"""

from __future__ import annotations

import math
import threading
from collections import Counter
from collections.abc import Iterable, Mapping
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from typing import Any

from evaluation.answers import (
    AnswerList,
    choice_letter,
    clean_answer,
    find_final_answer,
    find_last_boxed,
    has_free_symbol,
    leading_choice_letter,
    parse_number,
    split_answer_list,
    strip_math_delimiters,
)

DEFAULT_REL_TOL = 1e-5
DEFAULT_ABS_TOL = 0.0
#: Seconds math-verify may spend parsing one answer and comparing one pair.
MATH_VERIFY_TIMEOUT_S = 5

#: Benchmarks whose gold answers are option letters.
MULTIPLE_CHOICE_DATASETS = frozenset({"sat_math", "mmlu_math", "mmlu", "mmlu_stem", "aqua_rat"})
_DATASET_ALIASES = {
    "sat": "sat_math",
    "math_sat": "sat_math",
    "ocw_courses": "ocw",
    "ocwcourses": "ocw",
    "minerva_math": "math",
    "hendrycks_math": "math",
    "aqua": "aqua_rat",
}


class GradingInputError(ValueError):
    """Rows that cannot be graded (missing or empty fields); the message names the source, row and field."""


@dataclass(frozen=True)
class GradeResult:
    """Outcome of grading one prediction.

    ``extracted`` is the final answer found in the prediction (``None`` when there was none), ``correct`` the verdict
    and ``reason`` the rule that decided: ``choice``, ``exact``, ``numeric``, ``list``, ``math_verify`` when correct;
    ``no_answer``, ``choice_mismatch``, ``numeric_mismatch``, ``list_mismatch``, ``mismatch`` when not.
    """

    extracted: str | None
    correct: bool
    reason: str


def canonical_dataset(dataset: str | None) -> str | None:
    """Normalize a benchmark name (``"MathCoder2_OCW_Courses"`` -> ``"ocw"``); ``None`` stays ``None``.

    Unknown names are allowed and graded by the generic rules.
    """
    if dataset is None:
        return None
    name = dataset.strip().lower().replace("-", "_")
    name = name.removeprefix("mathcoder2_").removesuffix("_test")
    return _DATASET_ALIASES.get(name, name) or None


def is_multiple_choice(dataset: str | None) -> bool:
    return canonical_dataset(dataset) in MULTIPLE_CHOICE_DATASETS


def extract_answer(text: str | None, dataset: str | None = None) -> str | None:
    """The final answer written in ``text`` (a bare answer or a whole solution), or ``None`` when there is none.

    For multiple-choice datasets the answer is reduced to its option letter when it names one.
    See :func:`evaluation.answers.find_final_answer` for the rules.
    """
    if text is None:
        return None
    multiple_choice = is_multiple_choice(dataset)
    answer = find_final_answer(text, multiple_choice=multiple_choice)
    if answer is None or not answer.strip():
        return None
    if multiple_choice:
        return choice_letter(answer) or leading_choice_letter(answer) or answer
    return answer


def gold_answer(gold: str | int | float) -> str:
    """The gold answer as text: numbers are formatted, a boxed or ``####`` solution is reduced to its answer."""
    if isinstance(gold, bool) or not isinstance(gold, str | int | float):
        raise TypeError(f"gold answer must be text or a number, got {type(gold).__name__}")
    text = str(gold).strip()
    boxed = find_last_boxed(text) if "\\boxed" in text or "\\fbox" in text else None
    if boxed is not None:
        text = boxed
    elif "####" in text:
        text = text.rsplit("####", 1)[1]
    text = strip_math_delimiters(text)
    if not text:
        raise ValueError("gold answer is empty")
    return text


def _gold_choice_letter(gold: str, multiple_choice: bool) -> str | None:
    """The option letter a gold answer is, if it is one. Outside choice datasets only capital letters count."""
    letter = choice_letter(gold)
    if letter is None:
        return None
    if multiple_choice:
        return letter
    stripped = gold.replace("\\text", "").strip("{}() ")
    return letter if stripped.isupper() and len(stripped) == 1 else None


def _require_main_thread() -> None:
    """Refuse to grade outside a main thread, whatever the answers: math-verify's alarms only work there, and a
    grader that works for numbers but fails for expressions in the same thread would surprise late."""
    if threading.current_thread() is not threading.main_thread():
        raise RuntimeError(
            "math-verify bounds its work with signal.alarm, which only works in the main thread of a process: "
            "grade in the main thread, or use grade_rows(..., num_proc=N) to grade in worker processes"
        )


def _check_tolerances(rel_tol: float, abs_tol: float) -> None:
    for name, value in (("rel_tol", rel_tol), ("abs_tol", abs_tol)):
        if not isinstance(value, int | float) or isinstance(value, bool) or value < 0 or not math.isfinite(value):
            raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")


def answers_match(
    extracted: str,
    gold: str,
    dataset: str | None = None,
    rel_tol: float = DEFAULT_REL_TOL,
    abs_tol: float = DEFAULT_ABS_TOL,
) -> tuple[bool, str]:
    """Compare an extracted answer with a gold answer (plain answers, not solutions); returns (correct, reason)."""
    _require_main_thread()
    _check_tolerances(rel_tol, abs_tol)
    multiple_choice = is_multiple_choice(dataset)
    gold_letter = _gold_choice_letter(gold, multiple_choice)
    if multiple_choice and gold_letter is None:
        raise ValueError(f"gold answer {gold!r} of multiple-choice dataset '{dataset}' is not an option letter")
    if gold_letter is not None:
        correct = choice_letter(extracted) == gold_letter
        return correct, "choice" if correct else "choice_mismatch"
    return _compare(extracted, gold, rel_tol, abs_tol)


def _compare(extracted: str, gold: str, rel_tol: float, abs_tol: float) -> tuple[bool, str]:
    predicted_clean, gold_clean = clean_answer(extracted), clean_answer(gold)
    if predicted_clean == gold_clean:
        return True, "exact"
    predicted_value, gold_value = parse_number(predicted_clean), parse_number(gold_clean)
    if predicted_value is not None and gold_value is not None:
        correct = math.isclose(predicted_value, gold_value, rel_tol=rel_tol, abs_tol=abs_tol)
        return correct, "numeric" if correct else "numeric_mismatch"
    predicted_spaced, gold_spaced = clean_answer(extracted, squash=False), clean_answer(gold, squash=False)
    if (gold_value is not None and has_free_symbol(predicted_spaced)) or (
        predicted_value is not None and has_free_symbol(gold_spaced)
    ):
        return False, "mismatch"  # a number never equals an expression in a variable; spares math-verify's time
    predicted_list, gold_list = split_answer_list(predicted_clean), split_answer_list(gold_clean)
    if predicted_list is not None and gold_list is not None:
        correct = _lists_match(predicted_list, gold_list, rel_tol, abs_tol)
        return correct, "list" if correct else "list_mismatch"
    if _math_verify_equal(gold_spaced, predicted_spaced):
        return True, "math_verify"
    return False, "mismatch"


def _lists_match(predicted: AnswerList, gold: AnswerList, rel_tol: float, abs_tol: float) -> bool:
    """Ordered when both sides are bracketed tuples, else as multisets; elements compare by the full rules."""
    if len(predicted.items) != len(gold.items):
        return False
    if predicted.ordered and gold.ordered:
        return all(_compare(p, g, rel_tol, abs_tol)[0] for p, g in zip(predicted.items, gold.items, strict=True))
    unmatched = list(predicted.items)
    for gold_item in gold.items:
        match_index = next(
            (i for i, item in enumerate(unmatched) if _compare(item, gold_item, rel_tol, abs_tol)[0]),
            None,
        )
        if match_index is None:
            return False
        unmatched.pop(match_index)
    return True


def _math_verify_equal(gold: str, predicted: str) -> bool:
    """math-verify's verdict on two plain answers (wrapped in ``$`` so its LaTeX extractor sees them)."""
    try:
        from math_verify import parse, verify
    except ImportError as exc:  # pragma: no cover - exercised only without the [eval] extra
        raise ImportError("grading needs math-verify: pip install 'mathcode[eval]'") from exc

    def as_latex(answer: str) -> str:
        return answer if "$" in answer else f"${answer}$"

    gold_parsed = parse(as_latex(gold), parsing_timeout=MATH_VERIFY_TIMEOUT_S)
    predicted_parsed = parse(as_latex(predicted), parsing_timeout=MATH_VERIFY_TIMEOUT_S)
    if not gold_parsed or not predicted_parsed:
        return False
    return bool(verify(gold_parsed, predicted_parsed, timeout_seconds=MATH_VERIFY_TIMEOUT_S))


def grade(
    prediction: str | None,
    gold: str | int | float,
    dataset: str | None = None,
    rel_tol: float = DEFAULT_REL_TOL,
    abs_tol: float = DEFAULT_ABS_TOL,
) -> GradeResult:
    """Extract the final answer of ``prediction`` and compare it with ``gold``.

    ``prediction`` may be a bare answer or a whole solution; ``None`` (a generation that produced nothing) grades as
    ``no_answer``. ``gold`` may be a bare answer, a number, or a reference solution with ``\\boxed{}`` / ``####``.
    """
    _require_main_thread()
    _check_tolerances(rel_tol, abs_tol)
    gold_text = gold_answer(gold)
    extracted = extract_answer(prediction, dataset)
    if extracted is None:
        return GradeResult(extracted=None, correct=False, reason="no_answer")
    correct, reason = answers_match(extracted, gold_text, dataset, rel_tol=rel_tol, abs_tol=abs_tol)
    return GradeResult(extracted=extracted, correct=correct, reason=reason)


@dataclass(frozen=True)
class _RowTask:
    prediction: str | None
    gold: str | int | float
    dataset: str | None
    rel_tol: float
    abs_tol: float


def _grade_task(task: _RowTask) -> GradeResult:
    return grade(task.prediction, task.gold, task.dataset, rel_tol=task.rel_tol, abs_tol=task.abs_tol)


def _row_task(
    row: Mapping[str, Any],
    index: int,
    source: str,
    default_dataset: str | None,
    fields: tuple[str, str, str],
    tolerances: tuple[float, float],
) -> _RowTask:
    prediction_field, answer_field, dataset_field = fields
    where = f"{source}: row {index}"
    if not isinstance(row, Mapping):
        raise GradingInputError(f"{where}: expected an object with fields, got {type(row).__name__}")
    if prediction_field not in row:
        raise GradingInputError(f"{where}: field '{prediction_field}' is missing")
    prediction = row[prediction_field]
    if prediction is not None and not isinstance(prediction, str):
        raise GradingInputError(f"{where}: field '{prediction_field}' must be text or null, got {prediction!r}")
    if answer_field not in row or row[answer_field] is None:
        raise GradingInputError(f"{where}: field '{answer_field}' is missing")
    gold = row[answer_field]
    try:
        gold_answer(gold)
    except (TypeError, ValueError) as exc:
        raise GradingInputError(f"{where}: field '{answer_field}': {exc}") from exc
    dataset = row.get(dataset_field) or default_dataset
    if dataset is not None and not isinstance(dataset, str):
        raise GradingInputError(f"{where}: field '{dataset_field}' must be text, got {dataset!r}")
    if is_multiple_choice(dataset) and _gold_choice_letter(gold_answer(gold), True) is None:
        raise GradingInputError(f"{where}: field '{answer_field}' of multiple-choice '{dataset}' is not a letter")
    return _RowTask(prediction, gold, dataset, *tolerances)


def grade_rows(
    rows: Iterable[Mapping[str, Any]],
    dataset: str | None = None,
    *,
    prediction_field: str = "prediction",
    answer_field: str = "answer",
    dataset_field: str = "dataset",
    rel_tol: float = DEFAULT_REL_TOL,
    abs_tol: float = DEFAULT_ABS_TOL,
    num_proc: int = 1,
    source: str = "<rows>",
) -> list[dict[str, Any]]:
    """Grade many rows: each output row is the input row plus ``extracted``, ``correct`` and ``grade_reason``.

    A row's own ``dataset`` field wins over the ``dataset`` argument. Every row is validated before any grading, and a
    bad row raises :class:`GradingInputError` naming ``source``, the row index and the field. ``num_proc > 1`` grades
    in worker processes (each calls math-verify from its own main thread).
    """
    _check_tolerances(rel_tol, abs_tol)
    if num_proc < 1:
        raise ValueError(f"num_proc must be >= 1, got {num_proc}")
    materialized = list(rows)
    fields = (prediction_field, answer_field, dataset_field)
    tasks = [
        _row_task(row, index, source, dataset, fields, (rel_tol, abs_tol)) for index, row in enumerate(materialized)
    ]
    if num_proc == 1 or len(tasks) < 2:
        results = [_grade_task(task) for task in tasks]
    else:
        with ProcessPoolExecutor(max_workers=num_proc, mp_context=get_context("spawn")) as pool:
            results = list(pool.map(_grade_task, tasks, chunksize=max(1, len(tasks) // (num_proc * 4))))
    graded = []
    for row, result in zip(materialized, results, strict=True):
        graded.append({**row, "extracted": result.extracted, "correct": result.correct, "grade_reason": result.reason})
    return graded


def summarize_grades(graded: Iterable[Mapping[str, Any]], dataset_field: str = "dataset") -> dict[str, Any]:
    """Accuracy overall and per dataset, plus how many rows each rule decided (for reports and logs)."""
    totals: Counter[str] = Counter()
    correct: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    for row in graded:
        name = str(row.get(dataset_field) or "all")
        totals[name] += 1
        correct[name] += int(bool(row["correct"]))
        reasons[str(row["grade_reason"])] += 1
    total = sum(totals.values())
    return {
        "rows": total,
        "correct": sum(correct.values()),
        "accuracy": sum(correct.values()) / total if total else 0.0,
        "per_dataset": {
            name: {"rows": totals[name], "correct": correct[name], "accuracy": correct[name] / totals[name]}
            for name in sorted(totals)
        },
        "reasons": dict(sorted(reasons.items())),
    }
