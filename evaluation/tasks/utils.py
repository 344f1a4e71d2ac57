"""Dataset loading, prompts and scoring for the ``mathcoder2`` lm-eval tasks (referenced as ``!function utils.*``).

Each task reads the test set bundled with the project by default (see :mod:`evaluation.benchmarks`), so the suite
runs offline. Passing ``data_dir`` through lm-eval's task metadata (``--metadata '{"data_dir": "my/folder"}'``, or
``run_eval.py --data_dir``) reads another folder of ``<name>_test.jsonl[.gz]`` files, and ``data_dir: hub`` the Hub
datasets. Both sources are normalized to the same fields, and a row that
lacks a field stops the run with an error naming the source, the row and the field.

Generated answers are graded by :func:`evaluation.grading.grade`, the project's one grader.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from evaluation.benchmarks import (
    CHOICE_LABELS,
    load_benchmark,
    normalize_gsm8k,
    normalize_math,
    normalize_mmlu_math,
    normalize_ocw,
    normalize_sat,
)
from evaluation.grading import grade
from evaluation.tasks.exemplars import (
    GSM8K_EXEMPLARS,
    MATH_EXEMPLARS,
    OCW_EXEMPLARS,
    SAT_EXEMPLARS,
    gsm8k_target,
    minerva_target,
)


# ------------------------------------------------------------------------------------------- dataset loaders
def load_gsm8k(data_dir: str | None = None, **_task_metadata: Any) -> Any:
    return load_benchmark("gsm8k", normalize_gsm8k, data_dir)


def load_math(data_dir: str | None = None, **_task_metadata: Any) -> Any:
    return load_benchmark("math", normalize_math, data_dir)


def load_sat_math(data_dir: str | None = None, **_task_metadata: Any) -> Any:
    return load_benchmark("sat_math", normalize_sat, data_dir)


def load_ocw(data_dir: str | None = None, **_task_metadata: Any) -> Any:
    return load_benchmark("ocw", normalize_ocw, data_dir)


def load_mmlu_math(data_dir: str | None = None, **_task_metadata: Any) -> Any:
    return load_benchmark("mmlu_math", normalize_mmlu_math, data_dir)


# ------------------------------------------------------------------------------------------------- prompts
def gsm8k_doc_to_text(doc: Mapping[str, Any]) -> str:
    return f"Question: {doc['question']}\nAnswer:"


def problem_doc_to_text(doc: Mapping[str, Any]) -> str:
    """Minerva's prompt shape, used for MATH and OCW."""
    return f"Problem:\n{doc['problem']}\n\nSolution:"


def sat_doc_to_text(doc: Mapping[str, Any]) -> str:
    return f"Problem:\n{doc['question']}\nAnswer choices: {doc['options']}\n\nSolution:"


def mmlu_doc_to_text(doc: Mapping[str, Any]) -> str:
    subject = doc["subject"].replace("_", " ")
    choices = "\n".join(f"{label}. {choice}" for label, choice in zip(CHOICE_LABELS, doc["choices"], strict=True))
    return f"The following is a multiple choice question about {subject}.\n\n{doc['question']}\n{choices}\nAnswer:"


def mmlu_doc_to_target(doc: Mapping[str, Any]) -> int:
    return CHOICE_LABELS.index(doc["answer"])


def exemplar_target(doc: Mapping[str, Any]) -> str:
    """The written solution of a few-shot exemplar (exemplars carry it in ``target``)."""
    return doc["target"]


# ------------------------------------------------------------------------------------------- few-shot docs
def gsm8k_fewshot() -> list[dict[str, Any]]:
    return [{**shot, "target": gsm8k_target(shot["solution"], shot["answer"])} for shot in GSM8K_EXEMPLARS]


def math_fewshot() -> list[dict[str, Any]]:
    return [{**shot, "target": minerva_target(shot["solution"], shot["answer"])} for shot in MATH_EXEMPLARS]


def ocw_fewshot() -> list[dict[str, Any]]:
    return [{**shot, "target": minerva_target(shot["solution"], shot["answer"])} for shot in OCW_EXEMPLARS]


def sat_fewshot() -> list[dict[str, Any]]:
    return [
        {**shot, "options": " ".join(shot["options"]), "target": minerva_target(shot["solution"], shot["answer"])}
        for shot in SAT_EXEMPLARS
    ]


# ---------------------------------------------------------------------------------------------- scoring
def _score(dataset: str, doc: Mapping[str, Any], results: list[str]) -> dict[str, int]:
    return {"acc": int(grade(results[0], doc["answer"], dataset=dataset).correct)}


def gsm8k_process_results(doc: Mapping[str, Any], results: list[str]) -> dict[str, int]:
    return _score("gsm8k", doc, results)


def math_process_results(doc: Mapping[str, Any], results: list[str]) -> dict[str, int]:
    return _score("math", doc, results)


def ocw_process_results(doc: Mapping[str, Any], results: list[str]) -> dict[str, int]:
    return _score("ocw", doc, results)


def sat_process_results(doc: Mapping[str, Any], results: list[str]) -> dict[str, int]:
    return _score("sat_math", doc, results)
