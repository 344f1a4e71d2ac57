"""The five MathCoder2 test sets, read from the bundled copies, a folder of JSON Lines files or the Hub, normalized.

By default the test sets shipped in the package (:data:`mathcode_pile.paths.BENCHMARKS_DIR`) are read, so evaluation
runs offline on a fresh clone; ``data_dir`` names another folder of ``<name>_test.jsonl[.gz]`` files, and the value
``hub`` (:data:`HUB`) reads the Hub datasets instead.

Both sources give the same fields per benchmark (GSM8K: ``question, answer, solution``; MATH: ``problem, solution,
answer, subject``; OCW: ``problem, solution, answer``; SAT: ``question, options, answer``; MMLU-Math: ``question,
choices, answer, subject``). A row that lacks a field stops loading with an error naming the source, the row and the
field. The lm-eval tasks (``evaluation/tasks``) and the grader's gold checks read the data through this module.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evaluation.answers import find_last_boxed
from mathcode_pile import jsonl
from mathcode_pile.paths import benchmark_file, benchmarks_dir

#: The MMLU subjects MathCoder2 averages as MMLU-Math (378 + 270 + 216 + 100 = 964 test questions).
MMLU_MATH_SUBJECTS = (
    "elementary_mathematics",
    "high_school_mathematics",
    "high_school_statistics",
    "college_mathematics",
)
#: The seven MATH subjects, one Hub config each (5,000 test problems in all).
MATH_SUBJECTS = (
    "algebra",
    "counting_and_probability",
    "geometry",
    "intermediate_algebra",
    "number_theory",
    "prealgebra",
    "precalculus",
)
CHOICE_LABELS = ("A", "B", "C", "D")
#: The ``data_dir`` value that reads the Hub datasets instead of local files.
HUB = "hub"
#: Where a SAT row keeps its choices: ``options`` in the bundled file, ``Possible Answers`` (one "A) ... B) ..." line)
#: in the Hub's mcaleste/sat_multiple_choice_math_may_23, next to ``Question`` and ``Answer``.
_SAT_OPTION_FIELDS = ("options", "Possible Answers", "Answer Choices", "answer_choices", "choices")


class BenchmarkDataError(ValueError):
    """A benchmark row that cannot be used; the message names the source, the row and the field."""


@dataclass(frozen=True)
class BenchmarkSource:
    """Where one benchmark's test set lives: a file under ``data_dir`` (its name without suffix) or Hub configs."""

    local_stem: str
    hub_path: str
    hub_configs: tuple[str | None, ...]
    hub_split: str


SOURCES = {
    "gsm8k": BenchmarkSource("gsm8k_test", "openai/gsm8k", ("main",), "test"),
    "math": BenchmarkSource(
        "math_test",
        "EleutherAI/hendrycks_math",
        MATH_SUBJECTS,
        "test",
    ),
    # the 32 multiple-choice questions of the May 2023 SAT used by Llemma and DeepSeekMath
    "sat_math": BenchmarkSource("sat_math_test", "mcaleste/sat_multiple_choice_math_may_23", (None,), "train"),
    # the 272 OCW Courses problems of the Minerva paper, as published with Llemma
    "ocw": BenchmarkSource("ocw_courses_test", "zhangirazerbayev/ocwcourses", (None,), "test"),
    "mmlu_math": BenchmarkSource("mmlu_stem_test", "cais/mmlu", MMLU_MATH_SUBJECTS, "test"),
}


