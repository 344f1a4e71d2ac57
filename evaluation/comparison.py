"""Several evaluation runs in one table and one plot: the ablation tables of both papers, reproduced.

A run is a folder with the ``results.json`` of any of the project's evaluations: ``make eval`` and ``make eval-tir``
(lm-eval scores in a ``mathcode`` block, :mod:`evaluation.run_eval`) or ``make eval-lce`` (per-benchmark counts,
:mod:`evaluation.lce.evaluate`). Every accuracy is shown with its Wilson 95% interval (computed by
:mod:`evaluation.results_table`, the one place that does), its difference from the first run in percentage points and
whether the two intervals overlap: overlapping intervals mean the runs do not tell the settings apart, whatever the
point estimates say. Each run is named by what it was trained on, read from the ``run_info.json`` its trainer wrote
beside the model (or the model card's metadata), so a table of post-trained models says what was trained on what. With
a paper table (:data:`evaluation.paper_results.PAPER_ABLATIONS`) the paper's figure for the matching row stands
beside each run; a cell the paper does not give (or that could not be confirmed) stays empty.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evaluation.paper_results import AVERAGE, BENCHMARK_TITLES, PaperAblation, PaperRow
from evaluation.results_table import BenchmarkScore, format_accuracy, intervals_overlap, load_scores, make_score

RESULTS_FILE = "results.json"
COMPARISON_TABLE = "comparison.md"
COMPARISON_PLOT = "comparison.png"


class ComparisonError(ValueError):
    """A run folder or results file that cannot be compared; the message names it."""


@dataclass
class EvaluatedRun:
    """One evaluation run: its scores per benchmark and what the evaluated model was trained on."""

    results_path: Path
    suite: str
    model: str
    scores: dict[str, BenchmarkScore]
    limit: int | None = None
    base_model: str | None = None
    training_data: list[str] = field(default_factory=list)
    ablation: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    label: str = ""


def benchmark_title(benchmark: str) -> str:
    from evaluation.lce.benchmarks import BENCHMARKS

    if benchmark in BENCHMARK_TITLES:
        return BENCHMARK_TITLES[benchmark]
    return BENCHMARKS[benchmark].title if benchmark in BENCHMARKS else benchmark


def _results_path(run: Path) -> Path:
    path = run / RESULTS_FILE if run.is_dir() else run
    if not path.is_file():
        raise ComparisonError(f"{run}: no {RESULTS_FILE} (give the output folder of make eval, eval-lce or eval-tir)")
    return path


def _scores_of_lce_run(path: Path, benchmarks: dict[str, Any]) -> dict[str, BenchmarkScore]:
    scores = {}
    for name, entry in benchmarks.items():
        try:
            correct, rows = int(entry["correct"]), int(entry["rows"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ComparisonError(f"{path}: benchmark '{name}' lacks integer 'correct' and 'rows'") from exc
        if rows > 0:
            scores[name] = make_score(name, correct, rows)
    return scores


def _model_folders(model: str, results_path: Path) -> list[Path]:
    """Where the trainer of the evaluated model left its files: the model folder, or the folder an evaluation of a
    model trained here was written into (``<model>/eval_lce``)."""
    folders = [Path(model)] if model and Path(model).is_dir() else []
    folders += [results_path.parent.parent]
    return folders


def _training_facts(run: EvaluatedRun) -> None:
    """Fill in base model, training data, ablation and settings from ``run_info.json`` or the model card."""
    from training.run_info import read_run_info

    for folder in _model_folders(run.model, run.results_path):
        info = read_run_info(folder)
        if info is not None:
            run.base_model = info.get("base_model") or None
            run.training_data = [str(item) for item in info.get("training_data") or []]
            run.ablation = info.get("ablation")
            run.settings = dict(info.get("settings") or {})
            return
    for folder in _model_folders(run.model, run.results_path):
        readme = folder / "README.md"
        if readme.is_file():
            from huggingface_hub import ModelCard

            try:
                data = ModelCard.load(readme).data.to_dict()
            except Exception:  # not a model card: nothing to learn from it
                continue
            run.base_model = data.get("base_model") or None
            run.training_data = [str(item) for item in data.get("datasets") or []]
            return


def load_run(run: str | Path) -> EvaluatedRun:
    """Read one run folder (or its ``results.json``)."""
    path = _results_path(Path(run))
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ComparisonError(f"{path}: not valid JSON: {exc}") from exc
    if not isinstance(payload, dict):
        raise ComparisonError(f"{path}: expected a JSON object")
    block = payload.get("mathcode")
    if isinstance(block, dict) and "scores" in block:
        try:
            scores = {score.benchmark: score for score in load_scores(path)}
        except (TypeError, ValueError) as exc:
            raise ComparisonError(f"{path}: unreadable 'mathcode.scores': {exc}") from exc
        details = block.get("run") if isinstance(block.get("run"), dict) else {}
        evaluated = EvaluatedRun(
            path, str(block.get("suite") or "lm-eval"), str(details.get("model", "")), scores, details.get("limit")
        )
    elif isinstance(payload.get("benchmarks"), dict):
        scores = _scores_of_lce_run(path, payload["benchmarks"])
        evaluated = EvaluatedRun(path, "lce", str(payload.get("model", "")), scores, payload.get("limit"))
    else:
        raise ComparisonError(
            f"{path}: neither a 'mathcode.scores' block (make eval / eval-tir) nor a 'benchmarks' mapping (eval-lce)"
        )
    if not evaluated.scores:
        raise ComparisonError(f"{path}: the run scored no benchmark")
    _training_facts(evaluated)
    return evaluated


def _model_name(model: str) -> str:
    reference = model.rstrip("/")
    return Path(reference).name if Path(reference).is_dir() else reference


def load_runs(runs: Sequence[str | Path]) -> list[EvaluatedRun]:
    """Every run, each labelled by its ablation name or model name (made unique by its position when repeated)."""
    if not runs:
        raise ComparisonError("give at least one run folder")
    loaded = [load_run(run) for run in runs]
    labels = [run.ablation or _model_name(run.model) or run.results_path.parent.name for run in loaded]
    for index, run in enumerate(loaded):
        run.label = labels[index] if labels.count(labels[index]) == 1 else f"{labels[index]} ({index + 1})"
    return loaded


def benchmark_order(runs: Sequence[EvaluatedRun]) -> list[str]:
    """Every benchmark of the runs, each once, in the papers' order (MathCoder2's, then MathCoder's, then others)."""
    from evaluation.lce.report import TABLE_ORDER

    known = list(BENCHMARK_TITLES) + [name for name in TABLE_ORDER if name not in BENCHMARK_TITLES]
    present = {name for run in runs for name in run.scores}
    return [name for name in known if name in present] + sorted(present - set(known))


