"""Helpers for tests that interrupt a real ``mathcode-pile`` build process."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path


def kill_when(command: list[str], ready: Callable[[], bool], timeout_s: float = 240) -> None:
    """Start ``command``, wait until ``ready()`` holds, then ``kill -9`` it."""
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout_s
    try:
        while not ready():
            assert process.poll() is None, "the build ended before it could be killed"
            assert time.monotonic() < deadline, "the build made no progress"
            time.sleep(0.05)
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
        process.wait()


def kill_build_after_shard(command: list[str], stage_dir: Path, shard: int = 1, timeout_s: float = 240) -> None:
    """Start ``command``, wait until work shard ``shard`` of ``stage_dir`` is marked done, then ``kill -9`` it."""
    marker = stage_dir / f"shard-{shard:05d}.done.json"
    kill_when(command, marker.exists, timeout_s)


def lines_in(path: Path) -> int:
    """Complete lines written to ``path`` so far (0 while it does not exist)."""
    return path.read_text(encoding="utf-8").count("\n") if path.exists() else 0
