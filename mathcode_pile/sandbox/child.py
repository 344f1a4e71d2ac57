"""Code that runs inside a sandboxed child, right after the worker forked it: lock the process down, run the code.

Nothing here runs in the worker itself: every function assumes it owns the (forked, single-threaded) process.
"""

from __future__ import annotations

import ast
import builtins
import contextlib
import io
import linecache
import os
import random
import resource
import signal
import sys
import traceback
from typing import Any

from mathcode_pile.sandbox import linux
from mathcode_pile.sandbox.guard import install_audit_guard
from mathcode_pile.sandbox.isolation import (
    PRIVATE_TMPFS,
    IsolationInfo,
    apply_limits,
    drop_privileges,
    enter_run_tmpfs,
    reset_signals,
    scrubbed_environment,
)
from mathcode_pile.sandbox.kernel import READ_WRITE_DEVICES, SeccompFilter, apply_landlock
from mathcode_pile.sandbox.limits import SandboxLimits
from mathcode_pile.sandbox.protocol import recv_frame, send_frame

MAX_MESSAGE_CHARS = 2000
#: what a run reports when its output overflowed the file-size limit (errno 27 is EFBIG)
OUTPUT_LIMIT_RECORD = {
    "kind": "exception",
    "type": "OSError",
    "message": "output exceeds the file size limit",
    "errno": 27,
}


def _redirect_stdio(stdout_path: str, stderr_path: str) -> None:
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    for fd, path in ((1, stdout_path), (2, stderr_path)):
        # O_APPEND: the worker may truncate the file between session cells; writes then restart at offset 0
        handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.dup2(handle, fd)
        os.close(handle)
    sys.stdin = io.TextIOWrapper(io.FileIO(0, "r", closefd=False), encoding="utf-8")
    # unbuffered: nothing waits in memory, so output survives os._exit, a kill or a full file (and never leaks into
    # the next session cell)
    sys.stdout = io.TextIOWrapper(
        io.FileIO(1, "w", closefd=False), encoding="utf-8", errors="backslashreplace", write_through=True
    )
    sys.stderr = io.TextIOWrapper(
        io.FileIO(2, "w", closefd=False), encoding="utf-8", errors="backslashreplace", write_through=True
    )
    sys.__stdout__, sys.__stderr__, sys.__stdin__ = sys.stdout, sys.stderr, sys.stdin


def _close_other_fds(keep: tuple[int, ...]) -> None:
    highest = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    highest = 65536 if highest == resource.RLIM_INFINITY else highest
    previous = 3
    for fd in sorted(keep):
        os.closerange(previous, fd)
        previous = fd + 1
    os.closerange(previous, highest)


