"""LCE evaluation results: the JSON written per run and the Markdown table that sets them beside MathCoder's Table 2.

The paper's figures are accuracies (%) from Table 2 of arXiv:2310.03731 (zero-shot, greedy, up to 32 LCE blocks);
the average is the mean of the five benchmarks, as in the paper.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from evaluation.lce.benchmarks import BENCHMARKS

#: Benchmark order of the paper's table.
TABLE_ORDER = ("gsm8k", "math", "svamp", "mathematics", "simuleq")

#: MathCoder, Table 2: GSM8K, MATH, SVAMP, Mathematics, SimulEq, Average.
PAPER_TABLE_2: dict[str, tuple[float, float, float, float, float, float]] = {
    "MathCoder-L-7B (Llama-2)": (64.2, 23.3, 71.5, 46.9, 47.5, 50.7),
    "MathCoder-CL-7B (CodeLlama)": (67.8, 30.2, 70.7, 55.8, 49.6, 54.8),
    "MathCoder-L-13B (Llama-2)": (72.6, 29.9, 76.9, 54.7, 62.3, 59.2),
    "MathCoder-CL-13B (CodeLlama)": (74.1, 35.9, 78.0, 62.5, 60.7, 62.2),
    "MathCoder-CL-34B (CodeLlama)": (81.7, 45.2, 82.5, 75.9, 65.8, 70.2),
    "MathCoder-L-70B (Llama-2)": (83.9, 45.1, 84.9, 74.4, 77.0, 73.1),
}


def save_results(results: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def load_results(path: Path) -> dict[str, Any]:
    try:
        results = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON: {exc}") from exc
    if not isinstance(results, dict) or not isinstance(results.get("benchmarks"), dict):
        raise ValueError(f"{path}: no 'benchmarks' mapping (expected an LCE evaluation results file)")
    return results


def _cell(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def render_comparison_table(results: dict[str, Any]) -> str:
    """Markdown: this run's accuracies (with problem counts) above the paper's rows.

    The run's average is shown only when all five benchmarks were evaluated, since an average over a subset is not
    comparable with the paper's.
    """
    benchmarks = results["benchmarks"]
    header = "| model | " + " | ".join(BENCHMARKS[name].title for name in TABLE_ORDER) + " | Average |"
    lines = [header, "|---|" + "---:|" * (len(TABLE_ORDER) + 1)]
    run_cells = []
    accuracies = []
    for name in TABLE_ORDER:
        entry = benchmarks.get(name)
        if entry is None:
            run_cells.append("-")
            continue
        accuracy = 100.0 * entry["accuracy"]
        accuracies.append(accuracy)
        run_cells.append(f"{accuracy:.1f} (n={entry['rows']})")
    average = sum(accuracies) / len(accuracies) if len(accuracies) == len(TABLE_ORDER) else None
    lines.append(
        f"| {results.get('model', 'this run')} (this run) | " + " | ".join(run_cells) + f" | {_cell(average)} |"
    )
    for model, figures in PAPER_TABLE_2.items():
        lines.append(f"| {model}, paper | " + " | ".join(_cell(v) for v in figures) + " |")
    limit = results.get("limit")
    note = (
        f"\nThis run evaluated the first {limit} problem(s) of each benchmark; the paper's cover the full test sets."
        if limit
        else ""
    )
    return "\n".join(lines) + "\n\nAccuracy (%). Paper rows: MathCoder (arXiv:2310.03731), Table 2." + note + "\n"
