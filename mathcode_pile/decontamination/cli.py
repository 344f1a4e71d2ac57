"""``mathcode-pile decontaminate``: remove documents that contain benchmark test items from a JSONL/Parquet file.

Example::

    mathcode-pile decontaminate --input docs.jsonl --output clean.jsonl \\
        --benchmark my_tests/ --benchmark openai/gsm8k:main

Without ``--benchmark`` the bundled benchmark folder (``mathcode_pile.paths.benchmarks_dir()``) is used. Rows that
cannot be checked are listed in the report and make the command exit 1 (``--strict``: stop at the first, exit 2).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from mathcode_pile.file_commands import EXIT_FAILED, add_file_command_options, positive_int


def default_benchmarks() -> list[str]:
    """The offline default: every test set in the bundled benchmark folder."""
    from mathcode_pile.paths import benchmarks_dir

    return [str(benchmarks_dir())]


NAME = "decontaminate"
HELP = "remove documents containing benchmark test items (n-gram index) + JSON report"


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """The ``decontaminate`` subcommand's parser, added to ``subparsers`` (the command line lists it in ``cli.py``)."""
    parser: argparse.ArgumentParser = subparsers.add_parser(NAME, help=HELP, description=HELP)
    parser.add_argument("--input", required=True, help="documents, one per row: .jsonl, .jsonl.gz, .json or .parquet")
    parser.add_argument("--output", required=True, help="kept rows: .jsonl, .json or .parquet (by suffix)")
    parser.add_argument(
        "--benchmark",
        action="append",
        default=None,
        metavar="PATH_OR_HUB_ID",
        help="benchmark file, folder of files, or Hub id[:config[:split]] (repeatable; default: bundled test sets)",
    )
    parser.add_argument("--report", default=None, help="JSON report path (default: <output>.report.json)")
    parser.add_argument("--ngram", type=positive_int, default=13, help="n-gram size in normalized tokens (default 13)")
    parser.add_argument(
        "--min-item-tokens",
        type=positive_int,
        default=8,
        help="test items shorter than this are too generic to match alone (counted in the report; default 8)",
    )
    parser.add_argument("--include-solutions", action="store_true", help="also index the benchmarks' solutions")
    parser.add_argument("--text-field", default="text", help="field holding the document text (default: text)")
    parser.add_argument("--id-field", default="id", help="field naming the document in the report (default: id)")
    parser.add_argument("--num-proc", type=positive_int, default=1, help="worker processes (default 1)")
    add_file_command_options(parser)
    return parser


def run(args: argparse.Namespace) -> int:
    """Decontaminate ``args.input`` into ``args.output``; the exit status says whether every row could be checked."""
    from mathcode_pile.decontamination.benchmarks import BenchmarkError
    from mathcode_pile.decontamination.run import build_index, decontaminate_file, output_paths
    from mathcode_pile.file_commands import FileCommandError, check_paths

    try:
        # paths first: a refused output must not wait for the index to be built
        check_paths(Path(args.input), list(output_paths(args.output, args.report)), overwrite=args.overwrite)
        index = build_index(
            args.benchmark or default_benchmarks(), args.ngram, args.min_item_tokens, args.include_solutions
        )
        report = decontaminate_file(
            args.input,
            args.output,
            index,
            text_field=args.text_field,
            id_field=args.id_field,
            report_path=args.report,
            num_proc=args.num_proc,
            strict=args.strict,
            overwrite=args.overwrite,
        )
    except (BenchmarkError, FileCommandError, FileNotFoundError, ValueError) as exc:
        print(f"mathcode-pile decontaminate: error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    summary = report.to_dict()
    print(
        f"{summary['input_docs']} document(s) in, {summary['removed_docs']} removed "
        f"{report.removed_per_benchmark}, {summary['kept_docs']} written to {args.output}"
    )
    problems = report.row_errors.summary(summary["input_docs"] + summary["error_rows"])
    if problems:
        print(f"{problems}; those rows are not in the output, the report lists them", file=sys.stderr)
    return report.row_errors.exit_code
