"""The file-level commands (``mathcode-eval grade``, ``mathcode-pile verify``, ``mathcode-pile decontaminate``) on
hostile files: every good row is processed, every bad row is named with its file line and kept in the output (or
the report) with an ``error``, ``--strict`` stops at the first, nothing is left half-written, and numbers and
suffixes that would quietly mean something else are refused. Each test runs the real command on real files."""

from __future__ import annotations

import gzip
import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from evaluation.cli import main as eval_main
from mathcode_pile.cli import main as pile_main
from mathcode_pile.paths import benchmark_file, benchmarks_dir

BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True)
class Command:
    """How to run one file command and what a good and a bad row of its input look like."""

    name: str
    run: Callable[[list[str]], int]
    argv: Callable[[Path, Path], list[str]]
    good: tuple[dict[str, Any], dict[str, Any]]
    missing_field: dict[str, Any]  # lacks the field named in `missing`
    missing: str
    surrogate_field: str
    writes_error_rows: bool  # grade/verify: bad rows are output rows; decontaminate: they are listed in the report


def _grade_argv(source: Path, target: Path) -> list[str]:
    return ["grade", "--input", str(source), "--output", str(target)]


def _verify_argv(source: Path, target: Path) -> list[str]:
    return ["verify", "--input", str(source), "--output", str(target), "--workers", "1", "--timeout-s", "5"]


def _decontaminate_argv(source: Path, target: Path) -> list[str]:
    svamp = benchmark_file(benchmarks_dir(), "svamp_test")
    return ["decontaminate", "--input", str(source), "--output", str(target), "--benchmark", str(svamp)]


GRADE = Command(
    "grade",
    eval_main,
    _grade_argv,
    ({"prediction": "The answer is 72.", "answer": "72"}, {"prediction": "\\boxed{5}", "answer": "6"}),
    {"answer": "2"},
    "prediction",
    "prediction",
    True,
)
VERIFY = Command(
    "verify",
    pile_main,
    _verify_argv,
    ({"code": "print(3/4)", "result": "\\frac{3}{4}"}, {"code": "print(2)", "result": "3"}),
    {"code": "print(1)"},
    "result",
    "result",
    True,
)
DECONTAMINATE = Command(
    "decontaminate",
    pile_main,
    _decontaminate_argv,
    ({"id": "a", "text": "A train covers 120 km in 2 hours."}, {"id": "b", "text": "Clean page: 2 + 2 = 4."}),
    {"id": "c", "body": "no text here"},
    "text",
    "text",
    False,
)
COMMANDS = [GRADE, VERIFY, DECONTAMINATE]


def dumps(row: dict[str, Any]) -> bytes:
    return json.dumps(row).encode("utf-8")


#: file line -> what its error must say (line 2 is blank: it counts as a line and is skipped)
def hostile_lines(command: Command) -> tuple[list[bytes], dict[int, str]]:
    surrogate = {**command.good[0], command.surrogate_field: "half a pair: \ud800"}
    lines = [
        BOM + dumps(command.good[0]),  # 1: a BOM at file start is not part of the first row
        b"   ",  # 2: blank
        dumps(command.missing_field),  # 3
        dumps(surrogate),  # 4: json.dumps writes the lone surrogate as the escape \ud800
        b'{"text": "caf\xe9"}',  # 5: Latin-1, not UTF-8
        b'{"text": oops}',  # 6
        b"[1, 2, 3]",  # 7
        b"[" * 200_000 + b"]" * 200_000,  # 8: nested past the parser's recursion limit
        b'{"n": ' + b"7" * 5000 + b"}",  # 9: past Python's int-to-str digit limit
        dumps(command.good[1]),  # 10
    ]
    errors = {
        3: f"missing field '{command.missing}'" if command is not GRADE else f"field '{command.missing}' is missing",
        4: f"field '{command.surrogate_field}' holds a lone surrogate",
        5: "not valid UTF-8 (byte 0xe9",
        6: "invalid JSON: Expecting value",
        7: "expected a JSON object, got array",
        8: "nested too deeply",
        9: "invalid JSON: Exceeds the limit",
    }
    return lines, errors


def write_lines(path: Path, lines: list[bytes]) -> Path:
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def leftovers(folder: Path) -> list[str]:
    """Temporary files a command left behind."""
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def read_output(path: Path) -> list[dict[str, Any]]:
    if path.suffix == ".parquet":
        return pq.read_table(path).to_pylist()
    if path.suffix == ".json":
        return json.loads(path.read_text(encoding="utf-8"))
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


