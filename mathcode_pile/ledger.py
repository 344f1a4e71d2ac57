"""Records of finished items, one JSON object per line, appended as each finishes: what a killed run resumes from."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)


class Ledger:
    """Finished items of one run (an evaluation benchmark, an instruction-data step) by key.

    Items are appended (and flushed) the moment they finish, so ``kill -9`` loses at most the ones in flight, and
    their LLM requests come back from the request cache on the rerun. A torn last line is dropped, and so are items
    marked ``retry`` (the endpoint or the sandbox failed for good this time): the next run does them again.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.rows: dict[str, dict[str, Any]] = {}
        if path.is_file():
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    logger.warning(
                        "%s: line %d is incomplete (interrupted run); that item is done again", path, number
                    )
                    continue
                if not row.get("retry"):
                    self.rows[row["key"]] = row
        path.parent.mkdir(parents=True, exist_ok=True)
        # rewritten from the parsed rows, so that a torn line never sits before new ones
        path.write_text(
            "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in self.rows.values()), encoding="utf-8"
        )

    def __contains__(self, key: str) -> bool:
        return key in self.rows

    def __getitem__(self, key: str) -> dict[str, Any]:
        return self.rows[key]

    def add(self, key: str, row: dict[str, Any]) -> dict[str, Any]:
        """Record a finished item (``retry=True`` keeps it out of the next run's finished set); returns the record."""
        row = {"key": key, **row}
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
        if not row.get("retry"):
            self.rows[key] = row
        return row
