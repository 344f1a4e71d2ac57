"""The ``mathcoder2`` lm-eval tasks: they load from local files, build 4-shot prompts from our own exemplars, read
Hub-shaped rows the same way, reject broken rows by name, and score generations with the project grader."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from evaluation.benchmarks import (
    BenchmarkDataError,
    normalize_gsm8k,
    normalize_math,
    normalize_mmlu_math,
    normalize_ocw,
    normalize_sat,
    read_jsonl,
)
from evaluation.grading import grade
from evaluation.run_eval import TASKS_DIR
from evaluation.tasks import utils
from evaluation.tasks.exemplars import GSM8K_EXEMPLARS, MATH_EXEMPLARS, OCW_EXEMPLARS, SAT_EXEMPLARS
from mathcode_pile.paths import benchmark_file

EXPECTED_SIZES = {
    "mathcoder2_gsm8k": 1319,
    "mathcoder2_math": 5000,
    "mathcoder2_sat_math": 32,
    "mathcoder2_ocw": 272,
    "mathcoder2_mmlu_math": 964,
}


@pytest.fixture(scope="module")
def suite_tasks(benchmarks_dir: Path) -> dict[str, Any]:
    from lm_eval.tasks import TaskManager

    manager = TaskManager(
        include_path=str(TASKS_DIR), include_defaults=False, metadata={"data_dir": str(benchmarks_dir)}
    )
    loaded = manager.load(["mathcoder2"])
    return loaded["tasks"]


def test_the_group_loads_five_tasks_from_local_files(suite_tasks: dict[str, Any]) -> None:
    assert {name: len(list(task.test_docs())) for name, task in suite_tasks.items()} == EXPECTED_SIZES


def test_mmlu_math_holds_exactly_the_four_math_subjects(suite_tasks: dict[str, Any]) -> None:
    docs = list(suite_tasks["mathcoder2_mmlu_math"].test_docs())
    counts: dict[str, int] = {}
    for doc in docs:
        counts[doc["subject"]] = counts.get(doc["subject"], 0) + 1
    assert counts == {
        "elementary_mathematics": 378,
        "high_school_mathematics": 270,
        "high_school_statistics": 216,
        "college_mathematics": 100,
    }
    assert {doc["answer"] for doc in docs} == {"A", "B", "C", "D"}


@pytest.mark.parametrize(
    ("task_name", "marker", "shots"),
    [
        ("mathcoder2_gsm8k", "Question:", 4),
        ("mathcoder2_math", "Problem:", 4),
        ("mathcoder2_sat_math", "Problem:", 4),
        ("mathcoder2_ocw", "Problem:", 4),
        ("mathcoder2_mmlu_math", "Answer:", 0),
    ],
)
def test_prompts_hold_the_fixed_exemplars_then_the_test_problem(
    suite_tasks: dict[str, Any], task_name: str, marker: str, shots: int
) -> None:
    task = suite_tasks[task_name]
    assert task.get_config("num_fewshot") == shots
    first, second = list(task.test_docs())[:2]
    context = task.fewshot_context(first, shots)
    assert context.count(marker) == shots + 1
    assert context.endswith(task.doc_to_text(first))
    # fixed exemplars: the same shots precede every test problem
    assert (
        context[: -len(task.doc_to_text(first))]
        == task.fewshot_context(second, shots)[: -len(task.doc_to_text(second))]
    )
    if shots:
        assert context.count("The answer is") + context.count("The final answer is") == shots


def _normalized(text: str) -> str:
    return re.sub(r"\W+", " ", text).lower().strip()


@pytest.mark.parametrize(
    ("exemplars", "file_name", "field"),
    [
        (GSM8K_EXEMPLARS, "gsm8k_test", "question"),
        (MATH_EXEMPLARS, "math_test", "problem"),
        (OCW_EXEMPLARS, "ocw_courses_test", "problem"),
        (SAT_EXEMPLARS, "sat_math_test", "question"),
    ],
)
def test_exemplars_are_not_test_items_and_their_answers_grade_correct(
    benchmarks_dir: Path, exemplars: tuple[dict[str, Any], ...], file_name: str, field: str
) -> None:
    test_texts = {_normalized(row[field]) for row in read_jsonl(benchmark_file(benchmarks_dir, file_name))}
    dataset = {"gsm8k_test": "gsm8k", "sat_math_test": "sat_math"}.get(file_name, "math")
    for shot in exemplars:
        key = "question" if "question" in shot else "problem"
        assert _normalized(shot[key]) not in test_texts
        assert not any(_normalized(shot[key])[:60] in text for text in test_texts)
    fewshot = {
        "gsm8k_test": utils.gsm8k_fewshot,
        "math_test": utils.math_fewshot,
        "ocw_courses_test": utils.ocw_fewshot,
        "sat_math_test": utils.sat_fewshot,
    }[file_name]()
    for doc in fewshot:
        assert grade(doc["target"], doc["answer"], dataset).correct, doc["target"]


def test_process_results_grade_generations() -> None:
    gsm8k_doc = {"question": "q", "answer": "1600", "solution": ""}
    assert utils.gsm8k_process_results(gsm8k_doc, [" 4 x 400 = 1,600 sticks. The answer is 1,600."]) == {"acc": 1}
    assert utils.gsm8k_process_results(gsm8k_doc, [" The answer is 1200."]) == {"acc": 0}
    math_doc = {"problem": "p", "solution": "", "answer": "\\frac{1}{2}", "subject": "algebra"}
    final = " So $x = 0.5$.\nFinal Answer: The final answer is $\\frac12$. I hope it is correct."
    assert utils.math_process_results(math_doc, [final]) == {"acc": 1}
    cut_at_stop_sequence = final.removesuffix("I hope it is correct.")
    assert utils.math_process_results(math_doc, [cut_at_stop_sequence]) == {"acc": 1}
    sat_doc = {"question": "q", "options": "A) 1 B) 2", "answer": "B"}
    assert utils.sat_process_results(sat_doc, [" Final Answer: The final answer is (b). I hope it is correct."]) == {
        "acc": 1
    }
    assert utils.sat_process_results(sat_doc, [" 2 is option (B)? no: (a)"]) == {"acc": 0}
    ocw_doc = {"problem": "p", "solution": "", "answer": "4.5e33"}
    assert utils.ocw_process_results(ocw_doc, [" $L = \\boxed{4.5 \\times 10^{33}}$ ergs/s"]) == {"acc": 1}


def test_hub_shaped_rows_normalize_like_local_rows() -> None:
    hub_gsm8k = {"question": "How many?", "answer": "3 + 4 = <<3+4=7>>7 apples.\n#### 7"}
    assert normalize_gsm8k(hub_gsm8k, "hub") == {
        "question": "How many?",
        "answer": "7",
        "solution": "3 + 4 = <<3+4=7>>7 apples.",
    }
    hub_math = {"problem": "p", "solution": "so $\\boxed{\\frac{3}{4}}$", "level": "Level 2", "type": "Algebra"}
    assert normalize_math(hub_math, "hub")["answer"] == "\\frac{3}{4}"
    assert normalize_math(hub_math, "hub")["subject"] == "Algebra"
    assert normalize_ocw({"problem": "p", "solution": "$\\boxed{1.6}$ cm"}, "hub")["answer"] == "1.6"
    hub_mmlu = {"question": "2+2?", "subject": "elementary_mathematics", "choices": ["1", "2", "3", "4"], "answer": 3}
    assert normalize_mmlu_math(hub_mmlu, "hub")["answer"] == "D"
    assert normalize_mmlu_math({**hub_mmlu, "subject": "anatomy"}, "hub") is None
    hub_sat = {"Question": "q", "Possible Answers": "A) 3 B) 6 C) 9 D) 12", "Answer": "C"}  # the Hub's layout
    assert normalize_sat(hub_sat, "hub") == {"question": "q", "options": "A) 3 B) 6 C) 9 D) 12", "answer": "C"}
    listed_sat = {"Question": "q", "Answer Choices": ["3", "6", "9", "12"], "Answer": "(c)"}
    assert normalize_sat(listed_sat, "hub") == {"question": "q", "options": "A) 3 B) 6 C) 9 D) 12", "answer": "C"}


def test_broken_rows_are_errors_naming_source_row_and_field(tmp_path: Path) -> None:
    with pytest.raises(BenchmarkDataError, match=r"x.jsonl: row 3: field 'question' is missing"):
        normalize_gsm8k({"answer": "5"}, "x.jsonl: row 3")
    with pytest.raises(BenchmarkDataError, match=r"row 0: field 'answer' is missing and the solution has no"):
        normalize_math({"problem": "p", "solution": "no box"}, "row 0")
    with pytest.raises(BenchmarkDataError, match=r"row 1: field 'Answer' is not an option letter"):
        normalize_sat({"question": "q", "options": "A) 1 B) 2", "Answer": "7"}, "row 1")
    with pytest.raises(BenchmarkDataError, match=r"field 'options' must list 4 choices"):
        normalize_mmlu_math({"question": "q", "topic": "college_mathematics", "options": ["1"], "answer": "A"}, "r")
    broken = tmp_path / "gsm8k_test.jsonl"
    broken.write_text(json.dumps({"question": "q", "answer": "1"}) + "\n{oops\n", encoding="utf-8")
    with pytest.raises(BenchmarkDataError, match=r"gsm8k_test.jsonl: line 2: invalid JSON"):
        read_jsonl(broken)
    missing_answer = tmp_path / "missing" / "gsm8k_test.jsonl"
    missing_answer.parent.mkdir()
    missing_answer.write_text(json.dumps({"question": "q"}) + "\n", encoding="utf-8")
    with pytest.raises(BenchmarkDataError, match=r"gsm8k_test.jsonl: row 0: field 'answer' is missing"):
        utils.load_gsm8k(data_dir=str(missing_answer.parent))
