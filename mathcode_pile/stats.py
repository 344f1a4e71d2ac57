"""Per-stage counters: rows in, kept, dropped per reason, seconds; mergeable across shards and saved as JSON."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class StageStats:
    """Counters of one stage over one or more shards.

    ``extra`` holds stage-specific counters (LLM requests, cache hits, per-package counts, ...) that are summed on
    merge, so a stage can report anything countable without a schema change here.
    """

    stage: str
    rows_in: int = 0
    rows_kept: int = 0
    dropped: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0
    extra: Counter[str] = field(default_factory=Counter)

    @property
    def rows_dropped(self) -> int:
        return sum(self.dropped.values())

    def merge(self, other: StageStats) -> StageStats:
        if other.stage != self.stage:
            raise ValueError(f"cannot merge stats of stage '{other.stage}' into '{self.stage}'")
        return StageStats(
            stage=self.stage,
            rows_in=self.rows_in + other.rows_in,
            rows_kept=self.rows_kept + other.rows_kept,
            dropped=self.dropped + other.dropped,
            seconds=self.seconds + other.seconds,
            extra=self.extra + other.extra,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "rows_in": self.rows_in,
            "rows_kept": self.rows_kept,
            "rows_dropped": self.rows_dropped,
            "dropped": dict(sorted(self.dropped.items())),
            "seconds": round(self.seconds, 3),
            "extra": dict(sorted(self.extra.items())),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StageStats:
        return cls(
            stage=data["stage"],
            rows_in=int(data["rows_in"]),
            rows_kept=int(data["rows_kept"]),
            dropped=Counter(data.get("dropped", {})),
            seconds=float(data.get("seconds", 0.0)),
            extra=Counter(data.get("extra", {})),
        )


def save_stats(stats: list[StageStats], path: str | Path) -> None:
    Path(path).write_text(json.dumps([s.to_dict() for s in stats], indent=2) + "\n", encoding="utf-8")


def load_stats(path: str | Path) -> list[StageStats]:
    return [StageStats.from_dict(item) for item in json.loads(Path(path).read_text(encoding="utf-8"))]