def enter_sandbox(
    info: IsolationInfo,
    limits: SandboxLimits,
    workdir: str,
    stdout_path: str,
    stderr_path: str,
    keep_fds: tuple[int, ...],
    cpu_seconds: int | None = None,
    syscall_filter: SeccompFilter | None = None,
) -> None:
    """Confine the calling child: own process group, stdio to capped files, limits, identity, environment, Landlock,
    seccomp, and last the audit hook (a friendly early error; nothing depends on it)."""
    worker_pid = os.getppid()
    os.setpgid(0, 0)
    _redirect_stdio(stdout_path, stderr_path)
    _close_other_fds(keep_fds)
    reset_signals()
    os.environ.clear()
    os.environ.update(scrubbed_environment(workdir))
    import tempfile

    tempfile.tempdir = workdir
    private = PRIVATE_TMPFS if info.mode == "namespaces" else ()
    if private:
        enter_run_tmpfs(info, workdir)
    os.chdir(workdir)
    apply_limits(limits, info.mode, cpu_seconds)
    if info.mode == "namespaces":
        uid = info.run_uid(os.getpid())
        os.chown(workdir, uid, uid)
        drop_privileges(uid)
    else:
        linux.prctl(linux.PR_SET_NO_NEW_PRIVS, 1)
    # die with the worker (set after the identity change, which clears it)
    linux.prctl(linux.PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != worker_pid:
        os._exit(70)
    if info.landlock_abi:
        # namespaces mode: /tmp, /var/tmp and /dev/shm are the run's own fresh tmpfs (see enter_run_tmpfs)
        apply_landlock(info.landlock_abi, info.read_rules, (workdir, *private, *READ_WRITE_DEVICES))
    if syscall_filter is not None:
        syscall_filter.load()
    elif info.mode != "unsafe-hook-only":
        raise RuntimeError("a kernel-isolated run needs its seccomp filter")
    _reseed_random()
    # as root without namespaces RLIMIT_NPROC does not apply: forking is then refused instead
    install_audit_guard(workdir, allow_fork=info.mode == "namespaces" or os.geteuid() != 0, writable_roots=private)


def _reseed_random() -> None:
    """Forked children share the worker's random state: give each run its own streams (stdlib and numpy)."""
    seed = int.from_bytes(os.urandom(8), "little")
    random.seed(seed)
    numpy = sys.modules.get("numpy")
    if numpy is not None:
        numpy.random.seed(seed % 2**32)


def fresh_namespace() -> dict[str, Any]:
    return {"__name__": "__main__", "__builtins__": builtins}


def _format_exception(exc: BaseException, filename: str) -> str:
    """The traceback a user needs: only frames of the submitted code (the sandbox's own frames are noise)."""
    summary = traceback.TracebackException.from_exception(exc, capture_locals=False)
    for part in (summary, summary.__cause__, summary.__context__):
        if part is not None and part.stack:
            own = [f for f in part.stack if f.filename == filename or f.filename.startswith(("<cell", "<snippet"))]
            part.stack = traceback.StackSummary.from_list(own)
    return "".join(summary.format())


def _exit_code(value: object) -> int:
    if value is None:
        return 0
    if isinstance(value, int):
        return value & 0xFF
    print(value, file=sys.stderr)
    return 1


def execute_source(code: str, filename: str, namespace: dict[str, Any], display_last: bool = False) -> dict[str, Any]:
    """Run ``code`` in ``namespace``; returns a status record. With ``display_last``, a trailing expression's value is
    printed (as a notebook cell shows it), which is what LCE models expect to see after a code block."""
    linecache.cache[filename] = (len(code), None, code.splitlines(keepends=True), filename)
    try:
        tree = ast.parse(code, filename, "exec")
        last = None
        if display_last and tree.body and isinstance(tree.body[-1], ast.Expr):
            last = ast.Expression(tree.body.pop().value)
        exec(compile(tree, filename, "exec"), namespace)
        if last is not None:
            value = eval(compile(last, filename, "eval"), namespace)
            if value is not None:
                print(repr(value))
    except SystemExit as exc:
        return {"kind": "exit", "code": _exit_code(exc.code)}
    except KeyboardInterrupt:
        return {"kind": "interrupted"}
    except BaseException as exc:
        errno = getattr(exc, "errno", None)
        message = str(exc)[:MAX_MESSAGE_CHARS]
        with contextlib.suppress(BaseException):
            sys.stderr.write(_format_exception(exc, filename))
        return {"kind": "exception", "type": type(exc).__name__, "message": message, "errno": errno}
    return {"kind": "ok"}


def flush_stdio() -> bool:
    """Flush captured output; False when the file-size limit refused part of it."""
    complete = True
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except OSError:
            complete = False
    return complete


def run_once(code: str, status_fd: int) -> int:
    """One-shot snippet: run, flush, report, return the exit code."""
    record = execute_source(code, "<snippet>", fresh_namespace())
    if not flush_stdio() and record["kind"] == "ok":
        record = OUTPUT_LIMIT_RECORD
    with contextlib.suppress(OSError):
        send_frame(status_fd, record)
    if record["kind"] == "exit":
        return int(record["code"])
    return 0 if record["kind"] == "ok" else 1


def _reap_children() -> None:
    """Collect the children the worker killed when the previous cell returned (nothing of a cell outlives it)."""
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass


def _discard_pending_interrupt() -> None:
    if signal.SIGINT in signal.sigpending():
        signal.sigwait({signal.SIGINT})


def serve_session(request_fd: int, status_fd: int) -> None:
    """Persistent interpreter: one namespace for every cell; SIGINT interrupts only the running cell."""
    namespace = fresh_namespace()
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    cell = 0
    while True:
        try:
            request = recv_frame(request_fd)
        except Exception:
            os._exit(0)
        cell += 1
        _reap_children()
        _discard_pending_interrupt()
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
        try:
            record = execute_source(
                str(request.get("code", "")), f"<cell {cell}>", namespace, bool(request.get("display_last", True))
            )
        except KeyboardInterrupt:
            record = {"kind": "interrupted"}
        finally:
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        if not flush_stdio() and record["kind"] == "ok":
            record = OUTPUT_LIMIT_RECORD
        try:
            send_frame(status_fd, record)
        except OSError:
            os._exit(0)
