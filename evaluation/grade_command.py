"""``mathcode-eval grade``: grade a file of predictions row by row, under the file-command rules.

Every row is graded on its own by :func:`evaluation.grading.grade_rows`, so one bad row (a missing field, a gold
answer the grader refuses, a grader failure) costs only itself: it is written back with an ``error`` naming its
line and field, and the command ends with a summary and exit status 1; ``--strict`` stops at the first one and
writes nothing (see :mod:`mathcode_pile.file_commands`). Graded rows get ``extracted``, ``correct``,
``grade_reason`` and ``error`` (null).
"""

from __future__ import annotations

import argparse
import sys
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from evaluation.grading import DEFAULT_ABS_TOL, DEFAULT_REL_TOL, GradingInputError, grade_rows, summarize_grades
from mathcode_pile.file_commands import (
    EXIT_FAILED,
    AtomicRowWriter,
    FileCommandError,
    InputRow,
    Outcome,
    RowErrors,
    add_file_command_options,
    check_paths,
    finite_non_negative,
    map_rows,
    positive_int,
    read_rows,
)

#: How a row is named to the grader; its messages start with ``<row>: row 0: `` and the file line replaces that.
_ROW_SOURCE = "<row>"
#: Rows sent to a worker process at a time (and graded per worker before the next rows are read).
_WORKER_ROWS = 64


@dataclass(frozen=True)
class GradeOptions:
    dataset: str | None = None
    prediction_field: str = "prediction"
    answer_field: str = "answer"
    rel_tol: float = DEFAULT_REL_TOL
    abs_tol: float = DEFAULT_ABS_TOL


def grade_record(record: dict[str, Any], options: GradeOptions) -> Outcome:
    """``(graded row, None)``, or ``(None, why)`` when the grader refuses the row or fails on it."""
    try:
        graded = grade_rows(
            [record],
            options.dataset,
            prediction_field=options.prediction_field,
            answer_field=options.answer_field,
            rel_tol=options.rel_tol,
            abs_tol=options.abs_tol,
            source=_ROW_SOURCE,
        )
    except GradingInputError as exc:
        return None, str(exc).removeprefix(f"{_ROW_SOURCE}: row 0: ")
    except Exception as exc:  # a grader failure on one row must not cost the others
        return None, f"grading failed: {type(exc).__name__}: {exc}"
    return {**graded[0], "error": None}, None


def _grade_records(records: list[dict[str, Any]], options: GradeOptions) -> list[Outcome]:
    return [grade_record(record, options) for record in records]


def grade_file(
    input_path: Path,
    output_path: Path,
    options: GradeOptions,
    *,
    num_proc: int = 1,
    strict: bool = False,
    overwrite: bool = False,
) -> tuple[list[dict[str, Any]], RowErrors]:
    """Grade every row of ``input_path`` into ``output_path``; returns the graded rows (errors left out) and the row
    errors. A file-level problem, or the first bad row with ``strict``, raises :class:`FileCommandError` and leaves
    ``output_path`` as it was."""
    input_format, output_format = check_paths(input_path, [output_path], overwrite=overwrite)
    errors = RowErrors(strict)
    graded: list[dict[str, Any]] = []
    pool = ProcessPoolExecutor(max_workers=num_proc, mp_context=get_context("spawn")) if num_proc > 1 else None

    def grade_chunk(rows: list[InputRow]) -> list[Outcome]:
        records = [row.record or {} for row in rows]
        if pool is None or len(records) < 2:
            return _grade_records(records, options)
        pieces = [records[start : start + _WORKER_ROWS] for start in range(0, len(records), _WORKER_ROWS)]
        return [outcome for piece in pool.map(_grade_records, pieces, [options] * len(pieces)) for outcome in piece]

    try:
        with AtomicRowWriter(output_path, output_format) as writer:
            chunk_rows = _WORKER_ROWS * max(1, num_proc)
            for out in map_rows(read_rows(input_path, input_format), grade_chunk, errors, chunk_rows=chunk_rows):
                graded.extend(row for row in out if row.get("error") is None)
                writer.write(out)
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    return graded, errors


def add_grade_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--input", required=True, type=Path, help="rows with prediction and answer (.jsonl/.jsonl.gz/.json/.parquet)"
    )
    parser.add_argument("--output", required=True, type=Path, help="where to write the graded rows (same formats)")
    parser.add_argument("--dataset", default=None, help="benchmark of every row without its own 'dataset' field")
    parser.add_argument("--prediction-field", default="prediction", help="column holding the model output")
    parser.add_argument("--answer-field", default="answer", help="column holding the gold answer")
    parser.add_argument(
        "--rel-tol", type=finite_non_negative, default=DEFAULT_REL_TOL, help="relative numeric tolerance"
    )
    parser.add_argument(
        "--abs-tol", type=finite_non_negative, default=DEFAULT_ABS_TOL, help="absolute numeric tolerance"
    )
    parser.add_argument("--num-proc", type=positive_int, default=1, help="grade in this many worker processes")
    add_file_command_options(parser)


def run_grade(args: argparse.Namespace) -> int:
    options = GradeOptions(args.dataset, args.prediction_field, args.answer_field, args.rel_tol, args.abs_tol)
    try:
        graded, errors = grade_file(
            args.input, args.output, options, num_proc=args.num_proc, strict=args.strict, overwrite=args.overwrite
        )
    except FileCommandError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    summary = summarize_grades(graded)
    for name, entry in summary["per_dataset"].items():
        print(f"{name}: {entry['correct']}/{entry['rows']} correct ({100 * entry['accuracy']:.1f}%)")
    print(f"total: {summary['correct']}/{summary['rows']} correct; decided by: {summary['reasons']}")
    print(f"graded rows written to {args.output}")
    problems = errors.summary(summary["rows"] + len(errors))
    if problems:
        print(f"{problems}; they are written with an 'error' field, not graded and not counted above", file=sys.stderr)
    return errors.exit_code
