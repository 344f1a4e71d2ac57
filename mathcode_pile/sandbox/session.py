"""A stateful sandboxed interpreter for code-executing inference (MathCoder's LCE loop): one per problem."""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from typing import Any

from mathcode_pile.sandbox.limits import DEFAULT_PRELOAD, SandboxLimits
from mathcode_pile.sandbox.pool import SandboxPool
from mathcode_pile.sandbox.result import ExecResult


class PythonSession:
    """Cells run one after another in one isolated interpreter; variables persist from cell to cell.

    - ``run_cell(code, timeout_s)`` returns an :class:`ExecResult`; with ``display_last`` a trailing expression's value
      is printed, as a notebook would show it.
    - A cell that exceeds its wall time is interrupted (``KeyboardInterrupt``) and the session goes on with its
      variables; a cell that ignores the interrupt, exits the interpreter or crashes it gets a fresh interpreter,
      and the result's ``reason`` says that the variables were lost (``restarts`` counts these).
    - Memory, file size and process limits are those of ``limits``; CPU time is a budget for the whole session
      (``cpu_budget_s``), because a per-process CPU limit cannot be reset between cells.

    With ``pool=None`` the session starts its own one-worker pool (about a second with the default preload) and stops
    it on :meth:`close`; pass a shared :class:`SandboxPool` to start sessions in milliseconds.

    Example::

        with PythonSession() as session:
            session.run_cell("x = 21")
            assert session.run_cell("x * 2").stdout.strip() == "42"
    """

    def __init__(
        self,
        pool: SandboxPool | None = None,
        limits: SandboxLimits | None = None,
        cpu_budget_s: float = 300.0,
        display_last: bool = True,
        preload: Sequence[str] = DEFAULT_PRELOAD,
        isolation: str = "auto",
    ) -> None:
        if not cpu_budget_s > 0:
            raise ValueError(f"cpu_budget_s must be > 0, got {cpu_budget_s}")
        self._owns_pool = pool is None
        self.pool = pool if pool is not None else SandboxPool(workers=1, preload=preload, isolation=isolation)
        self.limits = limits or self.pool.limits
        self.cpu_seconds = math.ceil(cpu_budget_s)
        self.display_last = display_last
        self.restarts = 0
        self._lock = threading.Lock()
        self._slot: int | None = None
        self._generation = -1
        self._session_id: int | None = None
        self._closed = False
        self._open()

    def _open(self) -> None:
        message = {"op": "open_session", "limits": self.limits.to_dict(), "cpu_seconds": self.cpu_seconds}
        index, generation, reply = self.pool.request(self._slot, message, 10.0)
        if "session" not in reply:
            raise RuntimeError(f"could not open a sandbox session: {reply.get('reason') or reply.get('error')}")
        self._slot, self._generation, self._session_id = index, generation, int(reply["session"])

    def run_cell(self, code: str, timeout_s: float | None = None) -> ExecResult:
        """Execute one cell; never raises for anything the code does (see the result's status and reason)."""
        with self._lock:
            if self._closed:
                raise RuntimeError("the session is closed")
            timeout = self.limits.timeout_s if timeout_s is None else timeout_s
            if not timeout > 0:
                raise ValueError(f"timeout_s must be > 0, got {timeout_s}")
            assert self._slot is not None
            if self.pool.generation(self._slot) != self._generation:
                # the worker hosting this session died and was replaced: the interpreter state is gone
                self.restarts += 1
                self._open()
                lost = "the sandbox worker was replaced; the session was restarted and its variables were lost"
                return ExecResult("sandbox_error", reason=lost)
            message = {
                "op": "cell",
                "session": self._session_id,
                "code": code,
                "timeout_s": timeout,
                "display_last": self.display_last,
            }
            _, generation, reply = self.pool.request(self._slot, message, timeout + 5.0)
            if reply.pop("worker_replaced", False) or generation != self.pool.generation(self._slot):
                self.restarts += 1
                self._open()
            if reply.pop("restarted", False):
                self.restarts += 1
            if "error" in reply and "status" not in reply:
                return ExecResult("sandbox_error", reason=str(reply["error"]))
            return ExecResult.from_dict(reply)

    def restart(self) -> None:
        """Drop every variable: close this interpreter and open a fresh one."""
        with self._lock:
            self._close_remote()
            self._open()

    def _close_remote(self) -> None:
        if self._session_id is not None and self._slot is not None:
            if self.pool.generation(self._slot) == self._generation:
                self.pool.request(self._slot, {"op": "close_session", "session": self._session_id}, 10.0)
            self._session_id = None

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            try:
                self._close_remote()
            finally:
                if self._owns_pool:
                    self.pool.close()

    def __enter__(self) -> PythonSession:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()
