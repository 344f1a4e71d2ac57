"""A pre-warmed sandbox worker: sets up isolation, imports the math stack once, then forks one child per run.

Started by :class:`mathcode_pile.sandbox.pool.SandboxPool` as ``python -m mathcode_pile.sandbox.worker``; it talks
JSON frames over its stdin / stdout (see :mod:`.protocol`) and never runs submitted code itself: every snippet, and
every session, runs in a forked child that :func:`.child.enter_sandbox` locks down. The worker is single-threaded
(so forking it is safe), a child subreaper (so orphans of a run come back to it and are killed), and exits when its
parent closes the pipe.
"""

from __future__ import annotations

import contextlib
import errno
import gc
import importlib
import importlib.util
import os
import select
import shutil
import signal
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mathcode_pile.sandbox.child import enter_sandbox, run_once, serve_session
from mathcode_pile.sandbox.isolation import (
    IsolationInfo,
    direct_children,
    kill_leftovers,
    kill_user,
    setup_worker_isolation,
)
from mathcode_pile.sandbox.kernel import SeccompFilter, build_seccomp_filter
from mathcode_pile.sandbox.limits import SandboxLimits
from mathcode_pile.sandbox.output import read_capped
from mathcode_pile.sandbox.protocol import FrameTimeoutError, ProtocolError, recv_frame, send_frame
from mathcode_pile.sandbox.result import ExecResult

#: Seconds a session cell gets to stop after SIGINT before the session is killed and restarted.
INTERRUPT_GRACE_S = 2.0
SETUP_FAILED_EXIT = 70
#: How often a run's processes are checked against its memory budget (only runs with more than one process).
MEMORY_POLL_S = 0.05
#: Below this much free scratch space after a run, the worker asks to be replaced.
MIN_FREE_SCRATCH_BYTES = 8 * 1024 * 1024
#: Seconds a session gets to take its next cell off the pipe before it is restarted (it never blocks the worker).
SESSION_WRITE_TIMEOUT_S = 5.0


