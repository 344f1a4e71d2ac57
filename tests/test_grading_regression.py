"""The grader on math-verify's own public regression cases (``tests/fixtures/grading``): its verdicts agree with the
cases' expected labels, and with math-verify itself run with its defaults on the same inputs."""

from __future__ import annotations

import json
from pathlib import Path

from evaluation.grading import grade

CASES_FILE = Path(__file__).parent / "fixtures" / "grading" / "math_verify_cases.jsonl"
GOAL = 0.95


def _cases() -> list[dict]:
    return [json.loads(line) for line in CASES_FILE.read_text(encoding="utf-8").splitlines()]


def test_agreement_with_the_expected_labels_and_with_math_verify() -> None:
    from math_verify import parse, verify

    cases = _cases()
    assert len(cases) == 252
    ours = [grade(case["prediction"], case["gold"], "math").correct for case in cases]
    library = [bool(verify(parse(case["gold"]), parse(case["prediction"]))) for case in cases]
    expected = [case["expected"] for case in cases]
    with_labels = sum(o == e for o, e in zip(ours, expected, strict=True))
    with_library = sum(o == m for o, m in zip(ours, library, strict=True))
    library_with_labels = sum(m == e for m, e in zip(library, expected, strict=True))
    print(
        f"\nagreement with the expected labels: {with_labels}/{len(cases)} (math-verify: {library_with_labels}); "
        f"with math-verify itself: {with_library}/{len(cases)}"
    )
    misses = [
        f"{case['case']}: gold {case['gold'][:60]!r}, prediction {case['prediction'][-60:]!r}, expected "
        f"{case['expected']}"
        for case, o in zip(cases, ours, strict=True)
        if o != case["expected"]
    ]
    assert with_labels / len(cases) >= GOAL, "\n".join(misses)
    assert with_library / len(cases) >= GOAL
