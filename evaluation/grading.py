"""The one answer grader of the project: every benchmark score and every LCE evaluation is graded here.

Public API::

    extract_answer(text, dataset=None) -> str | None
    grade(prediction, gold, dataset=None, rel_tol=1e-5, abs_tol=0.0) -> GradeResult(extracted, correct, reason)
    answers_match(extracted, gold, dataset=None, rel_tol=..., abs_tol=...) -> (bool, reason)
    grade_rows(rows, dataset=None, ...) -> list[dict]   # adds ``extracted``, ``correct``, ``grade_reason``

The final answer is found by :func:`evaluation.answers.locate_final_answer` (boxes, "final answer", "answer is",
``####``, math spans, numbers). How two answers are compared, first rule that decides wins:

1. **choices**: for a multiple-choice dataset, or a gold answer that is only an option letter (``C``, ``(C)``,
   ``\\text{(C)}``), the prediction must name the same letter as a whole answer (``(b)`` names B; it does not match a
   gold ``5``, nor a gold ``C``);
2. **readings**: each side is compared in every way it can be read (:func:`evaluation.answer_forms.answer_readings`):
   a label is not part of the value (``x = 5``, ``f(x)=1``, ``|AB|=1`` read as the value), a chain of equalities
   reads as its last part, and either side of ``\\approx`` counts;
3. **exact**: the cleaned spellings are equal (LaTeX spacing, ``\\left``, ``$``, ``%``, degree marks, units such as
   ``\\text{ cm}``, ``\\textnormal{ miles}``, ``{ml}``, ``28 percent``, thousands separators removed; relations
   written one way, so ``\\geq`` is ``>=``, see :func:`evaluation.answer_forms.clean_answer`);
4. **lists**: both sides hold several values (:func:`evaluation.answer_forms.split_answer_list`), compared value by
   value with these same rules. **Ordered**: bracketed tuples ``(3, 2)``, numbers separated by spaces ``12 3 0``,
   distinct labels ``x=2, y=3`` (compared label by label when both sides name them, else in the order written); so
   ``12,0,3`` is not ``12 3 0`` and ``x=2, y=3`` is not ``(3, 2)``. **Unordered** ("all solutions", compared as sets,
   repeats ignored): bare lists separated by commas, semicolons, "and", "or" (MATH's "enter all the solutions,
   separated by commas"), braces ``\\{1, 2\\}``, several ``\\boxed{}``, lists of tuples ``(5,2),(7,2)``, one variable
   named repeatedly ``x_1=2, x_2=3``, and groups ``p=5,q=2;p=7,q=2``. When one side is unordered and the other
   ordered, a set (braces, boxes, tuples) makes it unordered, and otherwise the order counts;
5. **numeric**: both sides are numbers (``1,000``, ``1 000``, ``4.5e33``, ``4.5\\times 10^{33}``, ``\\frac{3}{4}``, and
   a decimal comma where it cannot separate thousands: ``1,22``, ``1000,99``) and ``math.isclose(pred, gold,
   rel_tol, abs_tol)`` decides. The default ``rel_tol=1e-5`` is the tolerance of ``numpy.isclose``, which the OCW
   grader of the reference evaluation applies, so ``30`` vs ``30.003`` is wrong. ``abs_tol`` defaults to 0 because
   OCW answers go down to 1e-27: any fixed absolute slack would accept wrong tiny values. A gold answer written as a
   decimal with at least :data:`MIN_ROUNDED_DECIMALS` places is taken as rounded: a prediction that is exact
   (``\\frac{2}{3}``) or has more places (``7.03125``) and rounds to it is correct (``rounded``). A number against an
   expression in a variable (``x + 1``, ``2.2 \\tau``) or against a list is wrong without further work;
6. **math-verify** decides everything else (symbolic expressions, equations up to a factor or form, intervals,
   sets, matrices, relations, ``x \\in [-2,7]`` against ``-2 \\le x \\le 7``), first on the extracted answers,
   then, when no explicit marker (box, "final answer", "answer is", ``####``) gave the answer, on math-verify's own
   extraction from the whole prediction, which again goes through rules 2-6.

Where this differs from math-verify with its defaults, on purpose:

- numbers are compared with a relative tolerance (rule 5), never by rounding to 6 decimals, so ``3.89e-10`` is not
  ``1e-10`` and ``0.6667`` is not ``\\frac{2}{3}`` (MATH wants the exact value); only a rounded *gold* accepts
  rounded predictions;
- ``12 3 0`` is a sequence, not the product 0, and named values are ordered: ``x=2, y=3`` is not ``(3, 2)``;
- a set gold (``x \\in [-2,7]``) matches the same set written as inequalities (math-verify's
  ``allow_set_relation_comp``);
- option letters are only ever compared as whole answers (rule 1).

Untrusted text is bounded. A prediction longer than :data:`MAX_PREDICTION_CHARS` is graded on its end; the cheap rules
(extraction, rules 1-5 on numbers) run in the calling process on bounded text; everything that parses LaTeX or
builds sympy objects runs in a judging process (:mod:`evaluation.judge`) after the pre-parse bounds of
:mod:`evaluation.text_bounds`, and is killed after :data:`GRADE_TIMEOUT_S` seconds. A prediction that cannot be
judged is wrong with reason ``grade_error: <why>``; :func:`grade` never raises on the text of a prediction. It runs in
any thread. No ``eval``, no state kept between calls.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from evaluation.answer_forms import (
    AnswerList,
    answer_readings,
    clean_answer,
    decimal_places,
    has_free_symbol,
    number_readings,
    rounds_to,
    split_answer_list,
    strip_math_delimiters,
)
from evaluation.answers import (
    FoundAnswer,
    choice_letter,
    last_boxed_answer,
    leading_choice_letter,
    locate_final_answer,
    looks_like_short_answer,
    only_math_spans,
)
from evaluation.judge import JudgeError, judged, run_judged
from evaluation.text_bounds import MAX_SYMBOLIC_CHARS, math_text_problem

DEFAULT_REL_TOL = 1e-5
DEFAULT_ABS_TOL = 0.0
#: Seconds math-verify may spend parsing one answer and comparing one pair (its own, gentle timeout).
MATH_VERIFY_TIMEOUT_S = 5
#: Seconds one grade may take in the judging process before it is killed and graded ``grade_error``.
GRADE_TIMEOUT_S = 30.0
#: A prediction longer than this is graded on its last characters (where the final answer is).
MAX_PREDICTION_CHARS = 100_000
#: The end of a prediction that math-verify's own extraction reads (rule 6).
MAX_WHOLE_TEXT_CHARS = 20_000
#: Places a gold decimal needs to be taken as rounded (``0.5`` is more often exact than rounded; ``7.03`` rounded).
MIN_ROUNDED_DECIMALS = 2

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
    and ``reason`` the rule that decided: ``choice``, ``exact``, ``numeric``, ``rounded``, ``list``, ``math_verify``
    when correct; ``no_answer``, ``choice_mismatch``, ``numeric_mismatch``, ``list_mismatch``, ``mismatch``,
    ``grade_error: <why>`` when not. The part before ``:`` is the countable code.
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


def _bounded(text: str) -> str:
    return text if len(text) <= MAX_PREDICTION_CHARS else text[-MAX_PREDICTION_CHARS:]


def extract_answer(text: str | None, dataset: str | None = None) -> str | None:
    """The final answer written in ``text`` (a bare answer or a whole solution), or ``None`` when there is none.

    For multiple-choice datasets the answer is reduced to its option letter when it names one.
    See :func:`evaluation.answers.locate_final_answer` for the rules.
    """
    if text is None:
        return None
    multiple_choice = is_multiple_choice(dataset)
    return _as_extracted(locate_final_answer(_bounded(text), multiple_choice=multiple_choice), multiple_choice)


def _as_extracted(found: FoundAnswer | None, multiple_choice: bool) -> str | None:
    if found is None or not found.text.strip():
        return None
    if multiple_choice:
        return choice_letter(found.text) or leading_choice_letter(found.text) or found.text
    return found.text


def gold_answer(gold: str | int | float) -> str:
    """The gold answer as text: numbers are formatted; a reference solution is reduced to its boxed, ``####`` or
    "final answer" answer; several boxes or math spans (``$21,16$ or $11$``) become one set."""
    if isinstance(gold, bool) or not isinstance(gold, str | int | float):
        raise TypeError(f"gold answer must be text or a number, got {type(gold).__name__}")
    text = _bounded(str(gold).strip())
    boxed = last_boxed_answer(text) if "\\boxed" in text or "\\fbox" in text else None
    if boxed is not None:
        text = boxed[0]
    elif "####" in text:
        text = text.rsplit("####", 1)[1]
    elif (spans := only_math_spans(text)) is not None:
        text = spans
    elif not looks_like_short_answer(text):
        found = locate_final_answer(text)
        if found is not None and found.marked:
            text = found.text
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


def _check_tolerances(rel_tol: float, abs_tol: float) -> None:
    for name, value in (("rel_tol", rel_tol), ("abs_tol", abs_tol)):
        if not isinstance(value, int | float) or isinstance(value, bool) or value < 0 or not math.isfinite(value):
            raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")


# -- comparison -----------------------------------------------------------------------------------------------------


class _NeedsJudgeError(Exception):
    """Raised by the in-process pass when a rule needs LaTeX parsing or sympy: the grade moves to the judge."""


class _UnjudgeableError(Exception):
    """A text outside the pre-parse bounds: never handed to a parser."""


@dataclass
class _Comparison:
    """Tolerances and the symbolic comparator of one grade (``symbolic`` is ``None`` in the calling process)."""

    rel_tol: float
    abs_tol: float
    symbolic: _MathVerify | None = None
    refused: str | None = None
    #: the rounded-gold rule (rule 5) is on
    rounded: bool = True

    def symbolic_equal(self, predicted: str, gold: str) -> bool:
        if self.symbolic is None:
            raise _NeedsJudgeError
        try:
            return self.symbolic.equal(predicted, gold, self.rounded)
        except _UnjudgeableError as exc:
            self.refused = self.refused or str(exc)
            return False


def _compare(predicted: str, gold: str, comparison: _Comparison) -> tuple[bool, str]:
    """Every reading of the prediction against every reading of the gold; the first match wins. A miss reports the
    most specific rule that decided it (``numeric_mismatch`` for ``x = 3`` against ``5``)."""
    reasons = []
    for predicted_reading in answer_readings(predicted):
        for gold_reading in answer_readings(gold):
            correct, reason = _compare_reading(predicted_reading, gold_reading, comparison)
            if correct:
                return True, reason
            reasons.append(reason)
    return False, next((reason for reason in reasons if reason != "mismatch"), "mismatch")


def _compare_reading(predicted: str, gold: str, comparison: _Comparison) -> tuple[bool, str]:
    predicted_clean, gold_clean = clean_answer(predicted), clean_answer(gold)
    if predicted_clean == gold_clean:
        return True, "exact"
    predicted_spaced, gold_spaced = clean_answer(predicted, squash=False), clean_answer(gold, squash=False)
    predicted_list, gold_list = split_answer_list(predicted_spaced), split_answer_list(gold_spaced)
    if predicted_list is not None and gold_list is not None:
        correct = _lists_match(predicted_list, gold_list, comparison)
        return correct, "list" if correct else "list_mismatch"
    predicted_values, gold_values = number_readings(predicted_clean), number_readings(gold_clean)
    if predicted_values and gold_values:
        if any(
            math.isclose(p, g, rel_tol=comparison.rel_tol, abs_tol=comparison.abs_tol)
            for p in predicted_values
            for g in gold_values
        ):
            return True, "numeric"
        if comparison.rounded and _rounded_match(predicted_values, predicted_clean, gold_clean):
            return True, "rounded"
        return False, "numeric_mismatch"
    if (gold_values and (predicted_list is not None or has_free_symbol(predicted_spaced))) or (
        predicted_values and (gold_list is not None or has_free_symbol(gold_spaced))
    ):
        return False, "list_mismatch" if predicted_list or gold_list else "mismatch"
    if comparison.symbolic_equal(predicted_spaced, gold_spaced):
        return True, "math_verify"
    return False, "mismatch"


def _rounded_match(predicted_values: list[float], predicted_clean: str, gold_clean: str) -> bool:
    """A gold written with k >= MIN_ROUNDED_DECIMALS places matched by a more precise prediction that rounds to it."""
    places = decimal_places(gold_clean)
    if places is None or places < MIN_ROUNDED_DECIMALS:
        return False
    predicted_places = decimal_places(predicted_clean)
    if predicted_places is not None and predicted_places <= places:
        return False
    gold_value = float(gold_clean)
    return any(rounds_to(value, gold_value, places) for value in predicted_values)


def _lists_match(predicted: AnswerList, gold: AnswerList, comparison: _Comparison) -> bool:
    """Values compared with the full rules: by label when both sides name the same labels, in order when the lists
    are ordered (see the module docstring), else as sets (each value on one side equals some value on the other)."""

    def equal(p: str, g: str) -> bool:
        return _compare(p, g, comparison)[0]

    if predicted.kind == gold.kind == "named" and sorted(predicted.labels) == sorted(gold.labels):
        by_label = dict(zip(predicted.labels, predicted.items, strict=True))
        return all(equal(by_label[label], item) for label, item in zip(gold.labels, gold.items, strict=True))
    if {gold.kind, predicted.kind} == {"tuple", "set"}:
        return False  # a point is not a set of numbers
    unordered = gold.kind == "set" or (gold.kind == "list" and not predicted.ordered)
    if not unordered:
        return len(predicted.items) == len(gold.items) and all(
            equal(p, g) for p, g in zip(predicted.items, gold.items, strict=True)
        )
    matched_gold: set[int] = set()
    for p in predicted.items:
        hits = [index for index, g in enumerate(gold.items) if equal(p, g)]
        if not hits:
            return False
        matched_gold.update(hits)
    return len(matched_gold) == len(gold.items)


class _MathVerify:
    """math-verify's parse and verify, used only inside the judging process (its main thread, so its timeouts
    work), on texts that passed :func:`evaluation.text_bounds.math_text_problem`."""

    def __init__(self) -> None:
        from math_verify import parse, verify

        self._parse, self._verify = parse, verify
        self._parsed: dict[str, Any] = {}

    def parse(self, text: str, whole_text: bool = False) -> Any:
        problem = math_text_problem(text, max_chars=MAX_WHOLE_TEXT_CHARS if whole_text else MAX_SYMBOLIC_CHARS)
        if problem is not None:
            raise _UnjudgeableError(problem)
        key = f"{whole_text}:{text}"
        if key not in self._parsed:
            source = text if whole_text or "$" in text or _is_prose(text) else f"${text}$"
            self._parsed[key] = self._parse(source, parsing_timeout=MATH_VERIFY_TIMEOUT_S)
        return self._parsed[key]

    def equal(self, predicted: str, gold: str, rounded: bool = True) -> bool:
        gold_parsed, predicted_parsed = self.parse(gold), self.parse(predicted)
        if not gold_parsed or not predicted_parsed:
            return False
        if self._verify(
            gold_parsed, predicted_parsed, timeout_seconds=MATH_VERIFY_TIMEOUT_S, allow_set_relation_comp=True
        ):
            return True
        return rounded and self._rounds_to_gold(predicted_parsed[0], clean_answer(gold))

    def _rounds_to_gold(self, predicted: Any, gold_clean: str) -> bool:
        """The rounded-gold rule for a prediction only sympy can evaluate (``\\frac{\\sqrt{2}}{2}`` for ``0.71``)."""
        import sympy

        places = decimal_places(gold_clean)
        if places is None or places < MIN_ROUNDED_DECIMALS or not isinstance(predicted, sympy.Expr):
            return False
        if not predicted.is_number or isinstance(predicted, sympy.Float):
            return False
        try:
            value = complex(sympy.N(predicted, 30))
        except (TypeError, ValueError):
            return False
        return value.imag == 0 and rounds_to(value.real, float(gold_clean), places)

    def extraction(self, prediction: str) -> str | None:
        """The answer math-verify itself finds in a whole prediction (its priorities: boxes, "final answer",
        the last LaTeX or expression), as the text it matched."""
        parsed = self.parse(prediction, whole_text=True)
        return str(parsed[-1]) if len(parsed) >= 2 and isinstance(parsed[-1], str) and parsed[-1].strip() else None


def _is_prose(text: str) -> bool:
    return len([word for word in text.split() if word.isalpha() and len(word) > 2]) >= 3


def _grade_found(
    prediction: str | None, gold: str, dataset: str | None, comparison: _Comparison
) -> tuple[str | None, bool, str]:
    """(extracted, correct, reason): rules 1-5 on the extracted answer, then math-verify's own extraction."""
    multiple_choice = is_multiple_choice(dataset)
    found = locate_final_answer(_bounded(prediction), multiple_choice) if prediction is not None else None
    extracted = _as_extracted(found, multiple_choice)
    gold_letter = _gold_choice_letter(gold, multiple_choice)
    if gold_letter is not None:
        if extracted is None:
            return None, False, "no_answer"
        correct = choice_letter(extracted) == gold_letter
        return extracted, correct, "choice" if correct else "choice_mismatch"
    correct, reason = (False, "no_answer") if extracted is None else _compare(extracted, gold, comparison)
    if correct:
        return extracted, True, reason
    # math-verify's own extraction is a second chance for an answer no marker gave; a number found in the last line
    # that differs from a numeric gold has had its chance (a second number from the same prose would be a guess)
    if prediction is not None and (found is None or not found.marked) and reason != "numeric_mismatch":
        if comparison.symbolic is None:
            raise _NeedsJudgeError
        try:
            own = comparison.symbolic.extraction(prediction[-MAX_WHOLE_TEXT_CHARS:])
        except _UnjudgeableError:  # a solution that mentions a huge number: its marked or last answer still counts
            own = None
        if own is not None and own != extracted:
            own_correct, own_reason = _compare(own, gold, comparison)
            if own_correct:
                return extracted or own, True, own_reason
    if comparison.refused is not None and reason in ("mismatch", "no_answer"):
        return extracted, False, f"grade_error: {comparison.refused}"
    return extracted, False, reason


