"""Verification: printed output vs stated result (math-verify + tolerance), on real sandbox runs and via the CLI;
prose is no value; printed text that would make sympy compute without end is refused, counted and never loses a row,
in the ``mathcode-pile verify`` command and in the ``verify_computations`` stage, resumed from its cache too."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from datasets import Dataset

from mathcode_pile.sandbox import SandboxLimits, SandboxPool
from mathcode_pile.translation.execution import execute_and_verify
from mathcode_pile.translation.parser import parse_translation
from mathcode_pile.translation.verify import (
    OversizedValueError,
    Verdict,
    VerificationSettings,
    extract_printed_value,
    python_value_to_sympy,
    stated_result_candidates,
    verify_printed_output,
)

FIXTURES = Path(__file__).parent / "fixtures" / "translation"
LIMITS = SandboxLimits(timeout_s=2.0, memory_mb=512)


@pytest.fixture(scope="module")
def pool() -> Iterator[SandboxPool]:
    with SandboxPool(workers=2, limits=LIMITS) as sandbox_pool:
        yield sandbox_pool


@pytest.mark.parametrize(
    ("printed", "stated"),
    [
        ("0.75\n", "\\frac{3}{4}"),
        ("3/4\n", "$0.75$"),
        ("2.8284271\n", "2\\sqrt{2}"),
        ("2*sqrt(2)\n", "$2\\sqrt{2}$"),
        ("(1, 2)\n", "$(1, 2)$"),
        ("[1, 2, 3]\n", "1, 2, 3"),
        ("Interval.Ropen(1, 3)\n", "$[1, 3)$"),
        ("{1, 2}\n", "\\{1, 2\\}"),
        ("Matrix([[1, 2], [3, 4]])\n", "\\begin{pmatrix}1 & 2\\\\3 & 4\\end{pmatrix}"),
        ("x**2 + 1\n", "$x^2+1$"),
        ("3.141592653589793\n", "\\pi"),
        ("60.0\n", "60 km/h"),
        ("The speed is 60 km/h\n", "60"),
        ("17.0\n", "$17"),
        ("np.float64(0.25)\n", "25\\%"),
        ("0.3333333333\n", "0.3333"),  # rounds to the stated decimal
        ("3.14159\n", "2\\pi/2 \\approx 3.14"),
        ("step one\nstep two\n12\n", "x = 12"),  # last line, right-hand side of the stated equation
        ("[1,\n 2,\n 3]\n", "(1, 2, 3)"),  # one value printed over several lines
    ],
)
def test_equivalent_forms_verify(printed: str, stated: str) -> None:
    verdict = verify_printed_output(printed, stated)
    assert verdict.verified, verdict
    assert verdict.reason.startswith("match: ")


@pytest.mark.parametrize(
    ("printed", "stated", "reason"),
    [
        ("41\n", "42", "mismatch"),
        ("0.34\n", "0.3333", "mismatch"),
        ("(2, 1)\n", "(1, 2)", "mismatch"),
        ("", "3", "empty_output"),
        ("\n  \n", "3", "empty_output"),
        ("5\n", "", "no_stated_result"),
        ("5\n", "  .  ", "no_stated_result"),
        ("10**10**10\n", "5", "verify_error"),  # too large to build: refused, not computed
        ("factorial(5000)\n", "5", "verify_error"),
        ("binomial(10**7, 5*10**6)\n", "5", "verify_error"),
        ("1" * 3000 + "\n", "5", "verify_error"),
        ("Step 1 done\n", "1", "no_value"),
    ],
)
def test_non_matches_get_their_reason(printed: str, stated: str, reason: str) -> None:
    verdict = verify_printed_output(printed, stated)
    assert not verdict.verified and verdict.reason.split(":")[0] == reason


def test_tolerances_are_configurable() -> None:
    assert not verify_printed_output("100.5\n", "100").verified
    assert verify_printed_output("100.5\n", "100", VerificationSettings(rel_tol=0.01)).verified
    assert verify_printed_output("1e-9\n", "0").verified  # default absolute tolerance 1e-6
    assert not verify_printed_output("1e-9\n", "0", VerificationSettings(abs_tol=0.0)).verified
    assert verify_printed_output("0.33334\n", "0.3333").verified  # rounds to the stated 4 decimals
    strict = VerificationSettings(match_rounded_decimals=False)
    assert not verify_printed_output("0.33334\n", "0.3333", strict).verified
    with pytest.raises(ValueError, match="rel_tol"):
        VerificationSettings(rel_tol=-1)


@pytest.mark.parametrize(
    ("printed", "stated", "verified"),
    [
        # prose holding one number says nothing about the result
        ("/srv/runs/pytest-0/test_0/out.txt\n", "0", False),
        ("Step 1 done\n", "1", False),
        ("Error at index 0\n", "0", False),
        ("Processed 3 files\n", "3", False),
        # value forms still verify
        ("x = 5\n", "5", True),
        ("Total: 17\n", "17", True),
        ("The answer is 17\n", "17", True),
        ("The speed is 60 km/h\n", "60", True),
        ("17 apples\n", "17", True),
    ],
)
def test_a_line_of_prose_is_not_a_value(printed: str, stated: str, verified: bool) -> None:
    verdict = verify_printed_output(printed, stated)
    assert verdict.verified is verified, verdict
    if not verified:
        assert verdict.reason == "no_value"


def test_printed_text_is_never_evaluated() -> None:
    """Code-shaped output is read as data: the call below would create a file if anything evaluated it."""
    marker = Path("/tmp/mathcode-verify-evaluated-0")
    marker.unlink(missing_ok=True)
    printed = "__import__('pathlib').Path('/tmp/mathcode-verify-evaluated-0').touch()\n"
    assert verify_printed_output(printed, "0") == Verdict(False, "no_value", printed.strip())
    with pytest.raises(ValueError):
        python_value_to_sympy(printed.strip())
    assert not marker.exists()


def test_values_are_bounded_before_they_are_computed() -> None:
    """Digits of every exact number, powers, factorials and binomials are checked before sympy builds them."""
    for text, message in [
        ("factorial(5000)", "factorial argument 5000 exceeds"),
        ("binomial(10**7, 5*10**6)", "binomial(10000000, 5000000)"),
        ("2**100000", "power"),
        ("(10**600)*(10**600)", "digits"),
        ("Integer(1e2000)", "digits"),
    ]:
        with pytest.raises(OversizedValueError, match=message.replace("(", "\\(").replace(")", "\\)")):
            python_value_to_sympy(text)
    assert python_value_to_sympy("factorial(10)") == 3628800
    assert python_value_to_sympy("binomial(100, 50)") == 100891344545564193334812497256
    assert python_value_to_sympy("2**1000") == 2**1000


def test_verification_works_in_any_thread() -> None:
    verdicts: list[Verdict] = []
    thread = threading.Thread(target=lambda: verdicts.append(verify_printed_output("2*sqrt(2)\n", "2\\sqrt{2}")))
    thread.start()
    thread.join()
    assert verdicts == [Verdict(True, "match: exact", "2*sqrt(2)")]


def test_value_extraction_and_stated_readings() -> None:
    assert extract_printed_value("a\n\n b \n") == "b"
    assert extract_printed_value("[1,\n 2]\n") == "[1, 2]"
    assert extract_printed_value("  ") is None
    assert stated_result_candidates("$x = 2\\sqrt{2} \\approx 2.83$.") == ["2\\sqrt{2}", "2.83"]
    assert stated_result_candidates("$17$") == ["17"]


def _fixture_cases() -> list[dict[str, object]]:
    return [json.loads(line) for line in (FIXTURES / "responses.jsonl").read_text(encoding="utf-8").splitlines()]


@pytest.mark.parametrize("case", _fixture_cases(), ids=lambda case: str(case["name"]))
def test_paper_format_responses_end_to_end(pool: SandboxPool, case: dict[str, object]) -> None:
    computations = parse_translation(str(case["response"])).computations
    checked = execute_and_verify(pool, [(c.code, c.result) for c in computations], LIMITS, VerificationSettings())
    expected = case["expected"]
    assert isinstance(expected, list)
    assert [(c.exec_status, c.verified, c.reason_code) for c in checked] == [
        (e["exec_status"], e["verified"], e["reason"]) for e in expected
    ]
    for snippet in checked:
        if snippet.reason_code == "exec_error":
            assert "ZeroDivisionError" in snippet.reason
        if snippet.reason_code == "exec_timeout":
            assert "wall time limit" in snippet.reason


def test_sandbox_results_are_cached_by_code_and_limits(pool: SandboxPool, tmp_path: Path) -> None:
    from mathcode_pile.llm.cache import RequestCache

    cache = RequestCache(tmp_path / "sandbox.sqlite")
    code = "import random\nprint(random.random())"  # a different answer on every real run
    first = execute_and_verify(pool, [(code, "0.5")], LIMITS, VerificationSettings(), cache)
    second = execute_and_verify(pool, [(code, "0.5")], LIMITS, VerificationSettings(), cache)
    assert first[0].exec_output == second[0].exec_output and len(cache) == 1
    other_limits = execute_and_verify(pool, [(code, "0.5")], LIMITS.with_timeout(3.0), VerificationSettings(), cache)
    assert other_limits[0].exec_output != first[0].exec_output and len(cache) == 2
    cache.close()


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """The installed ``mathcode-pile`` console script, as a user runs it."""
    command = Path(sys.executable).with_name("mathcode-pile")
    return subprocess.run([str(command), "verify", *args], capture_output=True, text=True, timeout=300)


def test_verify_command_writes_rows_back(tmp_path: Path) -> None:
    rows = [
        {"id": "a", "code": "print(3/4)", "result": "\\frac{3}{4}", "source": "kept as is"},
        {"id": "b", "code": "print(1/0)", "result": "1"},
        {"id": "c", "code": "x = 1", "result": "1"},
        {"id": "d", "code": "while True:\n    pass", "result": "1"},
        {"id": "e", "result": "5"},  # no code: written back as skipped, not lost
        {"id": "f", "code": "print((2, 1))", "result": "(2, 1)"},
    ]
    source = tmp_path / "rows.jsonl"
    source.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    target = tmp_path / "checked.parquet"
    completed = run_cli("--input", str(source), "--output", str(target), "--timeout-s", "1.5", "--workers", "2")
    assert completed.returncode == 1, completed.stderr  # one row could not be checked
    assert "6 row(s), 2 verified" in completed.stdout
    assert f"{source}:5: missing field 'code'" in completed.stderr
    assert f"1 of 6 row(s) had errors (first: {source}:5: missing field 'code')" in completed.stderr

    import pyarrow.parquet as pq

    written = pq.read_table(target).to_pylist()
    assert [row["id"] for row in written] == ["a", "b", "c", "d", "e", "f"]
    assert written[0]["source"] == "kept as is"
    assert [(row["exec_status"], row["verified"]) for row in written] == [
        ("ok", True),
        ("error", False),
        ("ok", False),
        ("timeout", False),
        (None, None),  # not run: marked with its error
        ("ok", True),
    ]
    assert written[0]["exec_output"] == "0.75\n" and written[0]["reason"] == "match: numeric"
    assert written[1]["reason"] == "exec_error: ZeroDivisionError: division by zero"
    assert written[2]["reason"] == "empty_output"
    assert written[3]["reason"].startswith("exec_timeout")
    assert written[4]["error"] == "line 5: missing field 'code'" and written[4]["result"] == "5"
    assert [row["error"] for row in written[:4]] == [None] * 4


def test_verify_command_names_file_and_line_of_bad_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from mathcode_pile.cli import main

    source = tmp_path / "broken.jsonl"
    source.write_text('{"code": "print(1)", "result": "1"}\n{"code": oops}\n', encoding="utf-8")
    assert main(["verify", "--input", str(source), "--output", str(tmp_path / "out.jsonl"), "--strict"]) == 2
    assert f"{source}:2: invalid JSON" in capsys.readouterr().err
    assert not (tmp_path / "out.jsonl").exists()
    assert main(["verify", "--input", str(tmp_path / "absent.jsonl"), "--output", str(tmp_path / "out.jsonl")]) == 2
    assert "input file not found" in capsys.readouterr().err


def test_a_printed_tuple_is_compared_as_a_whole() -> None:
    assert not verify_printed_output("(29.333333333333336, 9.64)\n", "4.86 x 20 = 9.64").verified
    assert verify_printed_output("(29.333333333333336, 9.64)\n", "(29.33, 9.64)").verified


# -- printed text that would hang or crash the verifier -------------------------------------------------------------

#: The two printed values that crashed (int-to-str limit) and hung (100% CPU for minutes) the previous verifier.
HOSTILE_SNIPPETS = [
    ("print('factorial(5000)')", "5", "verify_error: factorial argument 5000 exceeds"),
    ("print('binomial(10**7, 5*10**6)')", "5", "verify_error: binomial(10000000, 5000000) would pass"),
]


def test_verify_command_counts_unjudgeable_rows_and_writes_every_row(tmp_path: Path) -> None:
    rows = [
        {"id": "before", "code": "print(3/4)", "result": "\\frac{3}{4}"},
        *(
            {"id": f"hostile-{index}", "code": code, "result": stated}
            for index, (code, stated, _) in enumerate(HOSTILE_SNIPPETS)
        ),
        {"id": "after", "code": "print(7 * 8)", "result": "56"},
    ]
    source = tmp_path / "rows.jsonl"
    source.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    target = tmp_path / "checked.jsonl"
    completed = run_cli("--input", str(source), "--output", str(target), "--timeout-s", "5", "--workers", "2")
    assert completed.returncode == 0, completed.stderr
    assert "4 row(s), 2 verified" in completed.stdout and "verify_error: 2" in completed.stdout
    written = [json.loads(line) for line in target.read_text(encoding="utf-8").splitlines()]
    assert [row["id"] for row in written] == ["before", "hostile-0", "hostile-1", "after"]
    assert [row["verified"] for row in written] == [True, False, False, True]
    for row, (_, _, reason) in zip(written[1:3], HOSTILE_SNIPPETS, strict=True):
        assert row["exec_status"] == "ok" and row["reason"].startswith(reason), row


def _hostile_documents() -> Dataset:
    def computation(code: str, stated: str) -> str:
        return (
            f"Computation 1\nConditions Needed: a count.\nComputation Expression: $n$\nComputation Result: {stated}\n"
            f"Python Code Snippet:\n```python\n{code}\n```\n"
        )

    responses = [computation(code, stated) for code, stated, _ in HOSTILE_SNIPPETS]
    responses.insert(1, computation("print(7 * 8)", "56"))
    return Dataset.from_dict(
        {
            "id": ["doc-factorial", "doc-between", "doc-binomial"],
            "text": ["Five thousand factorial.", "Seven eights are 56.", "A large binomial."],
            "source": ["hostile", "plain", "hostile"],
            "metadata": [json.dumps({"kind": "math_text"})] * 3,
            "translation_response": responses,
        }
    )


def test_verify_stage_counts_unjudgeable_computations_and_loses_no_row_also_when_resumed(tmp_path: Path) -> None:
    from mathcode_pile.runner import run_stage
    from mathcode_pile.stages.base import StageContext
    from mathcode_pile.stages.parse_computations import ParseComputationsConfig, ParseComputationsStage
    from mathcode_pile.stages.verify_computations import VerifyComputationsConfig, VerifyComputationsStage

    work = tmp_path / "work"

    def run_verify() -> tuple[Dataset, dict[str, int], VerifyComputationsStage]:
        context = StageContext(work_dir=work)
        parsed = run_stage(
            ParseComputationsStage(ParseComputationsConfig(), context),
            _hostile_documents(),
            "hostile",
            work / "0_parse_computations",
            shard_rows=2,
        )
        stage = VerifyComputationsStage(VerifyComputationsConfig(verify_timeout_s=5, verify_workers=2), context)
        result = run_stage(stage, parsed.dataset, parsed.fingerprint, work / "1_verify_computations", shard_rows=2)
        return result.dataset, dict(result.stats.extra), stage

    dataset, counts, _ = run_verify()
    assert counts["verify/verify_error"] == 2 and counts["funnel/ran_ok/hostile"] == 2
    assert counts["funnel/verified/plain"] == 1 and "funnel/verified/hostile" not in counts
    verdicts = {row["id"]: json.loads(row["computations"])[0] for row in dataset}
    assert sorted(verdicts) == ["doc-between", "doc-binomial", "doc-factorial"]
    assert verdicts["doc-factorial"]["reason"].startswith(HOSTILE_SNIPPETS[0][2])
    assert verdicts["doc-binomial"]["reason"].startswith(HOSTILE_SNIPPETS[1][2])
    assert verdicts["doc-between"]["verified"]

    for marker in (work / "1_verify_computations").glob("*.done.json"):
        marker.unlink()
    resumed, resumed_counts, stage = run_verify()
    assert stage._pool is None  # every sandbox result came from the cache; the verdicts were judged again
    assert resumed_counts == counts
    assert {row["id"]: json.loads(row["computations"])[0] for row in resumed} == verdicts
