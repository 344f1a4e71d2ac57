"""Automatic resume: rerunning the same command continues from the last *complete* checkpoint.

``transformers.trainer_utils.get_last_checkpoint`` returns the highest-numbered ``checkpoint-N`` folder, but a run
killed while saving leaves a folder without ``trainer_state.json`` (the Trainer writes it last), and resuming from
it fails. Such a folder is skipped, with a warning, in favour of the newest complete one.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, get_last_checkpoint

logger = logging.getLogger(__name__)

TRAINER_STATE_FILE = "trainer_state.json"
_CHECKPOINT_PATTERN = re.compile(rf"^{PREFIX_CHECKPOINT_DIR}-(\d+)$")


def checkpoint_step(path: str | Path) -> int:
    match = _CHECKPOINT_PATTERN.match(Path(path).name)
    if match is None:
        raise ValueError(f"not a checkpoint folder: {path}")
    return int(match.group(1))


def is_complete_checkpoint(path: Path) -> bool:
    return (path / TRAINER_STATE_FILE).is_file()


def find_resume_checkpoint(output_dir: str | Path) -> Path | None:
    """The newest complete checkpoint under ``output_dir``, or None when there is none (a fresh run)."""
    output_dir = Path(output_dir)
    if not output_dir.is_dir():
        return None
    last = get_last_checkpoint(str(output_dir))
    if last is None:
        return None
    if is_complete_checkpoint(Path(last)):
        return Path(last)
    candidates = sorted(
        (p for p in output_dir.iterdir() if p.is_dir() and _CHECKPOINT_PATTERN.match(p.name)),
        key=checkpoint_step,
        reverse=True,
    )
    for candidate in candidates:
        if is_complete_checkpoint(candidate):
            logger.warning(
                "skipping incomplete checkpoint %s (no %s); resuming from %s", last, TRAINER_STATE_FILE, candidate
            )
            return candidate
    logger.warning(
        "no complete checkpoint in %s (only %s without %s): starting fresh", output_dir, last, TRAINER_STATE_FILE
    )
    return None
