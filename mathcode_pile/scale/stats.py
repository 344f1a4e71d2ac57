"""datatrove's per-task stats files turned back into the build's :class:`~mathcode_pile.stats.StageStats`."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from mathcode_pile.stats import StageStats


def _total(value: Any) -> float:
    return float(value.get("total", 0)) if isinstance(value, dict) else float(value or 0)


def step_counters(logging_dir: Path, step_name: str) -> tuple[Counter[str], float]:
    """Summed counters and seconds of the step named ``step_name`` over every task's ``stats/NNNNN.json``."""
    counters: Counter[str] = Counter()
    seconds = 0.0
    for path in sorted((logging_dir / "stats").glob("*.json")):
        for step in json.loads(path.read_text(encoding="utf-8")):
            if not str(step.get("name", "")).endswith(step_name):
                continue
            seconds += _total(step.get("time_stats", 0))
            for key, value in step.get("stats", {}).items():
                counters[key] += _total(value)
    return counters, seconds


def stage_stats(logging_dir: Path, stage_name: str) -> StageStats:
    """A wrapped stage's counters: rows_in, rows_kept, dropped/<reason>, extra/<name>."""
    counters, seconds = step_counters(logging_dir, f"stage:{stage_name}")
    dropped = Counter({k.split("/", 1)[1]: int(v) for k, v in counters.items() if k.startswith("dropped/")})
    extra = Counter({k.split("/", 1)[1]: int(v) for k, v in counters.items() if k.startswith("extra/")})
    return StageStats(
        stage=stage_name,
        rows_in=int(counters["rows_in"]),
        rows_kept=int(counters["rows_kept"]),
        dropped=dropped,
        seconds=seconds,
        extra=extra,
    )