def average_benchmarks(runs: Sequence[EvaluatedRun], paper: PaperAblation | None) -> tuple[str, ...]:
    """What the average row covers: the paper's set when every run has it, else the benchmarks all runs share."""
    if paper is not None and all(set(paper.average_over) <= set(run.scores) for run in runs):
        return paper.average_over
    shared = [name for name in benchmark_order(runs) if all(name in run.scores for run in runs)]
    return tuple(shared) if len(shared) > 1 else ()


def run_average(run: EvaluatedRun, benchmarks: Sequence[str]) -> float | None:
    """The mean accuracy in percent over ``benchmarks`` (the papers' average: each benchmark counts once)."""
    if not benchmarks or not all(name in run.scores for name in benchmarks):
        return None
    return 100 * sum(run.scores[name].accuracy for name in benchmarks) / len(benchmarks)


def _cell(value: float | None, signed: bool = False) -> str:
    if value is None:
        return ""
    return f"{value:+.1f}" if signed else f"{value:.1f}"


def _paper_row(run: EvaluatedRun, paper: PaperAblation | None) -> PaperRow | None:
    return paper.row_for(run.ablation) if paper is not None else None


def _md(text: str) -> str:
    """A table cell: pipes escaped, line breaks flattened."""
    return re.sub(r"\s+", " ", text).replace("|", "\\|")