# -- every good row processed, every bad row named by its file line ----------------------------------------------


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c.name)
def test_every_bad_row_is_named_by_file_line_and_the_good_rows_are_processed(
    command: Command, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines, expected = hostile_lines(command)
    source = write_lines(tmp_path / "rows.jsonl", lines)
    target = tmp_path / "out.jsonl"
    assert command.run(command.argv(source, target)) == 1
    captured = capsys.readouterr()
    assert f"7 of 9 row(s) had errors (first: {source}:3: " in captured.err
    assert leftovers(tmp_path) == []
    if command.writes_error_rows:
        written = read_output(target)
        assert len(written) == 9  # every non-blank line once, in order: none lost, none doubled
        errors = {
            int(row["error"].split(":")[0].removeprefix("line ")): row["error"] for row in written if row["error"]
        }
        assert sorted(errors) == sorted(expected)
        for line, words in expected.items():
            assert words in errors[line], errors[line]
        good = [row for row in written if row["error"] is None]
        assert [row[command.surrogate_field] for row in good] == [r[command.surrogate_field] for r in command.good]
        surrogate_row = written[2]
        assert surrogate_row[command.surrogate_field] == "half a pair: \ufffd"  # stored, readably, as U+FFFD
    else:
        kept = read_output(target)
        assert [row["id"] for row in kept] == ["a", "b"]
        report = json.loads((tmp_path / "out.jsonl.report.json").read_text(encoding="utf-8"))
        assert report["input_docs"] == 2 and report["error_rows"] == 7
        assert {entry["where"]: entry["error"] for entry in report["errors"]}.keys() == {
            f"line {line}" for line in expected
        }
        for entry in report["errors"]:
            assert expected[int(entry["where"].removeprefix("line "))] in entry["error"]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c.name)
def test_strict_stops_at_the_first_bad_row_and_writes_nothing(
    command: Command, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines, _ = hostile_lines(command)
    source = write_lines(tmp_path / "rows.jsonl", lines)
    target = tmp_path / "out.parquet"
    assert command.run([*command.argv(source, target), "--strict"]) == 2
    error = capsys.readouterr().err
    assert f"{source}:3: " in error and "--strict" in error
    assert not target.exists() and not (tmp_path / "out.parquet.report.json").exists()
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c.name)
def test_the_real_console_script_on_a_hostile_file_ends_without_a_traceback(command: Command, tmp_path: Path) -> None:
    lines, _ = hostile_lines(command)
    source = write_lines(tmp_path / "rows.jsonl", lines)
    script = Path(sys.executable).with_name("mathcode-eval" if command is GRADE else "mathcode-pile")
    argv = [str(script), *command.argv(source, tmp_path / "out.json")]
    completed = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert completed.returncode == 1, completed.stderr
    assert "Traceback" not in completed.stderr
    assert "7 of 9 row(s) had errors" in completed.stderr


# -- outputs: suffixes, existing files, atomic writes -----------------------------------------------------------


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c.name)
def test_output_suffix_is_honoured_or_refused_before_any_work(
    command: Command, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = write_lines(tmp_path / "rows.jsonl", [dumps(row) for row in command.good])
    assert command.run(command.argv(source, tmp_path / "out.csv")) == 2
    assert "out.csv: unsupported output format '.csv' (use one of: .jsonl, .json, .parquet)" in capsys.readouterr().err
    assert not (tmp_path / "out.csv").exists() and leftovers(tmp_path) == []
    other = tmp_path / "rows.txt"
    other.write_bytes(source.read_bytes())
    assert command.run(command.argv(other, tmp_path / "out.jsonl")) == 2
    assert "unsupported input format '.txt'" in capsys.readouterr().err

    for suffix in (".json", ".parquet", ".jsonl"):
        target = tmp_path / f"out{suffix}"
        assert command.run(command.argv(source, target)) == 0
        written = read_output(target)  # parses as the format its suffix names
        assert len(written) == 2
    assert json.loads((tmp_path / "out.json").read_text(encoding="utf-8"))[0] == written[0]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c.name)