def _anon_bytes(pid: int) -> int:
    """Resident anonymous memory of ``pid`` (``RssAnon``), 0 when it is gone."""
    try:
        with open(f"/proc/{pid}/status", "rb") as handle:
            for line in handle:
                if line.startswith(b"RssAnon:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return 0


def _descendants(pid: int) -> list[int]:
    """Every live descendant of ``pid`` (children of all its threads, recursively)."""
    found: list[int] = []
    pending = [pid]
    while pending:
        parent = pending.pop()
        try:
            tasks = [entry.name for entry in Path(f"/proc/{parent}/task").iterdir()]
        except OSError:
            continue
        for task in tasks:
            try:
                with open(f"/proc/{parent}/task/{task}/children", encoding="ascii") as handle:
                    children = [int(p) for p in handle.read().split()]
            except (OSError, ValueError):
                continue
            found.extend(children)
            pending.extend(children)
    return [pid for pid in found if not _is_zombie(pid)]


def _is_zombie(pid: int) -> bool:
    """A killed process its parent has not reaped yet (it holds no memory and runs nothing)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            return handle.read().rsplit(b")", 1)[1].split()[0] in (b"Z", b"X")
    except (OSError, IndexError):
        return True


@dataclass
class RunFiles:
    """A run's private folder ``work/`` (its cwd, the only place it may write) and its capped ``stdout`` / ``stderr``,
    which live in another folder, on another filesystem where there is one: a run that fills its own folder cannot
    make its output (or the next run's) fail."""

    run_dir: str
    output_dir: str
    workdir: str
    stdout: str
    stderr: str

    @classmethod
    def create(cls, scratch_dir: str, output_root: str) -> RunFiles:
        run_dir = Path(tempfile.mkdtemp(prefix="run-", dir=scratch_dir))
        run_dir.chmod(0o711)
        (run_dir / "work").mkdir(0o700)
        output_dir = Path(tempfile.mkdtemp(prefix="out-", dir=output_root))
        return cls(
            str(run_dir),
            str(output_dir),
            str(run_dir / "work"),
            str(output_dir / "stdout"),
            str(output_dir / "stderr"),
        )

    def output_full(self, limits: SandboxLimits) -> bool:
        for path in (self.stdout, self.stderr):
            with contextlib.suppress(OSError):
                if Path(path).stat().st_size >= limits.max_file_bytes:
                    return True
        return False

    def truncate(self) -> None:
        for path in (self.stdout, self.stderr):
            with contextlib.suppress(OSError):
                os.truncate(path, 0)

    def remove(self) -> None:
        shutil.rmtree(self.run_dir, ignore_errors=True)
        shutil.rmtree(self.output_dir, ignore_errors=True)


@dataclass
class SessionChild:
    pid: int
    pidfd: int
    request_fd: int
    status_fd: int
    files: RunFiles
    limits: SandboxLimits
    cpu_seconds: int


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def classify(
    record: dict[str, Any] | None,
    wait_status: int | None,
    timed_out: bool,
    output_full: bool,
    limits: SandboxLimits,
    cpu_used_s: float,
    cpu_limit_s: int,
    from_exit_status: bool = True,
) -> tuple[str, int | None, str]:
    """(status, exit_code, reason) of a finished run: the worker's own observations (its timer, the signal, the exit
    status) decide; the child's record only names the error. ``from_exit_status=False`` for a session cell, whose
    interpreter lives on (its record is then the only account of the cell)."""
    if timed_out:
        return "timeout", None, f"wall time limit of {limits.timeout_s:g}s exceeded"
    if wait_status is not None and os.WIFSIGNALED(wait_status):
        signum = os.WTERMSIG(wait_status)
        if signum == signal.SIGXCPU or (signum == signal.SIGKILL and cpu_used_s >= cpu_limit_s - 0.05):
            return "timeout", -signum, f"CPU time limit of {cpu_limit_s}s exceeded"
        if signum == signal.SIGXFSZ:
            return "output_limit", -signum, f"file size limit of {limits.max_file_mb:g} MB reached"
        return "killed", -signum, f"killed by {_signal_name(signum)}"
    exit_code = os.WEXITSTATUS(wait_status) if wait_status is not None else None
    if record is None:
        if exit_code == SETUP_FAILED_EXIT:
            return "sandbox_error", exit_code, "the sandbox could not be set up for this run"
        if output_full:
            return "output_limit", exit_code, f"output exceeds the file size limit of {limits.max_file_mb:g} MB"
        if exit_code == 0:
            return "ok", 0, ""
        return "error", exit_code, f"process exited with code {exit_code}"
    kind = record.get("kind")
    if exit_code is not None and from_exit_status:
        # the exit status decides ok / not ok; the record (which the snippet could have written) only explains
        if exit_code == 0:
            return "ok", 0, ""
        if kind == "exit":
            return "error", exit_code, f"SystemExit({exit_code})"
        if kind == "ok":  # a frame the run wrote itself: the exit status says otherwise
            return classify(None, wait_status, False, output_full, limits, cpu_used_s, cpu_limit_s)
    if kind == "ok":
        return "ok", exit_code if exit_code is not None else 0, ""
    if kind == "exit":
        code = int(record.get("code", 0))
        return ("ok", code, "") if code == 0 else ("error", code, f"SystemExit({code})")
    if kind == "interrupted":
        return "timeout", exit_code, f"interrupted after the wall time limit of {limits.timeout_s:g}s"
    error_type = str(record.get("type", "Exception"))
    message = str(record.get("message", ""))
    reason = f"{error_type}: {message}" if message else error_type
    if error_type == "MemoryError":
        return "memory_limit", exit_code, f"memory limit of {limits.memory_mb} MB exceeded (MemoryError)"
    if record.get("errno") == errno.ENOSPC:
        # the scratch space is full: a condition of the machine, not a verdict on the code (never cached; retried)
        return "sandbox_error", exit_code, f"no space left in the sandbox's scratch space ({reason})"
    if output_full or record.get("errno") == 27:  # EFBIG: the file-size limit refused a write
        return "output_limit", exit_code, f"file size limit of {limits.max_file_mb:g} MB reached ({reason})"
    return "error", exit_code, reason


class Worker:
    """The worker's request loop state: isolation info and the live session children."""

    def __init__(
        self, info: IsolationInfo, proto_fds: tuple[int, int], syscall_filter: SeccompFilter | None = None
    ) -> None:
        self.info = info
        self.proto_fds = proto_fds
        self.syscall_filter = syscall_filter
        self.sessions: dict[int, SessionChild] = {}
        self.next_session = 1
        #: set when the worker can no longer serve runs safely; the pool then replaces it
        self.unhealthy = ""
        #: anonymous memory every forked run starts with (shared with this worker until written)
        self.baseline_anon = _anon_bytes(os.getpid())

    # -- helpers ---------------------------------------------------------------------------------------------

    def _fork_child(self, files: RunFiles, limits: SandboxLimits, keep: tuple[int, ...], cpu_seconds: int) -> int:
        """Fork a locked-down child (only the ``keep`` descriptors stay open in it); returns 0 in the child."""
        pid = os.fork()
        if pid:
            return pid
        try:
            for fd in self.proto_fds:
                os.close(fd)
            enter_sandbox(
                self.info, limits, files.workdir, files.stdout, files.stderr, keep, cpu_seconds, self.syscall_filter
            )
        except BaseException:
            with contextlib.suppress(BaseException):
                os.write(2, traceback.format_exc().encode())
            os._exit(SETUP_FAILED_EXIT)
        return 0  # in the child

    def _session_pids(self) -> set[int]:
        return {child.pid for child in self.sessions.values()}

    def _kill_run(self, pid: int) -> None:
        """Kill a run's first process and everything it started (all at once where the run has its own user id)."""
        if self.info.mode == "namespaces":
            kill_user(self.info.run_uid(pid))
        else:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)

    def _clean_up_after(self, pid: int, keep: set[int]) -> None:
        """Kill whatever the finished run ``pid`` left behind (background processes, a fork bomb's survivors)."""
        if any(child not in keep for child in direct_children()):
            if self.info.mode == "namespaces":
                kill_user(self.info.run_uid(pid))
            kill_leftovers(keep)

    def _result(
        self,
        files: RunFiles,
        limits: SandboxLimits,
        record: dict[str, Any] | None,
        wait_status: int | None,
        timed_out: bool,
        started: float,
        cpu_used_s: float,
        cpu_limit_s: int,
        note: str = "",
        from_exit_status: bool = True,
    ) -> dict[str, Any]:
        stdout, cut_out = read_capped(files.stdout, limits.max_output_chars)
        stderr, cut_err = read_capped(files.stderr, limits.max_output_chars)
        status, exit_code, reason = classify(
            record,
            wait_status,
            timed_out,
            files.output_full(limits),
            limits,
            cpu_used_s,
            cpu_limit_s,
            from_exit_status,
        )
        if note:
            reason = f"{reason}; {note}" if reason else note
        result = ExecResult(status, stdout, stderr, exit_code, reason, time.monotonic() - started, cut_out or cut_err)
        return result.to_dict()

    # -- one-shot runs ---------------------------------------------------------------------------------------

    def run(self, code: str, limits: SandboxLimits) -> dict[str, Any]:
        files = RunFiles.create(self.info.scratch_dir, self.info.output_dir)
        status_r, status_w = os.pipe()
        started = time.monotonic()
        pid = self._fork_child(files, limits, (status_w,), limits.cpu_seconds)
        if pid == 0:  # the sandboxed child: it never returns from here
            exit_code = 1
            try:
                exit_code = run_once(code, status_w)
            finally:
                os._exit(exit_code)
        os.close(status_w)
        pidfd = os.pidfd_open(pid)
        deadline = started + limits.timeout_s
        timed_out = over_memory = False
        try:
            while True:
                wait = min(MEMORY_POLL_S, deadline - time.monotonic())
                ready, _, _ = select.select([pidfd], [], [], max(0.0, wait))
                if ready:
                    break
                if time.monotonic() >= deadline:
                    timed_out = True
                elif self._run_memory(pid) > limits.memory_mb * 1024 * 1024:
                    over_memory = True
                if timed_out or over_memory:
                    self._kill_run(pid)
                    break
            _, wait_status, usage = os.wait4(pid, 0)
        finally:
            os.close(pidfd)
        self._clean_up_after(pid, self._session_pids())
        record = self._read_record(status_r)
        os.close(status_r)
        try:
            cpu_used = usage.ru_utime + usage.ru_stime
            result = self._result(files, limits, record, wait_status, timed_out, started, cpu_used, limits.cpu_seconds)
            if over_memory:
                result["status"], result["exit_code"] = "memory_limit", None
                result["reason"] = f"memory limit of {limits.memory_mb} MB exceeded by the run's processes together"
            return result
        finally:
            files.remove()
            self._check_health()

    def _run_memory(self, pid: int) -> int:
        """Anonymous memory a multi-process run added on top of the preloaded state, over all its processes.

        ``RLIMIT_AS`` bounds each process; this bounds their sum, so forked children cannot multiply the limit. A
        lone process is left to ``RLIMIT_AS`` (no /proc reads for the common case).
        """
        processes = _descendants(pid)
        processes += [p for p in direct_children() if p != pid and p not in self._session_pids()]
        if not processes:
            return 0
        return sum(max(0, _anon_bytes(p) - self.baseline_anon) for p in [pid, *processes])

    def _check_health(self) -> None:
        """After a run: the scratch space must have room again; if not, this worker cannot serve and says so."""
        for folder in (self.info.scratch_dir, self.info.output_dir):
            stats = os.statvfs(folder)
            if stats.f_bavail * stats.f_frsize < MIN_FREE_SCRATCH_BYTES:
                self.unhealthy = f"scratch space {folder} is full after a run"

    @staticmethod
    def _read_record(status_fd: int) -> dict[str, Any] | None:
        os.set_blocking(status_fd, False)
        try:
            return recv_frame(status_fd, deadline=time.monotonic() + 0.05, max_bytes=1 << 20)
        except (ProtocolError, BlockingIOError, OSError):
            return None

    # -- sessions --------------------------------------------------------------------------------------------

    def _start_session_child(self, limits: SandboxLimits, cpu_seconds: int) -> SessionChild:
        files = RunFiles.create(self.info.scratch_dir, self.info.output_dir)
        request_r, request_w = os.pipe()
        status_r, status_w = os.pipe()
        pid = self._fork_child(files, limits, (request_r, status_w), cpu_seconds)
        if pid == 0:  # the sandboxed interpreter: it never returns from here
            try:
                serve_session(request_r, status_w)
            finally:
                os._exit(0)
        os.close(request_r)
        os.close(status_w)
        os.set_blocking(request_w, False)  # writes to a session have a deadline (see cell)
        return SessionChild(pid, os.pidfd_open(pid), request_w, status_r, files, limits, cpu_seconds)

    def _stop_session_child(self, child: SessionChild) -> tuple[int | None, float]:
        self._kill_run(child.pid)
        wait_status, cpu_used = None, 0.0
        with contextlib.suppress(ChildProcessError):
            _, wait_status, usage = os.wait4(child.pid, 0)
            cpu_used = usage.ru_utime + usage.ru_stime
        for fd in (child.pidfd, child.request_fd, child.status_fd):
            with contextlib.suppress(OSError):
                os.close(fd)
        self._clean_up_after(child.pid, self._session_pids() - {child.pid})
        child.files.remove()
        return wait_status, cpu_used

    def open_session(self, limits: SandboxLimits, cpu_seconds: int) -> dict[str, Any]:
        session_id = self.next_session
        self.next_session += 1
        self.sessions[session_id] = self._start_session_child(limits, cpu_seconds)
        return {"session": session_id}

    def close_session(self, session_id: int) -> dict[str, Any]:
        child = self.sessions.pop(session_id, None)
        if child is not None:
            self._stop_session_child(child)
        return {"closed": child is not None}

    def _restart(self, session_id: int, child: SessionChild) -> tuple[int | None, float]:
        outcome = self._stop_session_child(child)
        self.sessions[session_id] = self._start_session_child(child.limits, child.cpu_seconds)
        return outcome

    def _restarted(
        self, session_id: int, child: SessionChild, limits: SandboxLimits, started: float, timed_out: bool
    ) -> dict[str, Any]:
        """Kill a session's interpreter (dead, stubborn or confused), start a fresh one, and report what happened."""
        stdout, cut_out = read_capped(child.files.stdout, limits.max_output_chars)
        stderr, cut_err = read_capped(child.files.stderr, limits.max_output_chars)
        wait_status, cpu = self._restart(session_id, child)
        lost = "the session was restarted and its variables were lost"
        if timed_out:
            status, exit_code = "timeout", None
            reason = f"wall time limit of {limits.timeout_s:g}s exceeded and the cell did not stop on interrupt"
        else:
            status, exit_code, reason = classify(None, wait_status, False, False, limits, cpu, child.cpu_seconds)
            if status == "ok":
                status, reason = "error", f"the session process exited (code {exit_code})"
        result = ExecResult(
            status,  # type: ignore[arg-type]
            stdout,
            stderr,
            exit_code,
            f"{reason}; {lost}",
            time.monotonic() - started,
            cut_out or cut_err,
        ).to_dict()
        result["restarted"] = True
        return result

    def cell(self, session_id: int, code: str, timeout_s: float, display_last: bool) -> dict[str, Any]:
        """Run one cell in a session: past the wall time it gets SIGINT (KeyboardInterrupt, variables kept), and
        INTERRUPT_GRACE_S later, if still running, a fresh interpreter."""
        child = self.sessions.get(session_id)
        if child is None:
            return {"error": f"no open session {session_id}"}
        limits = child.limits.with_timeout(timeout_s)
        child.files.truncate()
        started = time.monotonic()
        self._drain(child.status_fd)  # frames a previous cell wrote itself are not this cell's answer
        try:
            request = {"code": code, "display_last": display_last}
            send_frame(child.request_fd, request, deadline=started + SESSION_WRITE_TIMEOUT_S)
        except OSError:  # the interpreter is gone (it died between cells)
            return self._restarted(session_id, child, limits, started, timed_out=False)
        except ProtocolError:  # it stopped reading its requests: it may not block this worker
            result = self._restarted(session_id, child, limits, started, timed_out=False)
            result["status"], result["exit_code"] = "error", None
            result["reason"] = (
                f"the session did not take its next cell within {SESSION_WRITE_TIMEOUT_S:g}s; "
                "the session was restarted and its variables were lost"
            )
            return result
        deadline = started + limits.timeout_s
        interrupted = False
        while True:
            ready, _, _ = select.select([child.status_fd, child.pidfd], [], [], max(0.0, deadline - time.monotonic()))
            record = None
            if child.status_fd in ready:
                with contextlib.suppress(ProtocolError):
                    record = recv_frame(child.status_fd, deadline=time.monotonic() + 5, max_bytes=1 << 20)
            if record is not None:
                if interrupted and record.get("kind") != "interrupted":
                    # a cell that caught KeyboardInterrupt and finished anyway still ran past its limit
                    record = {"kind": "interrupted"}
                self._stop_cell_processes(child)
                result = self._result(
                    child.files, limits, record, 0, False, started, 0.0, child.cpu_seconds, from_exit_status=False
                )
                if interrupted:
                    result["reason"] += "; the session keeps its variables"
                result["restarted"] = False
                return result
            if ready:  # the interpreter died (os._exit, a signal, its CPU budget) or sent garbage
                return self._restarted(session_id, child, limits, started, timed_out=False)
            if interrupted:  # the cell ignored the interrupt
                return self._restarted(session_id, child, limits, started, timed_out=True)
            interrupted = True
            with contextlib.suppress(ProcessLookupError):
                os.kill(child.pid, signal.SIGINT)
            deadline = time.monotonic() + INTERRUPT_GRACE_S

    @staticmethod
    def _drain(fd: int) -> None:
        os.set_blocking(fd, False)
        try:
            while os.read(fd, 1 << 16):
                pass
        except BlockingIOError:
            pass
        finally:
            os.set_blocking(fd, True)

    def _stop_cell_processes(self, child: SessionChild) -> None:
        """When a cell has returned, nothing it started may go on running: stop the (idle) interpreter, kill every
        descendant and every orphan it left, then let the interpreter continue."""
        others = self._session_pids() - {child.pid}
        if not _descendants(child.pid) and not [p for p in direct_children() if p not in self._session_pids()]:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(child.pid, signal.SIGSTOP)
        try:
            for _ in range(1000):
                leftovers = _descendants(child.pid)
                if not leftovers:
                    break
                for signum in (signal.SIGSTOP, signal.SIGKILL):
                    for pid in leftovers:
                        with contextlib.suppress(ProcessLookupError):
                            os.kill(pid, signum)
            kill_leftovers(others | {child.pid})
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child.pid, signal.SIGCONT)

    # -- request loop ----------------------------------------------------------------------------------------

    def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        op = request.get("op")
        if op == "run":
            return self.run(str(request["code"]), SandboxLimits.from_dict(request["limits"]))
        if op == "open_session":
            return self.open_session(SandboxLimits.from_dict(request["limits"]), int(request["cpu_seconds"]))
        if op == "cell":
            return self.cell(
                int(request["session"]),
                str(request["code"]),
                float(request["timeout_s"]),
                bool(request["display_last"]),
            )
        if op == "close_session":
            return self.close_session(int(request["session"]))
        if op == "ping":
            return {"pong": True, "sessions": len(self.sessions)}
        return {"error": f"unknown op {op!r}"}

    def shutdown(self) -> None:
        for session_id in list(self.sessions):
            self.close_session(session_id)
        kill_leftovers()
        shutil.rmtree(self.info.scratch_dir, ignore_errors=True)
        shutil.rmtree(self.info.output_dir, ignore_errors=True)


