"""A judging process: parse and compare untrusted math text where a runaway computation can be killed.

Grading a model's answer and verifying a snippet's printed output hand untrusted text to sympy and math-verify. Some
texts make them compute for minutes inside C code (a binomial of ten-million-digit numbers), where no Python-level
timeout fires, and math-verify's own timeouts use ``signal.alarm``, which only works in a process's main thread.
So that work runs in a child process instead, and the caller waits for its answer with a deadline:

- the child is started once (``python -m evaluation.judge``, about half a second to import sympy and math-verify)
  and answers any number of requests over a pipe, one JSON line each way;
- a request that overruns its deadline gets the child killed (``SIGKILL``); the caller gets a :class:`JudgeError`
  and the next request starts a fresh child. A child that dies (memory limit, crash) is replaced the same way;
- inside the child, math-verify runs in the main thread, so its own timeouts work as a first, gentler bound;
- the child's address space is capped (:data:`JUDGE_MEMORY_MB`), so a huge allocation fails there, not here;
- any thread may call :func:`run_judged`: each concurrent caller gets a child of its own from a per-process pool;
  a forked process starts its own pool (children are never shared across a fork).

Only functions marked with :func:`judged` can be called, by module and name; arguments and results are JSON values.
In the child itself, :func:`run_judged` calls the function directly.

The child bounds resources; it is not a sandbox. It runs the project's own parsing code on untrusted *data*: nothing
in it evaluates the text as code (math-verify's expression reader only ever sees digits and operators).
"""

from __future__ import annotations

import atexit
import importlib
import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

#: Address space of a judging process, MB.
JUDGE_MEMORY_MB = 4096
#: Seconds a judging process may take to start (import sympy and math-verify) on a loaded machine.
JUDGE_START_TIMEOUT_S = 120.0
_PROJECT_ROOT = Path(__file__).resolve().parent.parent
_INSIDE_JUDGE = False

Function = TypeVar("Function", bound=Callable[..., Any])


