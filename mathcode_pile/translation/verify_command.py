"""``mathcode-pile verify --input rows.jsonl --output checked.jsonl``: run and check snippets outside a build.

Each input row needs ``code`` (a Python snippet that prints its result) and ``result`` (the stated result, LaTeX or
text); every other field is passed through. The output has the same rows, in order, with ``exec_status``,
``exec_output``, ``verified`` and ``reason`` added. A row lacking ``code`` or ``result`` (or holding something other
than text there) is written back with ``exec_status: skipped`` and a reason naming the field, logged with its file and
row, and counted; a line that is not JSON stops the command with an error naming file and line. JSON lines,
a JSON list or Parquet, chosen by the file suffix.
"""

from __future__ import annotations

import argparse
import json
import logging
from collections import Counter
from pathlib import Path
from typing import Any

from mathcode_pile.cli import register_subcommand
from mathcode_pile.config import RecipeError
from mathcode_pile.jsonl import read_jsonl

logger = logging.getLogger(__name__)

REQUIRED_FIELDS = ("code", "result")
BATCH_ROWS = 256


def read_rows(path: Path) -> list[dict[str, Any]]:
    """Rows of a JSON-lines, JSON-list or Parquet file; malformed input is a :class:`RecipeError` naming the place."""
    if not path.is_file():
        raise RecipeError(f"input file not found: {path}")
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        return pq.read_table(path).to_pylist()
    if path.suffix == ".json":
        try:
            rows = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise RecipeError(f"{path}: not valid JSON: {exc}") from exc
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise RecipeError(f"{path}: a .json input must hold a list of objects")
        return rows
    return read_jsonl(path, RecipeError, where="{path}:{line}", invalid="not valid JSON")


def write_rows(rows: list[dict[str, Any]], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(rows), path)
    elif path.suffix == ".json":
        path.write_text(json.dumps(rows, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    else:
        with path.open("w", encoding="utf-8") as handle:
            for row in rows:
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")


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
) -> Counter[str]:
    """Check every row of ``input_path`` into ``output_path``; returns counts of outcomes (by reason code)."""
    from mathcode_pile.sandbox import SandboxPool
    from mathcode_pile.translation.execution import execute_and_verify

    rows = read_rows(input_path)
    counts: Counter[str] = Counter()
    checkable: list[int] = []
    for index, row in enumerate(rows):
        problem = invalid_field(row)
        if problem is None:
            checkable.append(index)
            continue
        logger.warning("%s: row %d skipped: %s", input_path, index, problem)
        row.update(exec_status="skipped", exec_output="", verified=False, reason=f"invalid_row: {problem}")
        counts["invalid_row"] += 1
    if checkable:
        with SandboxPool(workers=workers, limits=limits, isolation=isolation) as pool:
            for start in range(0, len(checkable), BATCH_ROWS):
                batch = checkable[start : start + BATCH_ROWS]
                items = [(str(rows[i]["code"]), str(rows[i]["result"])) for i in batch]
                for index, checked in zip(batch, execute_and_verify(pool, items, limits, settings), strict=True):
                    rows[index].update(checked.to_dict())
                    counts[checked.reason_code] += 1
    write_rows(rows, output_path)
    counts["rows"] = len(rows)
    counts["verified"] = sum(1 for row in rows if row.get("verified"))
    return counts


@register_subcommand("verify", "run snippets in the sandbox and check their printed output against stated results")
def configure_verify(parser: argparse.ArgumentParser) -> Any:
    from mathcode_pile.sandbox import SandboxLimits
    from mathcode_pile.translation.verify import VerificationSettings

    parser.add_argument(
        "--input", required=True, type=Path, help="rows with 'code' and 'result' (.jsonl/.json/.parquet)"
    )
    parser.add_argument("--output", required=True, type=Path, help="where to write the checked rows (same formats)")
    parser.add_argument("--timeout-s", type=float, default=10.0, help="wall-clock limit per snippet (default 10)")
    parser.add_argument("--memory-mb", type=int, default=1024, help="memory a snippet may allocate (default 1024)")
    parser.add_argument("--workers", type=int, default=None, help="sandbox workers (default: CPU count)")
    parser.add_argument("--isolation", choices=("auto", "namespaces", "process"), default="auto")
    parser.add_argument("--rel-tol", type=float, default=1e-4, help="relative tolerance of the numeric check")
    parser.add_argument("--abs-tol", type=float, default=1e-6, help="absolute tolerance of the numeric check")
    parser.add_argument(
        "--no-rounded-decimals", action="store_true", help="do not accept output that rounds to the stated decimal"
    )

    def run(args: argparse.Namespace) -> int:
        try:
            limits = SandboxLimits(timeout_s=args.timeout_s, memory_mb=args.memory_mb)
            settings = VerificationSettings(
                rel_tol=args.rel_tol, abs_tol=args.abs_tol, match_rounded_decimals=not args.no_rounded_decimals
            )
        except ValueError as exc:
            raise RecipeError(str(exc)) from exc
        counts = verify_file(args.input, args.output, limits, settings, args.workers, args.isolation)
        outcomes = ", ".join(f"{k}: {v}" for k, v in sorted(counts.items()) if k not in ("rows", "verified"))
        print(f"{counts['rows']} row(s), {counts['verified']} verified ({outcomes}); written to {args.output}")
        return 0

    return run