@judged
def judge_grade(prediction: str | None, gold: str, dataset: str | None, rel_tol: float, abs_tol: float) -> list[Any]:
    """:func:`grade` with every rule available (runs in the judging process)."""
    comparison = _Comparison(rel_tol, abs_tol, _MathVerify())
    return list(_grade_found(prediction, gold, dataset, comparison))


@judged
def judge_answers_match(extracted: str, gold: str, rel_tol: float, abs_tol: float, rounded: bool = True) -> list[Any]:
    """:func:`answers_match` with every rule available (runs in the judging process)."""
    comparison = _Comparison(rel_tol, abs_tol, _MathVerify(), rounded=rounded)
    correct, reason = _compare(extracted, gold, comparison)
    if not correct and comparison.refused is not None and reason == "mismatch":
        reason = f"grade_error: {comparison.refused}"
    return [correct, reason]


def _cheap_or_judged(cheap: Callable[[], Any], judged_call: Callable[[], Any]) -> Any:
    try:
        return cheap()
    except _NeedsJudgeError:
        return judged_call()


def answers_match(
    extracted: str,
    gold: str,
    dataset: str | None = None,
    rel_tol: float = DEFAULT_REL_TOL,
    abs_tol: float = DEFAULT_ABS_TOL,
    match_rounded: bool = True,
) -> tuple[bool, str]:
    """Compare an extracted answer with a gold answer (plain answers, not solutions); returns (correct, reason).

    ``match_rounded=False`` turns the rounded-gold rule off (a gold ``0.3333`` then wants the value within the
    tolerances). Raises ``ValueError`` only for a multiple-choice gold that is not an option letter; a text that
    cannot be judged gives ``(False, "grade_error: <why>")``.
    """
    _check_tolerances(rel_tol, abs_tol)
    multiple_choice = is_multiple_choice(dataset)
    gold_letter = _gold_choice_letter(gold, multiple_choice)
    if multiple_choice and gold_letter is None:
        raise ValueError(f"gold answer {gold!r} of multiple-choice dataset '{dataset}' is not an option letter")
    if gold_letter is not None:
        correct = choice_letter(extracted) == gold_letter
        return correct, "choice" if correct else "choice_mismatch"
    extracted = _bounded(extracted)

    def judged_call() -> tuple[bool, str]:
        try:
            correct, reason = run_judged(
                judge_answers_match, extracted, gold, rel_tol, abs_tol, match_rounded, timeout_s=GRADE_TIMEOUT_S
            )
        except JudgeError as exc:
            return False, f"grade_error: {exc.reason}"
        return bool(correct), str(reason)

    cheap = _Comparison(rel_tol, abs_tol, rounded=match_rounded)
    return _cheap_or_judged(lambda: _compare(extracted, gold, cheap), judged_call)


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
    Raises ``TypeError`` / ``ValueError`` only for a bad gold answer or tolerance; whatever the prediction's text, the
    result is a :class:`GradeResult` (``grade_error: <why>`` when it cannot be judged within the bounds).
    """
    _check_tolerances(rel_tol, abs_tol)
    if prediction is not None and not isinstance(prediction, str):
        raise TypeError(f"prediction must be text or None, got {type(prediction).__name__}")
    gold_text = gold_answer(gold)
    if is_multiple_choice(dataset) and _gold_choice_letter(gold_text, True) is None:
        raise ValueError(f"gold answer {gold_text!r} of multiple-choice dataset '{dataset}' is not an option letter")

    def judged_call() -> GradeResult:
        try:
            extracted, correct, reason = run_judged(
                judge_grade, prediction, gold_text, dataset, rel_tol, abs_tol, timeout_s=GRADE_TIMEOUT_S
            )
        except JudgeError as exc:
            return GradeResult(extract_answer(prediction, dataset), False, f"grade_error: {exc.reason}")
        return GradeResult(extracted, bool(correct), str(reason))

    def cheap() -> GradeResult:
        return GradeResult(*_grade_found(prediction, gold_text, dataset, _Comparison(rel_tol, abs_tol)))

    return _cheap_or_judged(cheap, judged_call)


# -- rows -----------------------------------------------------------------------------------------------------------


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
    that many rows at once (threads; each has its own judging process for the symbolic work).
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
        with ThreadPoolExecutor(max_workers=num_proc) as pool:
            results = list(pool.map(_grade_task, tasks))
    graded = []
    for row, result in zip(materialized, results, strict=True):
        graded.append({**row, "extracted": result.extracted, "correct": result.correct, "grade_reason": result.reason})
    return graded


def summarize_grades(graded: Iterable[Mapping[str, Any]], dataset_field: str = "dataset") -> dict[str, Any]:
    """Accuracy overall and per dataset, plus how many rows each rule decided (by reason code, for reports and
    logs)."""
    totals: Counter[str] = Counter()
    correct: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    for row in graded:
        name = str(row.get(dataset_field) or "all")
        totals[name] += 1
        correct[name] += int(bool(row["correct"]))
        reasons[str(row["grade_reason"]).split(":", 1)[0]] += 1
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