def _installed(modules: list[str]) -> set[str]:
    """Top-level names of ``modules`` that the interpreter can find (checked before isolation; imports nothing)."""
    found = set()
    for name in {module.split(".")[0] for module in modules}:
        with contextlib.suppress(ImportError, ValueError):
            if importlib.util.find_spec(name) is not None:
                found.add(name)
    return found


def _preload(modules: list[str]) -> tuple[list[str], list[str], dict[str, str]]:
    """Import ``modules``; returns (loaded, missing, the error of each missing one)."""
    loaded, missing, errors = [], [], {}
    for name in modules:
        try:
            importlib.import_module(name)
            loaded.append(name)
        except Exception as exc:
            missing.append(name)
            errors[name] = f"{type(exc).__name__}: {exc}"
    return loaded, missing, errors


#: Run once in a sandboxed child at start-up: the run's identity must be able to read the preloaded modules' files
#: (a module imported later from the same folders would fail otherwise, in every snippet).
VISIBILITY_PROBE = """
import os, sys
unreadable = []
for name in {names!r}:
    path = getattr(sys.modules.get(name), "__file__", None)
    if path:
        try:
            with open(path, "rb"):
                pass
            os.listdir(os.path.dirname(path))
        except OSError as exc:
            unreadable.append(f"{{name}}: {{exc}}")
if unreadable:
    raise SystemExit("\\n".join(unreadable))
"""


