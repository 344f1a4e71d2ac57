"""Scores of a ``mathcoder2`` run and the markdown table that sets them beside the paper (used by reports and cards).

A score is an accuracy over ``n`` problems, so its uncertainty is a binomial one: the table prints the Wilson 95%
interval (it stays inside [0, 100] and is honest at 0 or n correct, unlike the normal approximation behind lm-eval's
``stderr``). A model card renders the same table from a saved ``results.json`` with :func:`load_scores`.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from evaluation.paper_results import BENCHMARK_TITLES, PAPER_REFERENCE, PaperFamily

TASK_PREFIX = "mathcoder2_"
CONFIDENCE = 0.95


@dataclass(frozen=True)
class BenchmarkScore:
    """One benchmark's result: accuracy in [0, 1] over ``n`` problems, with its Wilson 95% interval."""

    benchmark: str
    accuracy: float
    n: int
    shots: int | None
    ci_low: float
    ci_high: float

    @property
    def correct(self) -> int:
        return round(self.accuracy * self.n)


def wilson_interval(correct: int, n: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion (scipy's implementation)."""
    if n <= 0:
        raise ValueError("a confidence interval needs at least one problem")
    if not 0 <= correct <= n:
        raise ValueError(f"correct must lie in [0, {n}], got {correct}")
    from scipy.stats import binomtest

    interval = binomtest(correct, n).proportion_ci(confidence_level=confidence, method="wilson")
    return float(interval.low), float(interval.high)


def format_accuracy(score: BenchmarkScore) -> str:
    """``62.5 (40.9–80.0)``: the accuracy and its Wilson 95% interval, in percent (every table prints it so)."""
    return f"{100 * score.accuracy:.1f} ({100 * score.ci_low:.1f}–{100 * score.ci_high:.1f})"


def intervals_overlap(first: BenchmarkScore, second: BenchmarkScore) -> bool:
    """Whether the two 95% intervals share a point: a difference whose intervals overlap is not established by them."""
    return first.ci_low <= second.ci_high and second.ci_low <= first.ci_high


def make_score(benchmark: str, correct: int, n: int, shots: int | None = None) -> BenchmarkScore:
    low, high = wilson_interval(correct, n)
    return BenchmarkScore(benchmark, correct / n, n, shots, low, high)


def scores_from_lm_eval(results: Mapping[str, Any], skip: Collection[str] = ()) -> list[BenchmarkScore]:
    """Scores of the ``mathcoder2_*`` tasks found in an lm-eval results dict (minus ``skip``), in table order."""
    task_results = results.get("results")
    if not isinstance(task_results, Mapping):
        raise ValueError("not lm-eval output: no 'results' mapping")
    samples = results.get("n-samples", {})
    shots = results.get("n-shot", {})
    scores = []
    for benchmark in BENCHMARK_TITLES:
        task = TASK_PREFIX + benchmark
        if task not in task_results or task in skip:
            continue
        accuracy = task_results[task].get("acc,none")
        n = samples.get(task, {}).get("effective")
        if not isinstance(accuracy, int | float) or not isinstance(n, int) or n <= 0:
            raise ValueError(f"lm-eval results for '{task}' lack 'acc,none' or a sample count")
        scores.append(make_score(benchmark, round(accuracy * n), n, shots.get(task)))
    return scores


def save_scores(scores: Sequence[BenchmarkScore]) -> list[dict[str, Any]]:
    return [asdict(score) for score in scores]


def load_scores(path: str | Path) -> list[BenchmarkScore]:
    """Scores stored by ``run_eval`` in ``results.json`` (its ``mathcode.scores`` list)."""
    payload = json.loads(Path(path).read_text(encoding="utf-8"))
    try:
        entries = payload["mathcode"]["scores"]
    except (KeyError, TypeError) as exc:
        raise ValueError(f"{path}: no 'mathcode.scores' (not written by evaluation.run_eval)") from exc
    return [BenchmarkScore(**entry) for entry in entries]


def render_table_from_results(path: str | Path) -> str:
    """The table of a saved run (``results.json`` written by ``run_eval``), as printed at the end of that run.

    This is what a model card embeds: same scores, intervals, paper columns and notes as the run's ``results.md``.
    """
    from evaluation.paper_results import POST_TRAINING_REFERENCE, paper_family_by_name, post_training_family

    payload = json.loads(Path(path).read_text(encoding="utf-8"))
    block = payload.get("mathcode") if isinstance(payload, dict) else None
    if not isinstance(block, dict) or "scores" not in block:
        raise ValueError(f"{path}: no 'mathcode' block (not written by evaluation.run_eval)")
    run = block.get("run", {})
    family = paper_family_by_name(block["paper_family"]) if block.get("paper_family") else None
    reference = PAPER_REFERENCE
    if family is not None and block.get("paper_post_training"):
        family = post_training_family(family, block["paper_post_training"])
        reference = POST_TRAINING_REFERENCE
    model = str(run.get("model", "this model")).rstrip("/")
    return render_results_table(
        load_scores(path),
        Path(model).name if Path(model).is_dir() else model,
        family=family,
        limit=run.get("limit"),
        unscored=block.get("unscored") or {},
        reference=reference,
    )


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}"


def render_results_table(
    scores: Sequence[BenchmarkScore],
    model: str,
    family: PaperFamily | None = None,
    limit: int | None = None,
    unscored: Mapping[str, str] | None = None,
    reference: str = PAPER_REFERENCE,
) -> str:
    """Markdown: one row per benchmark with this run's accuracy and 95% CI, then the paper's figures for the family.

    ``—`` marks a figure the paper does not report (or that we could not confirm); ``reference`` names the paper's
    table the family's figures come from (the post-training one for TIR / CoT runs); ``limit`` adds a note that this
    run scored only the first problems of each test set, while the paper's figures cover the full sets;
    ``unscored`` maps tasks that ran but could not be scored to the reason, printed under the table.
    """
    header = ["Benchmark", "Shots", "n", f"{model} (95% CI)"]
    if family is not None:
        header += [f"{family.base_name} (paper)", f"{family.mathcoder2_name} (paper)"]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    for score in scores:
        cells = [
            BENCHMARK_TITLES.get(score.benchmark, score.benchmark),
            "—" if score.shots is None else str(score.shots),
            str(score.n),
            format_accuracy(score),
        ]
        if family is not None:
            cells += [_percent(family.base.get(score.benchmark)), _percent(family.mathcoder2.get(score.benchmark))]
        lines.append("| " + " | ".join(cells) + " |")
    notes = ["", "Accuracy in percent; the interval is the Wilson 95% confidence interval of this run."]
    if family is not None:
        notes.append(f"Paper figures: {reference}; — means not reported there or not confirmed by us.")
    for task, reason in sorted((unscored or {}).items()):
        benchmark = task.removeprefix(TASK_PREFIX)
        notes.append(f"{BENCHMARK_TITLES.get(benchmark, benchmark)}: not scored: {reason}.")
    if limit is not None:
        notes.append(f"This run scored only the first {limit} problem(s) of each benchmark; paper figures use all.")
    return "\n".join(lines + notes) + "\n"