# ----------------------------------------------------------------------------------------------- reading rows
def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Rows of a JSON Lines file; a malformed line is an error naming the file and line number."""
    if not path.is_file():
        raise FileNotFoundError(f"benchmark file not found: {path}")
    return jsonl.read_jsonl(path, BenchmarkDataError)


def _read_hub(source: BenchmarkSource) -> Iterable[tuple[str, dict[str, Any]]]:
    import datasets

    for config in source.hub_configs:
        name = f"{source.hub_path}" + (f" ({config})" if config else "")
        split = datasets.load_dataset(source.hub_path, config, split=source.hub_split)
        for row in split:
            yield name, dict(row)


def _field(row: Mapping[str, Any], names: tuple[str, ...], where: str) -> Any:
    """The first present, non-empty field among ``names`` (datasets spell the same field differently)."""
    for name in names:
        value = row.get(name)
        if value is not None and value != "":
            return value
    raise BenchmarkDataError(f"{where}: field '{names[0]}' is missing (also looked for {list(names[1:])})")


def load_benchmark(
    name: str, normalize: Callable[[dict[str, Any], str], dict[str, Any] | None], data_dir: str | None
) -> Any:
    """A ``DatasetDict`` with one ``test`` split of normalized rows: bundled sets (``data_dir`` None), a folder, or
    the Hub (``data_dir="hub"``)."""
    import datasets

    source = SOURCES[name]
    if data_dir == HUB:
        labelled = ((f"{hub}: row {index}", row) for index, (hub, row) in enumerate(_read_hub(source)))
    else:
        path = benchmark_file(Path(data_dir) if data_dir else benchmarks_dir(), source.local_stem)
        if not path.is_file():
            raise BenchmarkDataError(f"benchmark '{name}': {path}(.gz) not found (data_dir={data_dir!r})")
        labelled = ((f"{path}: row {index}", row) for index, row in enumerate(read_jsonl(path)))
    rows = [normalized for where, row in labelled if (normalized := normalize(row, where)) is not None]
    if not rows:
        raise BenchmarkDataError(f"benchmark '{name}' has no rows (data_dir={data_dir!r})")
    return datasets.DatasetDict({"test": datasets.Dataset.from_list(rows)})


# -------------------------------------------------------------------------------------------- normalization
def normalize_gsm8k(row: dict[str, Any], where: str) -> dict[str, Any]:
    """``question``, ``answer`` (final number) and ``solution``; the Hub's ``rationale #### answer`` is split."""
    answer = str(_field(row, ("answer",), where))
    solution = row.get("cot") or ""
    if "####" in answer:
        solution, answer = (part.strip() for part in answer.rsplit("####", 1))
    return {"question": _field(row, ("question",), where), "answer": answer.strip(), "solution": solution}


def _answer_from_solution(row: Mapping[str, Any], where: str) -> str:
    answer = row.get("answer")
    if answer not in (None, ""):
        return str(answer)
    boxed = find_last_boxed(str(_field(row, ("solution",), where)))
    if not boxed:
        raise BenchmarkDataError(f"{where}: field 'answer' is missing and the solution has no \\boxed{{}} answer")
    return boxed


def normalize_math(row: dict[str, Any], where: str) -> dict[str, Any]:
    return {
        "problem": _field(row, ("problem",), where),
        "solution": _field(row, ("solution",), where),
        "answer": _answer_from_solution(row, where),
        "subject": str(row.get("subject") or row.get("type") or ""),
    }


def normalize_ocw(row: dict[str, Any], where: str) -> dict[str, Any]:
    return {
        "problem": _field(row, ("problem", "question"), where),
        "solution": str(row.get("solution") or ""),
        "answer": _answer_from_solution(row, where),
    }


def _options_text(options: Any, where: str) -> str:
    """Answer choices as one line ``A) ... B) ...`` whether stored as that line, a list or a letter mapping."""
    if isinstance(options, str):
        return options.strip()
    if isinstance(options, Mapping):
        return " ".join(f"{label}) {text}" for label, text in options.items())
    if isinstance(options, list | tuple) and options:
        items = [str(option).strip() for option in options]
        if all(len(item) > 1 and item[0] in "ABCDE" and item[1] == ")" for item in items):
            return " ".join(items)
        return " ".join(f"{label}) {item}" for label, item in zip("ABCDE", items, strict=False))
    raise BenchmarkDataError(f"{where}: field 'options' has no answer choices")


def _letter(value: Any, where: str, field_name: str) -> str:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(CHOICE_LABELS):
        return CHOICE_LABELS[value]
    text = str(value).strip().strip("()").upper()
    if len(text) == 1 and text in "ABCDE":
        return text
    raise BenchmarkDataError(f"{where}: field '{field_name}' is not an option letter or index: {value!r}")


def normalize_sat(row: dict[str, Any], where: str) -> dict[str, Any]:
    return {
        "question": _field(row, ("question", "Question"), where),
        "options": _options_text(_field(row, _SAT_OPTION_FIELDS, where), where),
        "answer": _letter(_field(row, ("Answer", "answer"), where), where, "Answer"),
    }


def normalize_mmlu_math(row: dict[str, Any], where: str) -> dict[str, Any] | None:
    """Rows of the four MMLU-Math subjects (others are skipped: the local file holds all STEM subjects)."""
    subject = str(_field(row, ("topic", "subject"), where))
    if subject not in MMLU_MATH_SUBJECTS:
        return None
    choices = _field(row, ("options", "choices"), where)
    if not isinstance(choices, list) or len(choices) != len(CHOICE_LABELS):
        raise BenchmarkDataError(f"{where}: field 'options' must list {len(CHOICE_LABELS)} choices, got {choices!r}")
    return {
        "question": str(_field(row, ("question",), where)).strip(),
        "choices": [str(choice) for choice in choices],
        "answer": _letter(_field(row, ("answer",), where), where, "answer"),
        "subject": subject,
    }
