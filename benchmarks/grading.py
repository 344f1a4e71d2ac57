"""Time per grade call, and what bounding the grader costs: ``grade()`` as shipped (cheap rules here, LaTeX and sympy
in a judging process that can be killed) against the same rules run unbounded in this process, and math-verify alone
with its defaults, on the same inputs in the same run (each timed on a second pass, so every mode has warm caches).

Workloads: the gold checks (each benchmark's reference solution against its own answer, GSM8K / MATH / OCW), the same
solutions against shuffled answers (every grade wrong, so the symbolic rules run), and math-verify's public
regression cases (``tests/fixtures/grading``), where agreement with the expected labels and with math-verify is
printed too. Run: ``python benchmarks/grading.py [--rows 500]``.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

CASES_FILE = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "grading" / "math_verify_cases.jsonl"
GOLD_CHECKS = [
    ("gsm8k", "gsm8k_test", "cot"),
    ("math", "math_test", "solution"),
    ("ocw", "ocw_courses_test", "solution"),
]


def workloads(rows: int) -> list[tuple[str, list[tuple[str, str, str]]]]:
    """(name, [(prediction, gold, dataset)]) for every workload."""
    from evaluation.benchmarks import read_jsonl
    from mathcode_pile.paths import benchmark_file, benchmarks_dir

    loads = []
    for dataset, file_name, field in GOLD_CHECKS:
        data = read_jsonl(benchmark_file(benchmarks_dir(), file_name))[:rows]
        loads.append((f"{dataset} gold", [(row[field], row["answer"], dataset) for row in data]))
        shuffled = data[:150]
        golds = [row["answer"] for row in shuffled]
        random.Random(0).shuffle(golds)
        loads.append(
            (f"{dataset} shuffled", [(row[field], gold, dataset) for row, gold in zip(shuffled, golds, strict=True)])
        )
    cases = [json.loads(line) for line in CASES_FILE.read_text(encoding="utf-8").splitlines()]
    loads.append(("math-verify cases", [(case["prediction"], case["gold"], "math") for case in cases]))
    return loads


def unbounded_grade(prediction: str, gold: str, dataset: str) -> bool:
    """The grader's rules with math-verify called in this process: no judging process, no kill."""
    from evaluation.grading import _Comparison, _grade_found, _MathVerify, gold_answer

    comparison = _Comparison(1e-5, 0.0, _MathVerify())
    return bool(_grade_found(prediction, gold_answer(gold), dataset, comparison)[1])


def library_grade(prediction: str, gold: str, _dataset: str) -> bool:
    from math_verify import parse, verify

    return bool(verify(parse(gold), parse(prediction)))


def timed(function: Callable[[str, str, str], Any], items: list[tuple[str, str, str]]) -> tuple[float, list[bool]]:
    """Milliseconds per call on the second pass over ``items`` (sympy and math-verify cache parsed expressions per
    process: a first pass would favour whichever mode ran second), and the verdicts."""
    for item in items:
        function(*item)
    started = time.perf_counter()
    verdicts = [bool(function(*item)) for item in items]
    return (time.perf_counter() - started) / len(items) * 1000, verdicts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=500, help="rows of each gold check (the first ones)")
    args = parser.parse_args()

    from evaluation.grading import grade, judge_answers_match
    from evaluation.judge import run_judged

    run_judged(judge_answers_match, "1", "1", 1e-5, 0.0, True, timeout_s=120)  # start the judge before timing
    started = time.perf_counter()
    for _ in range(200):
        run_judged(judge_answers_match, "1", "1", 1e-5, 0.0, True, timeout_s=60)
    print(f"judging process round trip: {(time.perf_counter() - started) / 200 * 1e6:.0f} us")

    print(f"{'workload':<20} {'rows':>5} {'grade() ms':>11} {'unbounded ms':>13} {'ratio':>6} {'math-verify ms':>15}")
    for name, items in workloads(args.rows):
        bounded_ms, ours = timed(lambda p, g, d: grade(p, g, d).correct, items)
        unbounded_ms, unbounded = timed(unbounded_grade, items)
        library_ms, library = timed(library_grade, items)
        assert ours == unbounded, f"{name}: the bounded and unbounded graders disagree"
        print(
            f"{name:<20} {len(items):>5} {bounded_ms:>11.2f} {unbounded_ms:>13.2f} "
            f"{bounded_ms / unbounded_ms:>6.2f} {library_ms:>15.2f}   correct: ours {sum(ours)}, "
            f"math-verify {sum(library)}"
        )
        if name == "math-verify cases":
            cases = [json.loads(line) for line in CASES_FILE.read_text(encoding="utf-8").splitlines()]
            expected = [case["expected"] for case in cases]
            agree = sum(o == e for o, e in zip(ours, expected, strict=True))
            library_agree = sum(m == e for m, e in zip(library, expected, strict=True))
            with_library = sum(o == m for o, m in zip(ours, library, strict=True))
            print(
                f"  agreement with expected labels: ours {agree}/{len(cases)} = {agree / len(cases):.3f}, "
                f"math-verify {library_agree}/{len(cases)}; ours with math-verify: {with_library}/{len(cases)}"
            )


if __name__ == "__main__":
    main()
