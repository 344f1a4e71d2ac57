"""Code sessions for LCE solutions (inference loop, data generation): one stateful sandboxed interpreter per
problem, hosted by one shared pool.

The sandbox (:mod:`mathcode_pile.sandbox`) isolates and limits the code, interrupts a cell past its wall time (the
session then goes on, or is restarted with a reason saying the variables were lost) and returns output capped to
head + tail with ANSI codes removed. This module turns such a result into the text of an execution block: what the
cell printed, then, for a failure, the traceback or the reason, the way a notebook would show it to the model.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from mathcode_pile.lce.format import LCE_SPECIAL_TOKENS
from mathcode_pile.sandbox import ExecResult, SandboxLimits
from mathcode_pile.sandbox.output import cap_text, strip_ansi

logger = logging.getLogger(__name__)


def neutralize_markers(text: str) -> str:
    """Printed text that spells an LCE marker must not read as one: ``<|code|>`` becomes ``< |code| >``."""
    for marker in LCE_SPECIAL_TOKENS:
        if marker in text:
            text = text.replace(marker, "< " + marker[1:-1] + " >")
    return text


def execution_text(result: ExecResult, max_chars: int) -> str:
    """The execution block's content for one cell result."""
    parts = [result.stdout.rstrip("\n")] if result.stdout.strip() else []
    if result.status == "error":
        parts.append(result.stderr.strip() or result.reason)
    elif result.status != "ok":
        detail = result.stderr.strip()
        if detail:
            parts.append(detail)
        parts.append(f"{'TimeoutError' if result.status == 'timeout' else 'ExecutionError'}: {result.reason}")
    text, _ = cap_text(strip_ansi("\n".join(parts)), max_chars)
    return neutralize_markers(text)


class SandboxCodeSession:
    """A :class:`mathcode_pile.sandbox.PythonSession` seen as the loop's ``CodeSession``."""

    def __init__(self, session: Any, timeout_s: float, max_output_chars: int) -> None:
        self.session = session
        self.timeout_s = timeout_s
        self.max_output_chars = max_output_chars
        self.results: list[ExecResult] = []

    def run(self, code: str) -> str:
        result = self.session.run_cell(code, timeout_s=self.timeout_s)
        self.results.append(result)
        return execution_text(result, self.max_output_chars)

    def close(self) -> None:
        self.session.close()


class SandboxSessions:
    """Opens one session per problem on a shared, lazily started :class:`mathcode_pile.sandbox.SandboxPool`.

    Call it for a new session (the inference loop's ``session_factory``); close it (or use ``with``) to stop the
    pool's workers.
    """

    def __init__(
        self, workers: int = 2, timeout_s: float = 10.0, max_output_chars: int = 2000, memory_mb: int = 1024
    ) -> None:
        self.workers = workers
        self.timeout_s = timeout_s
        self.max_output_chars = max_output_chars
        self.memory_mb = memory_mb
        self._pool: Any = None
        self._lock = threading.Lock()

    def _get_pool(self) -> Any:
        with self._lock:
            if self._pool is None:
                from mathcode_pile.sandbox import SandboxPool

                limits = SandboxLimits(
                    timeout_s=self.timeout_s, memory_mb=self.memory_mb, max_output_chars=self.max_output_chars
                )
                self._pool = SandboxPool(workers=self.workers, limits=limits)
            return self._pool

    def __call__(self) -> SandboxCodeSession:
        from mathcode_pile.sandbox import PythonSession

        return SandboxCodeSession(PythonSession(pool=self._get_pool()), self.timeout_s, self.max_output_chars)

    def close(self) -> None:
        with self._lock:
            if self._pool is not None:
                self._pool.close()
                self._pool = None

    def __enter__(self) -> SandboxSessions:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
