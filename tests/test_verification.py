"""Verification: printed output vs stated result (math-verify + tolerance), on real sandbox runs and via the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from mathcode_pile.sandbox import SandboxLimits, SandboxPool
from mathcode_pile.translation.execution import execute_and_verify
from mathcode_pile.translation.parser import parse_translation
from mathcode_pile.translation.verify import (
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
        ("10**10**10\n", "5", "mismatch"),  # too large to build: refused, not computed
    ],
)
def test_non_matches_get_their_reason(printed: str, stated: str, reason: str) -> None:
    verdict = verify_printed_output(printed, stated)
    assert not verdict.verified and verdict.reason == reason


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


def test_printed_text_is_never_evaluated(tmp_path: Path) -> None:
    marker = tmp_path / "evaluated"
    printed = f"__import__('pathlib').Path({str(marker)!r}).touch()\n"
    assert not verify_printed_output(printed, "0").verified
    with pytest.raises(ValueError):
        python_value_to_sympy(printed.strip())
    assert not marker.exists()


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