def _check_preload_inside(worker: Worker, loaded: list[str]) -> None:
    """Refuse to serve when a sandboxed run cannot see the interpreter's packages (a clear error at start-up, instead
    of ``ModuleNotFoundError`` in every snippet)."""
    if not loaded:
        return
    probe = worker.run(VISIBILITY_PROBE.format(names=loaded), SandboxLimits(timeout_s=30.0, memory_mb=256))
    if probe["status"] != "ok":
        raise RuntimeError(
            f"the preloaded modules are not readable inside the sandbox ({worker.info.mode} mode): "
            f"{probe['reason']}\n{probe['stderr']}"
        )


def main() -> int:
    # keep the protocol off fds 0/1 so that stray prints of imported libraries cannot corrupt it
    proto_in, proto_out = os.dup(0), os.dup(1)
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(2, 1)
    os.close(null)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        config = recv_frame(proto_in)
        preload = list(config.get("preload", []))
        installed = _installed(preload)
        info = setup_worker_isolation(
            str(config.get("isolation", "auto")), int(config.get("tmpfs_mb", 512)), int(config.get("uid_block", 0))
        )
        syscall_filter = None
        if info.mode != "unsafe-hook-only":
            # where the kernel does not count this user's processes (root without namespaces), no process is created
            syscall_filter = build_seccomp_filter(allow_processes=info.mode == "namespaces" or os.geteuid() != 0)
        loaded, missing, errors = _preload(preload)
        hidden = [name for name in missing if name.split(".")[0] in installed]
        if hidden:
            raise RuntimeError(
                f"installed modules cannot be imported inside the sandbox ({info.mode} mode: {info.detail}): "
                + "; ".join(f"{name}: {errors[name]}" for name in hidden)
            )
        warmup = str(config.get("warmup") or "")
        if warmup and not missing:
            exec(compile(warmup, "<warmup>", "exec"), {"__name__": "__warmup__"})  # our own code, see DEFAULT_WARMUP
        gc.collect()
        gc.freeze()  # keep the preloaded objects out of the children's collections (fewer copied pages)
        worker = Worker(info, (proto_in, proto_out), syscall_filter)
        _check_preload_inside(worker, loaded)
    except Exception:
        send_frame(proto_out, {"ready": False, "error": traceback.format_exc()})
        return 1
    send_frame(
        proto_out,
        {"ready": True, "mode": info.mode, "detail": info.detail, "preloaded": loaded, "missing": missing},
    )
    try:
        while True:
            try:
                request = recv_frame(proto_in)
            except (ProtocolError, FrameTimeoutError):
                break
            if request.get("op") == "exit":
                break
            try:
                reply = worker.handle(request)
            except Exception:
                reply = ExecResult("sandbox_error", reason=traceback.format_exc(limit=5)).to_dict()
            if worker.unhealthy:
                reply["unhealthy"] = worker.unhealthy
            send_frame(proto_out, reply)
            if worker.unhealthy:
                break  # the pool starts a fresh worker in this slot before its next run
    finally:
        worker.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
