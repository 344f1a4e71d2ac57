"""``mathcode-eval``: grade prediction files and run the MathCoder2 benchmark suite.

    mathcode-eval grade --input predictions.jsonl --output graded.jsonl [--dataset math] [--num-proc 4]
    mathcode-eval run --model smollm2 --limit 20
    mathcode-eval compare RUN_DIR... [--paper mathcoder2-ablation|mathcoder-table5]

``grade`` reads rows with ``prediction`` (a final answer or a whole solution) and ``answer`` (gold), optionally
``dataset``, from JSON Lines, a JSON list or Parquet, and writes them back with ``extracted``, ``correct`` and
``grade_reason`` (same formats, chosen by the output's extension), then prints accuracy per dataset. A bad row is
written back with an ``error`` and the command exits 1 (``--strict``: stops at the first, exit 2); see
:mod:`evaluation.grade_command`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from evaluation.grade_command import add_grade_arguments, run_grade
from mathcode_pile.file_commands import (
    INPUT_FORMATS,
    ROW_FORMATS,
    AtomicRowWriter,
    FileCommandError,
    row_format,
)
from mathcode_pile.file_commands import read_rows as read_input_rows

SUPPORTED_SUFFIXES = ROW_FORMATS
#: An input or output file the grader cannot read or write; the message names the file (and line).
FileFormatError = FileCommandError


def read_rows(path: Path) -> list[dict[str, Any]]:
    """Every row of a file that must be valid throughout (JSON lines, JSON list or Parquet); the first bad row raises
    :class:`FileFormatError` naming the file and line. ``grade`` instead marks bad rows and goes on."""
    if not path.is_file():
        raise FileFormatError(f"{path}: file not found")
    input_format = row_format(path, INPUT_FORMATS, "input")
    rows = []
    for row in read_input_rows(path, input_format):
        if row.problem is not None:
            raise FileFormatError(f"{row.where}: {row.problem}")
        rows.append(row.record or {})
    return rows


def write_rows(rows: list[dict[str, Any]], path: Path) -> None:
    """``rows`` to ``path`` in the format of its suffix, atomically (a failure leaves the file as it was)."""
    with AtomicRowWriter(path, row_format(path, ROW_FORMATS, "output")) as writer:
        writer.write(rows)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mathcode-eval", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    grade_parser = commands.add_parser("grade", help="grade a file of predictions against gold answers")
    add_grade_arguments(grade_parser)
    commands.add_parser(
        "run", help="run the MathCoder2 lm-eval suite (options: mathcode-eval run --help)", add_help=False
    )
    commands.add_parser(
        "compare", help="evaluation runs side by side with intervals and paper figures (mathcode-eval compare -h)",
        add_help=False,
    )  # fmt: skip
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments and arguments[0] == "run":
        from evaluation.run_eval import main as run_main

        return run_main(arguments[1:])
    if arguments and arguments[0] == "compare":
        from evaluation.compare import main as compare_main

        return compare_main(arguments[1:])
    args = build_parser().parse_args(arguments)
    return run_grade(args)


if __name__ == "__main__":
    sys.exit(main())
