"""Helpers for tests that interrupt a real ``mathcode-pile`` build process."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path


def kill_when(command: list[str], ready: Callable[[], bool], timeout_s: float = 240) -> None:
    """Start ``command``, wait until ``ready()`` holds, then ``kill -9`` it with every process it started.

    The build runs in a session of its own and the whole process group is killed, as a crash of the machine or a
    Ctrl-C of a terminal's job would take it: a worker forked by the build must not outlive the test.
    """
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + timeout_s
    try:
        while not ready():
            assert process.poll() is None, "the build ended before it could be killed"
            assert time.monotonic() < deadline, "the build made no progress"
            time.sleep(0.05)
    finally:
        with contextlib.suppress(ProcessLookupError):  # the group has ended already
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def kill_build_after_shard(command: list[str], stage_dir: Path, shard: int = 1, timeout_s: float = 240) -> None:
    """Start ``command``, wait until work shard ``shard`` of ``stage_dir`` is marked done, then ``kill -9`` it."""
    marker = stage_dir / f"shard-{shard:05d}.done.json"
    kill_when(command, marker.exists, timeout_s)


def lines_in(path: Path) -> int:
    """Complete lines written to ``path`` so far (0 while it does not exist)."""
    return path.read_text(encoding="utf-8").count("\n") if path.exists() else 0
