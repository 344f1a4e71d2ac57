"""The worker-level half of the sandbox: namespaces and mounts for a worker, then limits and identity per run.

Modes, chosen once per worker (see the package docstring for what each protects against):

``namespaces`` (root with ``CAP_SYS_ADMIN``): the worker moves into its own network namespace (only a loopback
interface that is down: nothing is reachable, not even 127.0.0.1 of the host), PID namespace (it is process 1 there:
it sees only its own runs, and when it dies the kernel kills every process left in it), IPC namespace and mount
namespace, where ``/proc`` shows that PID namespace only, fresh size-capped tmpfs (writable by root only) are mounted
over ``/tmp``, ``/var/tmp`` and ``/dev/shm`` with the interpreter's folders bound back read-only when they live
there, and a tmpfs covers any directory the unprivileged sandbox user cannot traverse on the way to the interpreter
(``/root`` when Python lives under it; only the interpreter's own folders are bound back in). Each run then gets a
user id of its own (unique across the pool's workers): it cannot write to the host's files or signal other
processes, ``RLIMIT_NPROC`` counts its own processes, and one ``kill(-1)`` under that id stops a fork bomb atomically.

``process`` (no root, or no ``CAP_SYS_ADMIN``): no namespaces; Landlock and seccomp (:mod:`.kernel`, applied to
every run in both modes) carry the filesystem, network, IPC and signal boundaries. ``RLIMIT_NPROC`` is set to the
user's current process count plus the allowance, which bounds a fork bomb but is shared with the user's other
processes; as root, where that limit does not apply, seccomp refuses to create processes at all.

``unsafe-hook-only``: resource limits and the audit hook only; never chosen automatically.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import resource
import signal
import stat
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from mathcode_pile.sandbox import kernel, linux
from mathcode_pile.sandbox.limits import SandboxLimits

logger = logging.getLogger(__name__)

#: Sandboxed runs get user ids above this one: outside any normal user range, and below 2**31 for tools that print
#: user ids as signed numbers.
UID_BASE = 1_000_000_000
#: Environment variables a snippet sees; nothing else of the parent's environment (tokens, keys) gets through.
SAFE_ENVIRONMENT = {
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "LANG": "C.UTF-8",
    "LC_ALL": "C.UTF-8",
    "PYTHONIOENCODING": "utf-8",
    "PYTHONDONTWRITEBYTECODE": "1",
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "NUMEXPR_NUM_THREADS": "1",
    "MPLBACKEND": "Agg",
}
PRIVATE_TMPFS = ("/tmp", "/var/tmp", "/dev/shm")
RUN_SMALL_TMPFS_MB = 64
PR_SET_CHILD_SUBREAPER = 36


#: Isolation modes; ``unsafe-hook-only`` runs untrusted code without any kernel layer and must be asked for by name.
ISOLATION_MODES = ("auto", "namespaces", "process", "unsafe-hook-only")
UID_BLOCKS = 4096


@dataclass(frozen=True)
class IsolationInfo:
    """What a worker managed to set up; reported to the parent and used for every run."""

    mode: str
    scratch_dir: str
    network_namespace: bool
    detail: str = ""
    #: distinguishes the user ids of this worker's runs from those of the pool's other workers (assigned by the pool)
    uid_block: int = 0
    #: Landlock ABI applied to every run (0: none)
    landlock_abi: int = 0
    #: (path, Landlock rights) a run may read; everything else is invisible to it
    read_rules: tuple[tuple[str, int], ...] = ()
    #: where runs' stdout / stderr files go (a filesystem of their own in namespaces mode); default: ``scratch_dir``
    output_dir: str = ""
    #: folders the interpreter needs (bound back into a run's private tmpfs when they live under one)
    needed_paths: tuple[str, ...] = ()
    #: size cap of a run's private ``/tmp`` (namespaces mode; ``/var/tmp`` and ``/dev/shm`` get at most 64 MB each)
    run_tmpfs_mb: int = 0

    def __post_init__(self) -> None:
        if not self.output_dir:
            object.__setattr__(self, "output_dir", self.scratch_dir)

    def run_uid(self, pid: int) -> int:
        """The user id of the run whose first process is ``pid`` (unique among the pool's live runs)."""
        return UID_BASE + ((self.uid_block % UID_BLOCKS) << 18) + (pid & 0x3FFFF)


def scrubbed_environment(workdir: str | None = None) -> dict[str, str]:
    """A minimal environment; ``HOME`` and ``TMPDIR`` point at the run's own directory."""
    env = dict(SAFE_ENVIRONMENT)
    if workdir is not None:
        env["HOME"] = workdir
        env["TMPDIR"] = workdir
    return env


def _needed_paths() -> list[str]:
    """Folders the sandboxed interpreter must be able to read: its prefixes, ``sys.path`` and this package."""
    candidates = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    candidates.add(str(Path(sys.executable).resolve().parent))
    candidates.update(p for p in sys.path if p)
    candidates.add(str(Path(__file__).resolve().parents[1]))
    # both spellings: a venv made of symlinks must stay reachable by the path Python uses, and its targets too
    spelled = {str(Path(p).absolute()) for p in candidates} | {str(Path(p).resolve()) for p in candidates}
    # the worker's working folder ('/') lands in sys.path through ``-m``: it is not a folder the interpreter needs
    return sorted(p for p in spelled if p != "/" and Path(p).is_dir())


def _untraversable_ancestors(paths: list[str]) -> dict[str, set[str]]:
    """For each path, its first ancestor that others cannot enter, mapped to the children needed below it."""
    blocked: dict[str, set[str]] = {}
    for path in paths:
        parts = Path(path).parts
        for depth in range(1, len(parts) - 1):
            ancestor = str(Path(*parts[: depth + 1]))
            if not Path(ancestor).stat().st_mode & stat.S_IXOTH:
                blocked.setdefault(ancestor, set()).add(parts[depth + 1])
                break
    return blocked


def _expose_through_tmpfs(ancestor: str, children: set[str], stash_root: str) -> None:
    """Cover ``ancestor`` with an empty traversable tmpfs and bind back only ``children`` (hides the rest)."""
    stashes = []
    for index, child in enumerate(sorted(children)):
        stash = str(Path(stash_root) / f"stash-{abs(hash(ancestor))}-{index}")
        Path(stash).mkdir(parents=True)
        linux.mount(str(Path(ancestor) / child), stash, None, linux.MS_BIND | linux.MS_REC)
        stashes.append((child, stash))
    linux.mount("tmpfs", ancestor, "tmpfs", linux.MS_NOSUID | linux.MS_NODEV, "mode=0755,size=1m")
    for child, stash in stashes:
        target = Path(ancestor) / child
        target.mkdir(parents=True, exist_ok=True)
        linux.mount(stash, str(target), None, linux.MS_MOVE)
        Path(stash).rmdir()


def _become_pid_namespace_init() -> None:
    """Fork; the parent only waits and mirrors the exit code, the child (process 1 of the new namespace) goes on.

    The parent stays in the caller's process group, so killing that group kills process 1 too, and with it, by the
    kernel's rule for PID namespaces, every process a run left behind.
    """
    child = os.fork()
    if child:
        while True:
            try:
                _, status = os.waitpid(child, 0)
                break
            except InterruptedError:
                continue
        os._exit(os.waitstatus_to_exitcode(status) & 0xFF)


def _outermost(paths: list[str]) -> list[str]:
    """``paths`` without those that lie inside another one of them."""
    kept: list[str] = []
    for path in sorted(paths):
        if not any(Path(path).is_relative_to(outer) for outer in kept):
            kept.append(path)
    return kept


def _mount_private_tmpfs(target: str, needed: list[str], tmpfs_mb: int, mode: str = "0755") -> list[str]:
    """Cover ``target`` with a fresh tmpfs, then bind the ``needed`` folders under it back in, read-only.

    A clone under ``/tmp`` (CI does that) keeps its venv and sources there: a plain tmpfs would hide the interpreter's
    own packages. The folder covered by the tmpfs stays reachable through a descriptor opened before the mount
    (``/proc/self/fd/N`` resolves to the hidden directory), so each needed folder is bound from there to the same
    place in the new tmpfs; the folders leading to it are created fresh (mode 0755, nothing else in them).
    """
    inside = _outermost([p for p in needed if Path(p).is_relative_to(target) and p != target])
    old = os.open(target, os.O_PATH | os.O_DIRECTORY)
    try:
        linux.mount("tmpfs", target, "tmpfs", linux.MS_NOSUID | linux.MS_NODEV, f"mode={mode},size={tmpfs_mb}m")
        for path in inside:
            relative = Path(path).relative_to(target)
            destination = Path(target) / relative
            for depth in range(1, len(relative.parts) + 1):
                step = Path(target, *relative.parts[:depth])
                if not step.exists():
                    step.mkdir(mode=0o755)
            linux.mount(f"/proc/self/fd/{old}/{relative}", str(destination), None, linux.MS_BIND | linux.MS_REC)
            linux.mount(
                None,
                str(destination),
                None,
                linux.MS_BIND | linux.MS_REMOUNT | linux.MS_RDONLY | linux.MS_NOSUID | linux.MS_NODEV,
            )
    finally:
        os.close(old)
    return inside


def namespaces_available() -> str:
    """Empty when this process may create the worker's namespaces, else why not (tried in a throw-away child)."""
    if os.geteuid() != 0:
        return "namespaces mode needs root"
    child = os.fork()
    if child == 0:
        try:
            linux.unshare(linux.CLONE_NEWNS | linux.CLONE_NEWNET | linux.CLONE_NEWPID | linux.CLONE_NEWIPC)
            linux.mount(None, "/", None, linux.MS_REC | linux.MS_PRIVATE)
            os._exit(0)
        except BaseException:
            os._exit(1)
    _, status = os.waitpid(child, 0)
    return "" if os.waitstatus_to_exitcode(status) == 0 else "unshare or mount refused (no CAP_SYS_ADMIN here)"


def _setup_namespaces(tmpfs_mb: int, uid_block: int) -> IsolationInfo:
    linux.unshare(linux.CLONE_NEWNS | linux.CLONE_NEWNET | linux.CLONE_NEWPID | linux.CLONE_NEWIPC)
    # nothing mounted from here on propagates back to the host
    linux.mount(None, "/", None, linux.MS_REC | linux.MS_PRIVATE)
    _become_pid_namespace_init()
    linux.mount("proc", "/proc", "proc", linux.MS_NOSUID | linux.MS_NODEV | linux.MS_NOEXEC)
    needed = _needed_paths()
    kept_visible: list[str] = []
    for target in PRIVATE_TMPFS:
        if Path(target).is_dir():
            # 0755: only root writes the worker's own tmpfs (scratch, outputs); runs get tmpfs of their own on top
            kept_visible += _mount_private_tmpfs(str(Path(target).resolve()), needed, tmpfs_mb)
    # after the tmpfs mounts: folders re-created inside them are traversable, the host's originals may not have been
    blocked = _untraversable_ancestors(needed)
    scratch = tempfile.mkdtemp(prefix="sandbox-", dir="/tmp")
    for ancestor, children in sorted(blocked.items()):
        _expose_through_tmpfs(ancestor, children, scratch)
    Path(scratch).chmod(0o711)
    detail = "private network, PID, IPC and mount namespaces, a user id per run"
    detail += f"; covered {sorted(blocked)}" if blocked else ""
    if kept_visible:
        detail += f"; kept visible read-only in the private tmpfs: {kept_visible}"
    # outputs on another tmpfs than the runs' folders: filling one's folder cannot break one's (or the next) output
    output_root = next((t for t in ("/var/tmp", "/dev/shm") if Path(t).is_dir() and Path(t).is_mount()), "/tmp")
    output = tempfile.mkdtemp(prefix="sandbox-out-", dir=output_root)
    return IsolationInfo(
        "namespaces",
        scratch,
        True,
        detail,
        uid_block=uid_block,
        output_dir=output,
        needed_paths=tuple(needed),
        run_tmpfs_mb=tmpfs_mb,
    )


def enter_run_tmpfs(info: IsolationInfo, workdir: str) -> None:
    """Per run (namespaces mode, in the forked child, still root): a mount namespace of its own with fresh,
    size-capped ``/tmp``, ``/var/tmp`` and ``/dev/shm``, and the run's folder re-created (empty) inside the new
    ``/tmp`` at the same path. They vanish with the run's last process: nothing written there outlives the run, and
    filling them affects no other run."""
    linux.unshare(linux.CLONE_NEWNS)
    for target in PRIVATE_TMPFS:
        if Path(target).is_dir():
            size = info.run_tmpfs_mb if target == "/tmp" else min(info.run_tmpfs_mb, RUN_SMALL_TMPFS_MB)
            _mount_private_tmpfs(str(Path(target).resolve()), list(info.needed_paths), size, mode="1777")
    Path(workdir).mkdir(mode=0o700, parents=True, exist_ok=True)


def run_read_rules(private_proc: bool) -> tuple[tuple[str, int], ...]:
    """What a run may read under Landlock: the interpreter, its packages, this project and a few system paths.

    ``/proc`` is readable in full only where it is the worker's private PID namespace; on the host's ``/proc`` a run
    may list entries and read a few global files, not other processes' ``environ``, ``cmdline`` or ``maps``.
    """
    # a rule covers everything beneath its folder: nested folders need none of their own (fewer rules, faster runs)
    rules = {path: kernel.READ_RIGHTS for path in _outermost([*_needed_paths(), *kernel.SYSTEM_READ_PATHS])}
    if not private_proc:
        rules["/proc"] = kernel.FS_READ_DIR
        rules.update({path: kernel.READ_RIGHTS for path in kernel.HOST_PROC_FILES})
    return tuple(sorted(rules.items()))


def setup_worker_isolation(requested: str = "auto", tmpfs_mb: int = 512, uid_block: int = 0) -> IsolationInfo:
    """Prepare the current (worker) process; runs once, before any snippet, in a single-threaded process.

    Raises :class:`~.kernel.KernelLayerError` when the requested mode (``auto``: the strongest available) cannot have
    its kernel layers here; only ``unsafe-hook-only`` runs without any.
    """
    if requested not in ISOLATION_MODES:
        raise ValueError(f"isolation must be one of {ISOLATION_MODES}, got {requested!r}")
    with contextlib.suppress(OSError):
        # orphans of a run are re-parented to this worker, which kills them (setsid cannot escape that)
        linux.prctl(PR_SET_CHILD_SUBREAPER, 1)
    abi = kernel.landlock_abi()
    landlock = f"Landlock ABI {abi}" if abi else "no Landlock"
    if requested == "unsafe-hook-only":
        logger.warning("sandbox: isolation 'unsafe-hook-only': untrusted code runs with NO kernel-enforced layer")
        scratch = tempfile.mkdtemp(prefix="mathcode-sandbox-")
        return IsolationInfo("unsafe-hook-only", scratch, False, "UNSAFE: resource limits and audit hook only")
    why_not = namespaces_available() if requested in ("auto", "namespaces") else "not requested"
    if requested == "namespaces" and why_not:
        raise kernel.KernelLayerError(f"sandbox isolation 'namespaces' is unavailable: {why_not}")
    if requested == "process" or why_not:
        if not abi:
            raise kernel.KernelLayerError(
                "no kernel layer for untrusted code: "
                + (f"namespaces unavailable ({why_not}); " if requested == "auto" else "")
                + "Landlock is not enabled in this kernel (needs Linux >= 5.13 with lsm=landlock). Run as root (or in "
                "a container with CAP_SYS_ADMIN) for the namespaces mode, or pass isolation='unsafe-hook-only' to "
                "accept running without any kernel-enforced boundary"
            )
        scratch = tempfile.mkdtemp(prefix="mathcode-sandbox-")
        Path(scratch).chmod(0o700)
        detail = f"{landlock}, seccomp, resource limits, scrubbed environment"
        return IsolationInfo("process", scratch, False, detail, uid_block, abi, run_read_rules(private_proc=False))
    info = _setup_namespaces(tmpfs_mb, uid_block)
    layers = f"; {landlock}, seccomp; per run: fresh /tmp ({tmpfs_mb} MB), /var/tmp, /dev/shm"
    rules = run_read_rules(private_proc=True) if abi else ()
    return dataclasses.replace(info, detail=info.detail + layers, landlock_abi=abi, read_rules=rules)


def count_user_processes(uid: int) -> int:
    """Processes (and threads, which RLIMIT_NPROC also counts) of ``uid``; used by the ``process`` mode."""
    total = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            if entry.stat().st_uid == uid:
                with open(f"/proc/{entry.name}/stat", "rb") as handle:
                    total += int(handle.read().rsplit(b")", 1)[1].split()[17])
        except (OSError, IndexError, ValueError):
            continue
    return total


def _address_space_in_use() -> int:
    with open("/proc/self/status", encoding="ascii") as handle:
        for line in handle:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0


def _set_limit(which: int, value: int) -> None:
    _, hard = resource.getrlimit(which)
    value = value if hard == resource.RLIM_INFINITY else min(value, hard)
    resource.setrlimit(which, (value, value))


def apply_limits(limits: SandboxLimits, mode: str, cpu_seconds: int | None = None) -> None:
    """Resource limits of the calling (sandboxed) process; inherited by anything it forks."""
    cpu = cpu_seconds if cpu_seconds is not None else limits.cpu_seconds
    # soft limit: SIGXCPU; hard limit one second later: SIGKILL, even if SIGXCPU is ignored
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1 if hard == resource.RLIM_INFINITY else min(cpu + 1, hard)))
    _set_limit(resource.RLIMIT_AS, _address_space_in_use() + limits.memory_mb * 1024 * 1024)
    _set_limit(resource.RLIMIT_FSIZE, limits.max_file_bytes)
    _set_limit(resource.RLIMIT_NOFILE, limits.max_open_files)
    _set_limit(resource.RLIMIT_CORE, 0)
    if mode == "namespaces":
        _set_limit(resource.RLIMIT_NPROC, limits.max_processes)
    elif os.geteuid() != 0:
        _set_limit(resource.RLIMIT_NPROC, count_user_processes(os.getuid()) + limits.max_processes)
    # root without namespaces: RLIMIT_NPROC does not apply to root; seccomp refuses new processes instead (and the
    # scan of /proc it would need costs more than the rest of a run's set-up)


