"""The few lines a build prints at its end: what was written, how much of it carries verified code, where to look.

A first run of ``make pile`` should tell a newcomer what they got without opening a file: the demo's embedded model
is tiny, so most documents come out without code, and the summary says so next to the one command that swaps in a
real model. Everything is read back from the finished folder (``stats.json``), so the summary reports what was
written, not what the build meant to write.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from mathcode_pile.stats import StageStats, load_stats

#: The counter the ``render_computations`` stage keeps for documents that received at least one verified snippet.
WITH_CODE_COUNTER = "documents_with_code"
#: Per-source translation funnel counters (``funnel/<step>/<source>``), summed over sources for the summary.
FUNNEL_STEPS = ("computations", "ran_ok", "verified")


def funnel_totals(stats: list[StageStats]) -> Counter[str]:
    """Computations parsed, run successfully and verified, summed over sources and stages."""
    totals: Counter[str] = Counter()
    for stage in stats:
        for key, value in stage.extra.items():
            parts = key.split("/")
            if len(parts) == 3 and parts[0] == "funnel" and parts[1] in FUNNEL_STEPS:
                totals[parts[1]] += value
    return totals


def summarize_build(output_dir: Path, work_dir: Path, recipe: str) -> str:
    """A short plain-text summary of a finished build in ``output_dir`` (or of queued Slurm jobs: no stats yet)."""
    if not (output_dir / "stats.json").exists():
        return (
            f"Slurm jobs submitted; logs under {work_dir / 'scale'}. Once they have finished, rerun the same command "
            f"with --executor local (same --tasks) to assemble the dataset into {output_dir}"
        )
    stats = load_stats(output_dir / "stats.json")
    rows = stats[-1].rows_kept if stats else 0
    translated = any(stage.stage == "render_computations" for stage in stats)
    with_code = sum(stage.extra.get(WITH_CODE_COUNTER, 0) for stage in stats)
    dropped: Counter[str] = Counter()
    for stage in stats:
        dropped.update(stage.dropped)
    lines = [f"MathCode-Pile: {rows} row(s) written to {output_dir}  (datasets.load_dataset({str(output_dir)!r}))"]
    if translated:
        funnel = funnel_totals(stats)
        lines.append(
            f"  rows carrying verified code: {with_code} of {rows}  (computations parsed {funnel['computations']}, "
            f"ran {funnel['ran_ok']}, verified {funnel['verified']})"
        )
    else:
        lines.append("  rows carrying verified code: none (the recipe has no translation stages)")
    lines.append(f"  dataset card: {output_dir / 'README.md'}   statistics: {output_dir / 'stats.json'}")
    if dropped:
        reasons = ", ".join(f"{reason} {count}" for reason, count in dropped.most_common())
        where = f"{work_dir}/<NN>_<stage>/*.dropped.parquet"
        if (work_dir / "scale").is_dir():  # a datatrove executor's exclusion writers
            where = f"{work_dir}/scale/<fingerprint>/dropped/<stage>/*.parquet"
        lines.append(f"  dropped rows, with reasons: {where}  ({reasons})")
    lines.append(
        f"  with a real translation model: mathcode-pile build --config {recipe} --endpoint http://HOST:PORT "
        "--llm_model MODEL  (any TGI, vLLM, SGLang or llama.cpp server)"
    )
    return "\n".join(lines)
