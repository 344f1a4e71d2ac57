"""``mathcode-pile verify --input rows.jsonl --output checked.jsonl``: run and check snippets outside a build.

Each input row needs ``code`` (a Python snippet that prints its result) and ``result`` (the stated result, LaTeX or
text); every other field is passed through. The output has the same rows, in order, with ``exec_status``,
``exec_output``, ``verified``, ``reason`` and ``error`` (null) added. A row that cannot be checked (not JSON, not an
object, ``code`` or ``result`` missing or not text, invalid Unicode) is written back with the fields that could be
read and an ``error`` naming its line and the field; the command then ends with a summary and exit status 1, or with
``--strict`` stops at the first such row and writes nothing (:mod:`mathcode_pile.file_commands`). JSON lines
(``.jsonl``, ``.jsonl.gz`` input), a JSON list (``.json``) or Parquet, chosen by the file suffix.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections import Counter
from pathlib import Path
from typing import Any

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
    finite_positive,
    map_rows,
    positive_int,
    read_rows,
)

logger = logging.getLogger(__name__)

REQUIRED_FIELDS = ("code", "result")
BATCH_ROWS = 256


def invalid_field(row: dict[str, Any]) -> str | None:
    """Why a row cannot be checked (``missing field 'code'``), or None."""
    for name in REQUIRED_FIELDS:
        if name not in row or row[name] is None:
            return f"missing field '{name}'"
        if not isinstance(row[name], str | int | float) or isinstance(row[name], bool):
            return f"field '{name}' must be text, got {type(row[name]).__name__}"
    return None


def verify_file(
    input_path: Path,
    output_path: Path,
    limits: Any,
    settings: Any,
    workers: int | None = None,
    isolation: str = "auto",
    *,
    strict: bool = False,
    overwrite: bool = False,
) -> tuple[Counter[str], RowErrors]:
    """Check every row of ``input_path`` into ``output_path``; returns counts of outcomes (by reason code) and the
    row errors. A file-level problem, or the first bad row with ``strict``, raises :class:`FileCommandError` and
    leaves ``output_path`` as it was."""
    from mathcode_pile.sandbox import SandboxPool
    from mathcode_pile.translation.execution import check_snippet, run_snippets

    input_format, output_format = check_paths(input_path, [output_path], overwrite=overwrite)
    errors = RowErrors(strict)
    counts: Counter[str] = Counter()
    pools: list[SandboxPool] = []  # started with the first row to run: a file of bad rows starts no sandbox

    def check_chunk(rows: list[InputRow]) -> list[Outcome]:
        """Run the chunk's snippets at once, then judge each row alone: a check that raises is that row's error."""
        if not rows:
            return []
        if not pools:
            pools.append(SandboxPool(workers=workers, limits=limits, isolation=isolation))
        records = [row.record or {} for row in rows]
        results = run_snippets(pools[0], [str(record["code"]) for record in records], limits)
        outcomes: list[Outcome] = []
        for record, result in zip(records, results, strict=True):
            try:
                checked = check_snippet(result, str(record["result"]), settings)
            except Exception as exc:  # a checker failure on one row must not cost the others
                outcomes.append((None, f"the check failed: {type(exc).__name__}: {exc}"))
                continue
            counts[checked.reason_code] += 1
            outcomes.append(({**record, **checked.to_dict(), "error": None}, None))
        return outcomes

    try:
        with AtomicRowWriter(output_path, output_format) as writer:
            chunks = map_rows(
                read_rows(input_path, input_format), check_chunk, errors, chunk_rows=BATCH_ROWS, check=invalid_field
            )
            for out in chunks:
                counts["rows"] += len(out)
                counts["verified"] += sum(1 for row in out if row.get("verified"))
                writer.write(out)
    finally:
        for pool in pools:
            pool.close()
    return counts, errors


NAME = "verify"
HELP = "run snippets in the sandbox and check their printed output against stated results"


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """The ``verify`` subcommand's parser, added to ``subparsers`` (the command line lists it in ``cli.py``)."""
    parser: argparse.ArgumentParser = subparsers.add_parser(NAME, help=HELP, description=HELP)
    parser.add_argument(
        "--input", required=True, type=Path, help="rows with 'code' and 'result' (.jsonl/.jsonl.gz/.json/.parquet)"
    )
    parser.add_argument("--output", required=True, type=Path, help="where to write the checked rows (same formats)")
    parser.add_argument(
        "--timeout-s", type=finite_positive, default=10.0, help="wall-clock limit per snippet (default 10)"
    )
    parser.add_argument(
        "--memory-mb", type=positive_int, default=1024, help="memory a snippet may allocate (default 1024)"
    )
    parser.add_argument("--workers", type=positive_int, default=None, help="sandbox workers (default: CPU count)")
    parser.add_argument(
        "--isolation",
        choices=("auto", "namespaces", "process", "unsafe-hook-only"),
        default="auto",
        help="sandbox isolation; auto: namespaces as root, else Landlock + seccomp; unsafe-hook-only: no kernel layer",
    )
    parser.add_argument(
        "--rel-tol", type=finite_non_negative, default=1e-4, help="relative tolerance of the numeric check"
    )
    parser.add_argument(
        "--abs-tol", type=finite_non_negative, default=1e-6, help="absolute tolerance of the numeric check"
    )
    parser.add_argument(
        "--no-rounded-decimals", action="store_true", help="do not accept output that rounds to the stated decimal"
    )
    add_file_command_options(parser)
    return parser


def run(args: argparse.Namespace) -> int:
    """Check ``args.input`` into ``args.output``; the exit status says whether every row could be checked."""
    from mathcode_pile.sandbox import SandboxLimits
    from mathcode_pile.translation.verify import VerificationSettings

    try:
        limits = SandboxLimits(timeout_s=args.timeout_s, memory_mb=args.memory_mb)
        settings = VerificationSettings(
            rel_tol=args.rel_tol, abs_tol=args.abs_tol, match_rounded_decimals=not args.no_rounded_decimals
        )
        counts, errors = verify_file(
            args.input,
            args.output,
            limits,
            settings,
            args.workers,
            args.isolation,
            strict=args.strict,
            overwrite=args.overwrite,
        )
    except (FileCommandError, ValueError) as exc:
        print(f"mathcode-pile verify: error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    outcomes = ", ".join(f"{k}: {v}" for k, v in sorted(counts.items()) if k not in ("rows", "verified"))
    print(f"{counts['rows']} row(s), {counts['verified']} verified ({outcomes}); written to {args.output}")
    summary = errors.summary(counts["rows"])
    if summary:
        print(f"{summary}; they are written with an 'error' field and not run", file=sys.stderr)
    return errors.exit_code
