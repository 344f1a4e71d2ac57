"""``mathcode-eval``: grade prediction files and run the MathCoder2 benchmark suite.

    mathcode-eval grade --input predictions.jsonl --output graded.jsonl [--dataset math] [--num-proc 4]
    mathcode-eval run --model smollm2 --limit 20
    mathcode-eval compare RUN_DIR... [--paper mathcoder2-ablation|mathcoder-table5]

``grade`` reads rows with ``prediction`` (a final answer or a whole solution) and ``answer`` (gold), optionally
``dataset``, from JSON Lines, a JSON list or Parquet, and writes them back with ``extracted``, ``correct`` and
``grade_reason`` (same formats, chosen by the output's extension), then prints accuracy per dataset.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from evaluation.grading import DEFAULT_ABS_TOL, DEFAULT_REL_TOL, GradingInputError, grade_rows, summarize_grades
from mathcode_pile.jsonl import read_jsonl

SUPPORTED_SUFFIXES = (".jsonl", ".json", ".parquet")


class FileFormatError(ValueError):
    """An input or output file the grader cannot read or write; the message names the file."""


def read_rows(path: Path) -> list[dict[str, Any]]:
    """Rows of a JSON Lines, JSON (a list of objects) or Parquet file; errors name the file and line."""
    if not path.is_file():
        raise FileFormatError(f"{path}: file not found")
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        return read_jsonl(path, FileFormatError)
    if suffix == ".json":
        try:
            payload = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise FileFormatError(f"{path}: invalid JSON: {exc}") from exc
        if not isinstance(payload, list):
            raise FileFormatError(f"{path}: expected a JSON list of rows, got {type(payload).__name__}")
        return payload
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        return pq.read_table(path).to_pylist()
    raise FileFormatError(f"{path}: unsupported format '{suffix}' (use one of {', '.join(SUPPORTED_SUFFIXES)})")


def write_rows(rows: list[dict[str, Any]], path: Path) -> None:
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise FileFormatError(f"{path}: unsupported format '{suffix}' (use one of {', '.join(SUPPORTED_SUFFIXES)})")
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".jsonl":
        text = "".join(json.dumps(row, ensure_ascii=False, default=str) + "\n" for row in rows)
        path.write_text(text, encoding="utf-8")
    elif suffix == ".json":
        path.write_text(json.dumps(rows, ensure_ascii=False, indent=1, default=str) + "\n", encoding="utf-8")
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(rows), path)


def _run_grade(args: argparse.Namespace) -> int:
    input_path, output_path = Path(args.input), Path(args.output)
    rows = read_rows(input_path)
    graded = grade_rows(
        rows,
        dataset=args.dataset,
        prediction_field=args.prediction_field,
        answer_field=args.answer_field,
        rel_tol=args.rel_tol,
        abs_tol=args.abs_tol,
        num_proc=args.num_proc,
        source=str(input_path),
    )
    write_rows(graded, output_path)
    summary = summarize_grades(graded)
    for name, entry in summary["per_dataset"].items():
        print(f"{name}: {entry['correct']}/{entry['rows']} correct ({100 * entry['accuracy']:.1f}%)")
    print(f"total: {summary['correct']}/{summary['rows']} correct; decided by: {summary['reasons']}")
    print(f"graded rows written to {output_path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mathcode-eval", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    grade_parser = commands.add_parser("grade", help="grade a file of predictions against gold answers")
    grade_parser.add_argument("--input", required=True, help="rows with prediction and answer (.jsonl/.json/.parquet)")
    grade_parser.add_argument("--output", required=True, help="where to write the graded rows (same formats)")
    grade_parser.add_argument("--dataset", default=None, help="benchmark of every row without its own 'dataset' field")
    grade_parser.add_argument("--prediction-field", default="prediction", help="column holding the model output")
    grade_parser.add_argument("--answer-field", default="answer", help="column holding the gold answer")
    grade_parser.add_argument("--rel-tol", type=float, default=DEFAULT_REL_TOL, help="relative numeric tolerance")
    grade_parser.add_argument("--abs-tol", type=float, default=DEFAULT_ABS_TOL, help="absolute numeric tolerance")
    grade_parser.add_argument("--num-proc", type=int, default=1, help="grade in this many worker processes")
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
    try:
        return _run_grade(args)
    except (GradingInputError, FileFormatError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