def drop_privileges(uid: int) -> None:
    """Become ``uid`` (and group ``uid``) for good; no capability or set-uid program can bring root back."""
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)
    linux.prctl(linux.PR_SET_NO_NEW_PRIVS, 1)


def reset_signals() -> None:
    """Default dispositions in the child; SIGXFSZ ignored so a full output file raises an error instead of killing."""
    for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGALRM, signal.SIGCHLD, signal.SIGPIPE):
        signal.signal(signum, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)


def direct_children() -> list[int]:
    """Children of this (single-threaded) process, from ``/proc``; with the subreaper flag this includes orphans."""
    pid = os.getpid()
    try:
        with open(f"/proc/{pid}/task/{pid}/children", encoding="ascii") as handle:
            return [int(p) for p in handle.read().split()]
    except OSError:
        return []


def kill_user(uid: int) -> None:
    """SIGKILL every process of ``uid`` in this PID namespace at once: a forked reaper takes that id and calls
    ``kill(-1)``, which the kernel applies to all of them while no new process can be created."""
    reaper = os.fork()
    if reaper == 0:
        try:
            os.setresgid(uid, uid, uid)
            os.setresuid(uid, uid, uid)
            os.kill(-1, signal.SIGKILL)
        finally:
            os._exit(0)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(reaper, 0)


def kill_leftovers(keep: set[int] | frozenset[int] = frozenset(), max_rounds: int = 1000) -> int:
    """Stop, then kill and reap, every child except ``keep`` (orphans of runs included); returns how many.

    Stopping all of them first means none can fork while the others are being killed.
    """
    killed = 0
    for _ in range(max_rounds):
        children = [pid for pid in direct_children() if pid not in keep]
        if not children:
            break
        for signum in (signal.SIGSTOP, signal.SIGKILL):
            for child in children:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child, signum)
        killed += len(children)
        for child in children:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(child, 0)
    return killed