class JudgeError(RuntimeError):
    """A judgement that did not finish: ``reason`` says why (timed out, the process died, the function raised)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def judged(function: Function) -> Function:
    """Mark ``function`` as callable in a judging process (its arguments and result must be JSON values)."""
    function.__judged__ = True  # type: ignore[attr-defined]
    return function


def run_judged(function: Callable[..., Any], *args: Any, timeout_s: float) -> Any:
    """``function(*args)`` computed in a judging process, killed after ``timeout_s`` seconds.

    Raises :class:`JudgeError` when the call times out, the process dies or the function raises.
    """
    if not getattr(function, "__judged__", False):
        raise ValueError(f"{function.__qualname__} is not marked @judged")
    if _INSIDE_JUDGE:
        return function(*args)
    return _POOL.call(f"{function.__module__}:{function.__qualname__}", list(args), timeout_s)


class _Judge:
    """One judging child process and the pipe to it."""

    def __init__(self, memory_mb: int) -> None:
        environment = dict(os.environ)
        environment["PYTHONPATH"] = os.pathsep.join(
            [str(_PROJECT_ROOT), *filter(None, environment.get("PYTHONPATH", "").split(os.pathsep))]
        )
        self.process = subprocess.Popen(
            [sys.executable, "-P", "-m", "evaluation.judge", str(memory_mb)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=environment,
            cwd=str(_PROJECT_ROOT),
            start_new_session=True,  # Ctrl-C in a terminal interrupts the caller, which then closes its judges
        )
        assert self.process.stdout is not None and self.process.stdin is not None
        self._stdin = self.process.stdin
        self._stdout_fd = self.process.stdout.fileno()
        self._buffer = b""
        ready = self._read_line(time.monotonic() + JUDGE_START_TIMEOUT_S, "start")
        if json.loads(ready) != {"ready": True}:
            self.kill()
            raise JudgeError(f"judging process did not start: {ready[:200]!r}")

    def call(self, target: str, args: list[Any], timeout_s: float) -> Any:
        deadline = time.monotonic() + timeout_s
        request = json.dumps({"target": target, "args": args}, ensure_ascii=True).encode("ascii") + b"\n"
        try:
            self._stdin.write(request)
            self._stdin.flush()
        except (BrokenPipeError, OSError) as exc:
            self.kill()
            raise JudgeError(f"judging process is gone ({exc})") from exc
        reply = json.loads(self._read_line(deadline, f"judge within {timeout_s:g} s"))
        if not reply.get("ok"):
            raise JudgeError(str(reply.get("error", "unknown error")))
        return reply["value"]

    def _read_line(self, deadline: float, doing: str) -> bytes:
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.kill()
                raise JudgeError(f"timed out: could not {doing}")
            readable, _, _ = select.select([self._stdout_fd], [], [], remaining)
            if not readable:
                continue
            chunk = os.read(self._stdout_fd, 1 << 16)
            if not chunk:
                code = self.kill()
                raise JudgeError(f"judging process died (exit status {code}) while trying to {doing}")
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return line

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> int | None:
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                self.process.kill()
        try:
            return self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            return None
        finally:
            self._close_pipes()

    def close(self) -> None:
        """Ask the child to exit (end of input), kill it if it does not."""
        self._close_pipes()
        try:
            self.process.wait(timeout=2)
        except subprocess.TimeoutExpired:
            self.kill()

    def _close_pipes(self) -> None:
        for stream in (self.process.stdin, self.process.stdout):
            try:
                if stream is not None:
                    stream.close()
            except OSError:
                pass


class _JudgePool:
    """Idle judges of this process; a caller takes one for the length of a call, so threads never share one."""

    def __init__(self, memory_mb: int = JUDGE_MEMORY_MB) -> None:
        self.memory_mb = memory_mb
        self._lock = threading.Lock()
        self._idle: list[_Judge] = []
        self._owner_pid = os.getpid()

    def call(self, target: str, args: list[Any], timeout_s: float) -> Any:
        judge = self._take()
        try:
            value = judge.call(target, args, timeout_s)
        except JudgeError:
            if not judge.alive():
                raise
            self._give_back(judge)  # the function raised; the process is fine
            raise
        except BaseException:  # interrupted mid-call: the child's state is unknown
            judge.kill()
            raise
        self._give_back(judge)
        return value

    def _take(self) -> _Judge:
        with self._lock:
            if self._owner_pid != os.getpid():  # a forked child: the judges belong to the parent
                self._idle = []
                self._owner_pid = os.getpid()
            while self._idle:
                judge = self._idle.pop()
                if judge.alive():
                    return judge
        try:
            return _Judge(self.memory_mb)
        except OSError as exc:
            raise JudgeError(f"could not start a judging process: {exc}") from exc

    def _give_back(self, judge: _Judge) -> None:
        with self._lock:
            if self._owner_pid == os.getpid() and judge.alive():
                self._idle.append(judge)

    def forget_after_fork(self) -> None:
        self._lock = threading.Lock()
        self._idle = []
        self._owner_pid = os.getpid()

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        if self._owner_pid == os.getpid():
            for judge in idle:
                judge.close()


_POOL = _JudgePool()
atexit.register(_POOL.close)
os.register_at_fork(after_in_child=_POOL.forget_after_fork)


def idle_judge_pids() -> list[int]:
    """Process ids of the judging processes this process keeps ready (for diagnostics and tests)."""
    with _POOL._lock:
        return [judge.process.pid for judge in _POOL._idle if _POOL._owner_pid == os.getpid()]


# -- the child ------------------------------------------------------------------------------------------------------


def _resolve(target: str) -> Callable[..., Any]:
    module_name, _, name = target.partition(":")
    if not (module_name.startswith("evaluation.") or module_name.startswith("mathcode_pile.")):
        raise ValueError(f"{target} is outside the project")
    function = getattr(importlib.import_module(module_name), name)
    if not getattr(function, "__judged__", False):
        raise ValueError(f"{target} is not marked @judged")
    return function


def serve(memory_mb: int) -> None:
    """The child's loop: one JSON request per line on stdin, one JSON reply per line on the original stdout."""
    global _INSIDE_JUDGE
    import resource

    _INSIDE_JUDGE = True
    limit = memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    replies = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # anything a library prints goes to stderr, never into the replies
    sys.stdout = sys.stderr
    sys.set_int_max_str_digits(4300)
    import math_verify  # noqa: F401  (imported once here, not on the first request)
    import sympy  # noqa: F401

    def reply(message: dict[str, Any]) -> None:
        replies.write(json.dumps(message, ensure_ascii=True).encode("ascii") + b"\n")
        replies.flush()

    reply({"ready": True})
    for line in sys.stdin.buffer:
        try:
            request = json.loads(line)
            value = _resolve(request["target"])(*request["args"])
            message = {"ok": True, "value": value}
            encoded = json.dumps(message, ensure_ascii=True)
        except Exception as exc:  # every failure becomes a reply; the loop goes on
            encoded = json.dumps({"ok": False, "error": _describe(exc)})
        replies.write(encoded.encode("ascii") + b"\n")
        replies.flush()


def _describe(exc: BaseException) -> str:
    try:
        return f"{type(exc).__name__}: {str(exc)[:500]}"
    except Exception:  # a message that cannot be made (an integer too long to print, ...)
        return type(exc).__name__


if __name__ == "__main__":
    # run the loop of the importable module, so that run_judged inside the child sees its flag
    from evaluation.judge import serve as serve_in_module

    serve_in_module(int(sys.argv[1]) if len(sys.argv) > 1 else JUDGE_MEMORY_MB)