def test_an_existing_output_is_replaced_only_with_overwrite_and_never_the_input(
    command: Command, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = write_lines(tmp_path / "rows.jsonl", [dumps(row) for row in command.good])
    target = tmp_path / "out.jsonl"
    target.write_text("the user's own file\n", encoding="utf-8")
    assert command.run(command.argv(source, target)) == 2
    assert "out.jsonl exists; pass --overwrite to replace it" in capsys.readouterr().err
    assert target.read_text(encoding="utf-8") == "the user's own file\n"
    assert command.run([*command.argv(source, target), "--overwrite"]) == 0
    assert len(read_output(target)) == 2

    before = source.read_bytes()
    assert command.run([*command.argv(source, source), "--overwrite"]) == 2
    assert "would replace the input" in capsys.readouterr().err
    assert source.read_bytes() == before

    (tmp_path / "folder.jsonl").mkdir()
    assert command.run(command.argv(source, tmp_path / "folder.jsonl")) == 2
    assert "the output is a folder" in capsys.readouterr().err
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("", encoding="utf-8")
    assert command.run(command.argv(source, blocker / "out.jsonl")) == 2
    assert f"cannot write in {blocker}" in capsys.readouterr().err
    assert command.run(command.argv(tmp_path / "absent.jsonl", tmp_path / "new.jsonl")) == 2
    assert "input file not found" in capsys.readouterr().err
    assert leftovers(tmp_path) == []


def test_a_write_that_fails_late_leaves_the_previous_output_and_no_temporary_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # gold answers of two types in one column: only found when the Parquet file is written, after all grading
    rows = [{"prediction": "72", "answer": 72}, {"prediction": "x", "answer": "x"}]
    source = write_lines(tmp_path / "rows.jsonl", [dumps(row) for row in rows])
    target = tmp_path / "graded.parquet"
    pq.write_table(pa.table({"earlier": [1]}), target)
    assert eval_main([*_grade_argv(source, target), "--overwrite"]) == 2
    error = capsys.readouterr().err
    assert "column 'answer' cannot be written as Parquet" in error and "write .jsonl or .json instead" in error
    assert pq.read_table(target).to_pylist() == [{"earlier": 1}]  # untouched, not emptied
    assert leftovers(tmp_path) == []
    assert eval_main(_grade_argv(source, tmp_path / "graded.jsonl")) == 0  # JSON lines hold mixed types


def test_an_interrupted_command_leaves_no_output_and_no_temporary_file(tmp_path: Path) -> None:
    """Ctrl-C while a snippet runs: the command ends (once the running snippet hits its time limit) with exit 130,
    no output and no temporary file."""
    rows = [{"code": "print(1)", "result": "1"}, {"code": "import time\ntime.sleep(60)", "result": "1"}]
    source = write_lines(tmp_path / "rows.jsonl", [dumps(row) for row in rows])
    script = Path(sys.executable).with_name("mathcode-pile")
    argv = [str(script), *_verify_argv(source, tmp_path / "out.jsonl"), "--timeout-s", "8"]
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not leftovers(tmp_path) and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert leftovers(tmp_path), "the command never started writing"
        time.sleep(2)  # let the sandbox start the snippet that sleeps
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 130, stderr
    assert "interrupted" in stderr and "Traceback" not in stderr
    assert not (tmp_path / "out.jsonl").exists() and leftovers(tmp_path) == []


# -- numbers that would quietly mean something else ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "option", "value", "message"),
    [
        (VERIFY, "--rel-tol", "inf", "must be a finite number >= 0, got 'inf'"),
        (VERIFY, "--rel-tol", "nan", "must be a finite number >= 0, got 'nan'"),
        (VERIFY, "--rel-tol", "-0.1", "must be a finite number >= 0, got '-0.1'"),
        (VERIFY, "--abs-tol", "1e999", "must be a finite number >= 0, got '1e999'"),
        (VERIFY, "--workers", "-1", "must be >= 1, got '-1'"),
        (VERIFY, "--workers", "0", "must be >= 1, got '0'"),
        (VERIFY, "--timeout-s", "0", "must be a finite number > 0, got '0'"),
        (VERIFY, "--timeout-s", "nan", "must be a finite number >= 0, got 'nan'"),
        (VERIFY, "--memory-mb", "-5", "must be >= 1, got '-5'"),
        (GRADE, "--rel-tol", "inf", "must be a finite number >= 0, got 'inf'"),
        (GRADE, "--abs-tol", "nan", "must be a finite number >= 0, got 'nan'"),
        (GRADE, "--abs-tol", "-1", "must be a finite number >= 0, got '-1'"),
        (GRADE, "--num-proc", "0", "must be >= 1, got '0'"),
        (GRADE, "--num-proc", "two", "expected a whole number, got 'two'"),
        (DECONTAMINATE, "--num-proc", "-1", "must be >= 1, got '-1'"),
        (DECONTAMINATE, "--ngram", "0", "must be >= 1, got '0'"),
        (DECONTAMINATE, "--min-item-tokens", "-3", "must be >= 1, got '-3'"),
    ],
)
def test_out_of_range_numbers_are_refused_with_the_option_named(
    command: Command, option: str, value: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = write_lines(tmp_path / "rows.jsonl", [dumps(row) for row in command.good])
    with pytest.raises(SystemExit) as exited:
        command.run([*command.argv(source, tmp_path / "out.jsonl"), option, value])
    assert exited.value.code == 2
    assert f"argument {option}: {message}" in capsys.readouterr().err
    assert not (tmp_path / "out.jsonl").exists()


def test_verify_tolerances_are_applied_as_given(tmp_path: Path) -> None:
    source = write_lines(tmp_path / "rows.jsonl", [dumps({"code": "print(1000001)", "result": "1000000"})])
    assert VERIFY.run([*_verify_argv(source, tmp_path / "default.jsonl")]) == 0
    assert read_output(tmp_path / "default.jsonl")[0]["verified"] is True  # within the default rel-tol 1e-4
    assert VERIFY.run([*_verify_argv(source, tmp_path / "tight.jsonl"), "--rel-tol", "0", "--abs-tol", "0"]) == 0
    tight = read_output(tmp_path / "tight.jsonl")[0]
    assert tight["verified"] is False and tight["reason"].startswith("mismatch")


# -- other input formats ------------------------------------------------------------------------------------------


def test_grade_reads_gzip_json_lines_and_names_where_a_truncated_one_breaks_off(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = [{"prediction": str(i), "answer": str(i)} for i in range(2000)]
    payload = gzip.compress(b"".join(dumps(row) + b"\n" for row in rows))
    whole = tmp_path / "whole.jsonl.gz"
    whole.write_bytes(payload)
    assert eval_main(_grade_argv(whole, tmp_path / "whole.jsonl")) == 0
    assert len(read_output(tmp_path / "whole.jsonl")) == 2000
    cut = tmp_path / "cut.jsonl.gz"
    cut.write_bytes(payload[: len(payload) // 2])
    assert eval_main(_grade_argv(cut, tmp_path / "cut.jsonl")) == 1
    written = read_output(tmp_path / "cut.jsonl")
    assert all(row["correct"] for row in written[:-1]) and 0 < len(written) - 1 < 2000
    assert written[-1]["error"].startswith(f"line {len(written)}: the rest of the file cannot be read (EOFError")
    assert "the rest of the file cannot be read" in capsys.readouterr().err


def test_json_list_and_parquet_inputs_count_rows_from_one(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    listed = tmp_path / "rows.json"
    listed.write_bytes(BOM + json.dumps([{"prediction": "1", "answer": "1"}, "not a row", {"answer": "3"}]).encode())
    assert eval_main(_grade_argv(listed, tmp_path / "from_list.jsonl")) == 1
    errors = [row["error"] for row in read_output(tmp_path / "from_list.jsonl")]
    assert errors == [None, "row 2: expected a JSON object, got string", "row 3: field 'prediction' is missing"]
    assert f"{listed}: row 2: expected a JSON object" in capsys.readouterr().err

    listed.write_text('[{"prediction": "1", "answer": "1"},', encoding="utf-8")
    assert eval_main(_grade_argv(listed, tmp_path / "broken.jsonl")) == 2
    assert "rows.json: invalid JSON at line 1" in capsys.readouterr().err
    assert not (tmp_path / "broken.jsonl").exists()

    table = tmp_path / "rows.parquet"
    pq.write_table(pa.table({"prediction": ["1", None, "3"], "answer": ["1", "2", None]}), table)
    assert eval_main(_grade_argv(table, tmp_path / "from_parquet.jsonl")) == 1
    errors = [row["error"] for row in read_output(tmp_path / "from_parquet.jsonl")]
    assert errors == [None, None, "row 3: field 'answer' is missing"]

    truncated = tmp_path / "truncated.parquet"
    truncated.write_bytes(table.read_bytes()[:-40])
    assert eval_main(_grade_argv(truncated, tmp_path / "from_truncated.jsonl")) == 2
    assert "truncated.parquet: cannot be read as Parquet" in capsys.readouterr().err
    assert not (tmp_path / "from_truncated.jsonl").exists() and leftovers(tmp_path) == []


def test_row_numbers_are_file_lines_with_blank_lines_and_a_bom(tmp_path: Path) -> None:
    lines = [BOM, b"", dumps({"prediction": "1", "answer": "1"}), b"", b"", dumps({"prediction": "2"})]
    source = write_lines(tmp_path / "rows.jsonl", lines)
    assert eval_main(_grade_argv(source, tmp_path / "out.jsonl")) == 1
    assert [row["error"] for row in read_output(tmp_path / "out.jsonl")] == [
        None,
        "line 6: field 'answer' is missing",
    ]


def test_nul_bytes_and_huge_rows_pass_through(tmp_path: Path) -> None:
    rows = [
        {"code": "print('a\\x00b')", "result": "1", "note": "nul \x00 inside"},
        {"code": "print(5)", "result": "5", "note": "x" * 5_000_000},
    ]
    source = write_lines(tmp_path / "rows.jsonl", [dumps(row) for row in rows])
    assert VERIFY.run(_verify_argv(source, tmp_path / "out.parquet")) == 0
    written = read_output(tmp_path / "out.parquet")
    assert written[0]["note"] == "nul \x00 inside" and written[0]["exec_output"] == "a\x00b\n"
    assert len(written[1]["note"]) == 5_000_000 and written[1]["verified"] is True


def test_grade_in_worker_processes_writes_the_same_rows(tmp_path: Path) -> None:
    lines, _ = hostile_lines(GRADE)
    source = write_lines(tmp_path / "rows.jsonl", lines * 3)
    assert eval_main(_grade_argv(source, tmp_path / "one.jsonl")) == 1
    assert eval_main([*_grade_argv(source, tmp_path / "two.jsonl"), "--num-proc", "2"]) == 1
    assert read_output(tmp_path / "one.jsonl") == read_output(tmp_path / "two.jsonl")
    assert len(read_output(tmp_path / "two.jsonl")) == 27


def test_decontaminate_counts_a_contaminated_row_next_to_bad_ones(tmp_path: Path) -> None:
    from mathcode_pile.jsonl import read_jsonl

    svamp = read_jsonl(
        benchmark_file(Path(__file__).parents[1] / "mathcode_pile" / "data" / "benchmarks", "svamp_test")
    )
    lines, _ = hostile_lines(DECONTAMINATE)
    lines.append(dumps({"id": "copied", "text": f"Copied: {svamp[3]['question']}"}))
    source = write_lines(tmp_path / "rows.jsonl", lines)
    assert DECONTAMINATE.run(_decontaminate_argv(source, tmp_path / "clean.parquet")) == 1
    assert [row["id"] for row in read_output(tmp_path / "clean.parquet")] == ["a", "b"]
    report = json.loads((tmp_path / "clean.parquet.report.json").read_text(encoding="utf-8"))
    assert report["removed_docs"] == 1 and report["removed"][0]["doc_id"] == "copied"
    assert report["input_docs"] == 3 and report["kept_docs"] == 2 and report["error_rows"] == 7


def test_decontaminate_streams_parquet_and_a_field_null_in_the_first_rows_may_hold_text_later(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = [{"id": f"d{i}", "text": f"Clean page {i}.", "url": None if i < 600 else f"u{i}"} for i in range(700)]
    source = write_lines(tmp_path / "rows.jsonl", [dumps(row) for row in rows])
    assert DECONTAMINATE.run(_decontaminate_argv(source, tmp_path / "clean.parquet")) == 0
    assert read_output(tmp_path / "clean.parquet") == rows  # written in chunks of 512: the schema held

    rows[650]["extra"] = "a field the first rows lack"
    source = write_lines(tmp_path / "late.jsonl", [dumps(row) for row in rows])
    assert DECONTAMINATE.run(_decontaminate_argv(source, tmp_path / "late.parquet")) == 2
    assert "field 'extra' appears after the first rows were written without it" in capsys.readouterr().err
    assert not (tmp_path / "late.parquet").exists() and leftovers(tmp_path) == []


def test_a_row_error_quoting_a_huge_value_stays_short(tmp_path: Path) -> None:
    source = write_lines(tmp_path / "rows.jsonl", [dumps({"prediction": list(range(100_000)), "answer": "1"})])
    assert eval_main(_grade_argv(source, tmp_path / "out.jsonl")) == 1
    error = read_output(tmp_path / "out.jsonl")[0]["error"]
    assert error.startswith("line 1: field 'prediction' must be text or null") and len(error) <= 520