def _trained_on(run: EvaluatedRun) -> str:
    data = ", ".join(f"`{_md(item)}`" for item in run.training_data) or "—"
    settings = ", ".join(f"{key}={value}" for key, value in sorted(run.settings.items()))
    return data + (f" ({_md(settings)})" if settings else "")


def render_comparison(runs: Sequence[EvaluatedRun], paper: PaperAblation | None = None) -> str:
    """The Markdown of ``comparison.md``: the runs, then one row per benchmark and run, then the averages."""
    first = runs[0]
    lines = [f"# Comparison of {len(runs)} evaluation run(s)", "", "## Runs", ""]
    lines += ["| run | model | base model | trained on | paper row | results |", "|---|---|---|---|---|---|"]
    for run in runs:
        row = _paper_row(run, paper)
        cells = [
            f"**{_md(run.label)}**",
            f"`{_md(run.model)}`" if run.model else "—",
            f"`{_md(run.base_model)}`" if run.base_model else "—",
            _trained_on(run),
            _md(row.label) if row else "—",
            f"`{_md(str(run.results_path))}`",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    paper_header = " | paper" if paper is not None else ""
    lines += [
        "",
        "## Accuracy per benchmark",
        "",
        f"| benchmark | run | n | accuracy % (95% CI) | Δ vs {_md(first.label)} (points) | 95% CIs overlap"
        f"{paper_header} |",
        "|---|---|---:|---:|---:|---|" + ("---:|" if paper is not None else ""),
    ]
    for benchmark in benchmark_order(runs):
        reference = first.scores.get(benchmark)
        for run in runs:
            score = run.scores.get(benchmark)
            if score is None:
                continue
            if run is first:
                difference, overlap = "reference", ""
            elif reference is None:
                difference, overlap = "", ""
            else:
                difference = _cell(100 * (score.accuracy - reference.accuracy), signed=True)
                overlap = "yes" if intervals_overlap(score, reference) else "no"
            cells = [benchmark_title(benchmark), _md(run.label), str(score.n), format_accuracy(score), difference,
                     overlap]  # fmt: skip
            if paper is not None:
                row = _paper_row(run, paper)
                cells.append(_cell(row.figures.get(benchmark)) if row else "")
            lines.append("| " + " | ".join(cells) + " |")
    averaged = average_benchmarks(runs, paper)
    if averaged:
        titles = ", ".join(benchmark_title(name) for name in averaged)
        lines += ["", f"## Average over {titles}", ""]
        lines += [f"| run | average % | Δ vs {_md(first.label)} (points){paper_header} |", "|---|---:|---:|"
                  + ("---:|" if paper is not None else "")]  # fmt: skip
        first_average = run_average(first, averaged)
        for run in runs:
            average = run_average(run, averaged)
            difference = (
                "reference"
                if run is first
                else _cell(None if average is None or first_average is None else average - first_average, signed=True)
            )
            cells = [_md(run.label), _cell(average), difference]
            if paper is not None:
                row = _paper_row(run, paper)
                same_set = tuple(averaged) == tuple(paper.average_over)
                cells.append(_cell(row.figures.get(AVERAGE)) if row and same_set else "")
            lines.append("| " + " | ".join(cells) + " |")
    lines += ["", *notes(runs, paper)]
    return "\n".join(lines) + "\n"


def notes(runs: Sequence[EvaluatedRun], paper: PaperAblation | None) -> list[str]:
    """What the reader needs to weigh the numbers: intervals, limits, where the paper's figures come from."""
    lines = [
        "Accuracy in percent with its Wilson 95% interval; Δ is the difference from the first run in percentage "
        "points. Where the two intervals overlap, this evaluation does not establish a difference.",
    ]
    for run in runs:
        if run.limit:
            lines.append(f"- {run.label}: only the first {run.limit} problem(s) of each benchmark were scored.")
    if paper is not None:
        lines.append(f"- Paper column: {paper.reference}; an empty cell is a figure the paper does not give or that "
                     "could not be confirmed, never a guess.")  # fmt: skip
        for run in runs:
            row = _paper_row(run, paper)
            if row is not None:
                lines.append(f'- {run.label} ↔ paper row "{row.label}": {row.source}.')
            else:
                lines.append(f"- {run.label}: no row of {paper.name} matches (ablation {run.ablation or 'unknown'}).")
    return lines


def _bar(run: EvaluatedRun, group: str, averaged: Sequence[str]) -> tuple[float, float, float] | None:
    """Height and interval (below, above) in percent of one bar; the average has no binomial interval."""
    if group == AVERAGE:
        average = run_average(run, averaged)
        return None if average is None else (average, 0.0, 0.0)
    score = run.scores.get(group)
    if score is None:
        return None
    return 100 * score.accuracy, 100 * (score.accuracy - score.ci_low), 100 * (score.ci_high - score.accuracy)


def plot_comparison(runs: Sequence[EvaluatedRun], path: Path, paper: PaperAblation | None = None) -> None:
    """Grouped bars: one group per benchmark (and the average), one bar per run with its 95% interval, the paper's
    figure for the run's row as a black diamond."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    benchmarks = benchmark_order(runs)
    averaged = average_benchmarks(runs, paper)
    groups = [*benchmarks, AVERAGE] if averaged else benchmarks
    positions = np.arange(len(groups))
    width = 0.8 / len(runs)
    figure, axis = plt.subplots(figsize=(max(6.0, 0.7 * len(groups) * len(runs) + 2.5), 4.0), dpi=100)
    paper_marked = False
    for index, run in enumerate(runs):
        row = _paper_row(run, paper)
        same_set = paper is not None and tuple(averaged) == tuple(paper.average_over)
        xs, values, below, above = [], [], [], []
        for x, group in zip(positions + (index - (len(runs) - 1) / 2) * width, groups, strict=True):
            bar = _bar(run, group, averaged)
            if bar is not None:
                xs.append(x)
                values.append(bar[0])
                below.append(bar[1])
                above.append(bar[2])
            figure_value = row.figures.get(group) if row is not None and (group != AVERAGE or same_set) else None
            if figure_value is not None:
                axis.plot(x, figure_value, "kD", markersize=6, label=None if paper_marked else "paper")
                paper_marked = True
        axis.bar(xs, values, width, yerr=[below, above], capsize=3, label=run.label)
    titles = [f"Average ({len(averaged)})" if group == AVERAGE else benchmark_title(group) for group in groups]
    axis.set_xticks(positions, titles)
    axis.set_ylabel("accuracy (%)")
    axis.set_ylim(0, 100)
    axis.set_title("Accuracy per benchmark with Wilson 95% intervals")
    axis.legend(fontsize="small")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, metadata={"Software": None})
    plt.close(figure)


def write_comparison(
    runs: Sequence[EvaluatedRun], output_dir: Path, paper: PaperAblation | None = None
) -> tuple[Path, Path, str]:
    """``comparison.md`` (the table, linking the plot) and ``comparison.png`` in ``output_dir``."""
    output_dir.mkdir(parents=True, exist_ok=True)
    plot = output_dir / COMPARISON_PLOT
    plot_comparison(runs, plot, paper)
    table = render_comparison(runs, paper)
    text = table + f"\n![Accuracy per benchmark with Wilson 95% intervals]({COMPARISON_PLOT})\n"
    markdown = output_dir / COMPARISON_TABLE
    markdown.write_text(text, encoding="utf-8")
    return markdown, plot, table
