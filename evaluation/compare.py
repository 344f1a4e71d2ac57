"""``mathcode-eval compare``: put evaluation runs side by side, with their intervals and the paper's figures.

    mathcode-eval compare RUN_DIR [RUN_DIR ...] [--paper mathcoder2-ablation|mathcoder-table5] [--output DIR]

Each RUN_DIR is the output folder of ``make eval``, ``make eval-lce`` or ``make eval-tir`` (or its ``results.json``);
the first run is the reference the others are measured against. Writes ``comparison.md`` and ``comparison.png``
into ``--output`` (default ``outputs/comparison``) and prints the table.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

DEFAULT_OUTPUT = Path("outputs") / "comparison"


def build_parser() -> argparse.ArgumentParser:
    from evaluation.paper_results import PAPER_ABLATIONS

    parser = argparse.ArgumentParser(prog="mathcode-eval compare", description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", metavar="RUN_DIR", help="evaluation output folders; the first is the base")
    parser.add_argument("--paper", choices=sorted(PAPER_ABLATIONS), help="set this paper table's figures beside")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help=f"folder to write ({DEFAULT_OUTPUT})")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from evaluation.comparison import ComparisonError, load_runs, write_comparison
    from evaluation.paper_results import PAPER_ABLATIONS

    args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    try:
        runs = load_runs(args.runs)
    except ComparisonError as exc:
        print(f"mathcode-eval compare: error: {exc}", file=sys.stderr)
        return 2
    paper = PAPER_ABLATIONS[args.paper] if args.paper else None
    markdown, plot, table = write_comparison(runs, args.output, paper)
    print(table)
    print(f"table: {markdown}  plot: {plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
