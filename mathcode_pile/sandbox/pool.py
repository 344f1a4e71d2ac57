"""The parent side: a pool of pre-warmed sandbox workers, usable from threads and from asyncio."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mathcode_pile.sandbox.isolation import ISOLATION_MODES, UID_BLOCKS, scrubbed_environment
from mathcode_pile.sandbox.limits import DEFAULT_PRELOAD, DEFAULT_WARMUP, SandboxLimits
from mathcode_pile.sandbox.protocol import ProtocolError, recv_frame, send_frame
from mathcode_pile.sandbox.result import ExecResult

logger = logging.getLogger(__name__)

#: Extra seconds the parent waits for a worker's answer beyond the run's own wall timeout (clean-up, slow start).
ANSWER_GRACE_S = 30.0


class SandboxError(RuntimeError):
    """A worker could not be started (the message carries its own error report)."""


@dataclass
class WorkerInfo:
    """What a worker reported when it became ready."""

    mode: str = ""
    detail: str = ""
    preloaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)


class _WorkerProcess:
    """One worker process and the pipe protocol to it. Not thread-safe: the pool lends it to one caller at a time."""

    def __init__(
        self,
        preload: Sequence[str],
        warmup: str,
        isolation: str,
        tmpfs_mb: int,
        start_timeout_s: float,
        uid_block: int = 0,
    ) -> None:
        package_root = str(Path(__file__).resolve().parents[2])
        env = scrubbed_environment()
        env["PYTHONPATH"] = package_root
        self.process = subprocess.Popen(
            [sys.executable, "-m", "mathcode_pile.sandbox.worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
            cwd="/",
            start_new_session=True,
        )
        assert self.process.stdin is not None and self.process.stdout is not None
        self.in_fd = self.process.stdin.fileno()
        self.out_fd = self.process.stdout.fileno()
        self.start_timeout_s = start_timeout_s
        self.info: WorkerInfo | None = None
        self.lock = threading.Lock()
        self.generation = 0
        config = {
            "preload": list(preload),
            "warmup": warmup,
            "isolation": isolation,
            "tmpfs_mb": tmpfs_mb,
            "uid_block": uid_block,
        }
        send_frame(self.in_fd, config)

    def wait_ready(self) -> WorkerInfo:
        if self.info is None:
            try:
                reply = recv_frame(self.out_fd, deadline=time.monotonic() + self.start_timeout_s)
            except ProtocolError as exc:
                self.kill()
                raise SandboxError(f"sandbox worker did not start: {exc}") from exc
            if not reply.get("ready"):
                self.kill()
                raise SandboxError(f"sandbox worker failed to start:\n{reply.get('error', '')}")
            self.info = WorkerInfo(reply["mode"], reply["detail"], reply["preloaded"], reply["missing"])
        return self.info

    def request(self, message: dict[str, Any], timeout_s: float) -> dict[str, Any]:
        self.wait_ready()
        send_frame(self.in_fd, message)
        return recv_frame(self.out_fd, deadline=time.monotonic() + timeout_s + ANSWER_GRACE_S)

    def alive(self) -> bool:
        return self.process.poll() is None

    def close(self, timeout_s: float = 5.0) -> None:
        with contextlib.suppress(OSError, ProtocolError):
            send_frame(self.in_fd, {"op": "exit"})
        for stream in (self.process.stdin, self.process.stdout):
            with contextlib.suppress(OSError):
                stream.close()  # type: ignore[union-attr]
        try:
            self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, 9)
        with contextlib.suppress(Exception):
            self.process.kill()
            self.process.wait(timeout=10)


def _close_workers(workers: list[_WorkerProcess]) -> None:
    for worker in workers:
        worker.close()


class SandboxPool:
    """Pre-warmed, isolated Python workers; every :meth:`run` gets a freshly forked interpreter state.

    ``workers`` processes each import ``preload`` once (numpy, sympy, ...) and run ``warmup`` (default: first calls
    of common sympy functions, which import submodules and fill caches), then fork a locked-down child per snippet,
    so a snippet costs a fork instead of an interpreter start plus imports. ``run`` may be called from many threads at
    once (each call borrows one worker); ``run_many`` and ``arun`` are the batch and asyncio forms.

    Example::

        with SandboxPool(workers=2) as pool:
            result = pool.run("import sympy; print(sympy.sqrt(8))", timeout_s=5)
            assert result.ok and result.stdout.strip() == "2*sqrt(2)"
    """

    def __init__(
        self,
        workers: int | None = None,
        limits: SandboxLimits | None = None,
        preload: Sequence[str] = DEFAULT_PRELOAD,
        isolation: str = "auto",
        tmpfs_mb: int = 512,
        start_timeout_s: float = 120.0,
        warmup: str | None = None,
    ) -> None:
        if isolation not in ISOLATION_MODES:
            raise ValueError(f"isolation must be one of {ISOLATION_MODES}, got {isolation!r}")
        self.size = workers if workers is not None else max(1, os.cpu_count() or 1)
        if self.size < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self.limits = limits or SandboxLimits()
        if warmup is None:
            # the default warm-up exercises sympy and numpy: only meaningful when both are preloaded
            warmup = DEFAULT_WARMUP if {"sympy", "numpy"} <= set(preload) else ""
        self._spawn_args = (tuple(preload), warmup, isolation, tmpfs_mb, start_timeout_s)
        # every worker this pool ever starts gets its own block of run user ids: runs of two workers never share one
        self._next_uid_block = secrets.randbelow(UID_BLOCKS)
        self._spawned = 0
        self._workers = [self._spawn() for _ in range(self.size)]
        self._available = threading.Condition()
        self._closed = False
        self._finalizer = weakref.finalize(self, _close_workers, self._workers)

    def _spawn(self) -> _WorkerProcess:
        block = (self._next_uid_block + self._spawned) % UID_BLOCKS
        self._spawned += 1
        return _WorkerProcess(*self._spawn_args, uid_block=block)

    # -- lending workers -------------------------------------------------------------------------------------

    def _acquire_any(self) -> int:
        with self._available:
            while True:
                if self._closed:
                    raise RuntimeError("the sandbox pool is closed")
                for index, worker in enumerate(self._workers):
                    if worker.lock.acquire(blocking=False):
                        return index
                self._available.wait()

    def _acquire(self, index: int) -> None:
        with self._available:
            while not self._workers[index].lock.acquire(blocking=False):
                if self._closed:
                    raise RuntimeError("the sandbox pool is closed")
                self._available.wait()

    def _release(self, index: int) -> None:
        with self._available:
            self._workers[index].lock.release()
            self._available.notify_all()

    def _replace(self, index: int, why: str) -> None:
        """Kill a broken worker and start another in its slot (called while holding the slot)."""
        old = self._workers[index]
        logger.warning("sandbox worker %d (pid %d) replaced: %s", index, old.process.pid, why)
        old.kill()
        new = self._spawn()
        new.generation = old.generation + 1
        new.lock.acquire()  # the caller holds the slot; _release will release the new lock
        self._workers[index] = new

    def request(self, index: int | None, message: dict[str, Any], timeout_s: float) -> tuple[int, int, dict[str, Any]]:
        """Send one request to worker ``index`` (any free one when ``None``); returns (index, generation, reply).

        A worker that dies or stops answering is replaced and the reply is a ``sandbox_error`` result.
        """
        if index is None:
            index = self._acquire_any()
        else:
            self._acquire(index)
        try:
            worker = self._workers[index]
            generation = worker.generation
            try:
                reply = worker.request(message, timeout_s)
                unhealthy = reply.pop("unhealthy", None)
                if unhealthy:  # the worker answered, then stopped: a fresh one serves this slot's next run
                    self._replace(index, str(unhealthy))
                return index, generation, reply
            except (ProtocolError, OSError) as exc:
                self._replace(index, f"{type(exc).__name__}: {exc}")
                reply = ExecResult("sandbox_error", reason=f"the sandbox worker failed ({exc}); it was replaced")
                return index, generation, {**reply.to_dict(), "worker_replaced": True}
        finally:
            self._release(index)

    def generation(self, index: int) -> int:
        return self._workers[index].generation

    # -- public API ------------------------------------------------------------------------------------------

    def worker_info(self) -> WorkerInfo:
        """Isolation mode and preloaded modules (waits for the first worker to be ready)."""
        return self._workers[0].wait_ready()

    @property
    def isolation_mode(self) -> str:
        return self.worker_info().mode

    def run(self, code: str, timeout_s: float | None = None, limits: SandboxLimits | None = None) -> ExecResult:
        """Run ``code`` in a fresh interpreter state; blocks until it finished, failed or hit a limit."""
        run_limits = (limits or self.limits).with_timeout(timeout_s)
        _, _, reply = self.request(
            None, {"op": "run", "code": code, "limits": run_limits.to_dict()}, run_limits.timeout_s
        )
        reply.pop("worker_replaced", None)
        return ExecResult.from_dict(reply)

    def run_many(
        self, codes: Sequence[str], timeout_s: float | None = None, limits: SandboxLimits | None = None
    ) -> list[ExecResult]:
        """Run every snippet (each in its own fresh state), all workers busy at once; results in input order."""
        if not codes:
            return []
        with ThreadPoolExecutor(max_workers=min(self.size, len(codes)), thread_name_prefix="sandbox") as executor:
            return list(executor.map(lambda code: self.run(code, timeout_s, limits), codes))

    async def arun(self, code: str, timeout_s: float | None = None, limits: SandboxLimits | None = None) -> ExecResult:
        """``run`` for asyncio code: the wait happens in a thread, the event loop stays free."""
        return await asyncio.to_thread(self.run, code, timeout_s, limits)

    def close(self) -> None:
        """Stop every worker (their children and temporary folders go with them)."""
        with self._available:
            self._closed = True
            self._available.notify_all()
        self._finalizer()

    def __enter__(self) -> SandboxPool:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __getstate__(self) -> dict[str, Any]:
        raise TypeError("a SandboxPool holds live processes and cannot be pickled; create one per process")
