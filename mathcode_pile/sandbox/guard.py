"""An audit hook (PEP 578) installed in every sandboxed interpreter: friendly early errors, not a boundary.

The boundaries are the kernel's (namespaces, Landlock, seccomp, limits; see the package docstring). This hook turns
the common attempts into a readable ``SandboxViolationError`` before the kernel refuses them with a bare errno: it
refuses

- sockets of any family but ``AF_UNIX``, ``ctypes``, ``gc`` object walks, running other programs,
- opening files for writing, and creating, renaming, removing or re-moding paths, outside the working directory,
- reading other processes' environment, memory or file descriptors under ``/proc``,
- signalling processes outside the sandbox's own process group,
- forking, where the process count cannot be limited (root without namespaces).

Code in the sandbox can switch it off (its checks read this module's globals at call time, and native code makes
system calls directly); the attack tests do exactly that, and every attack must still fail.
"""

from __future__ import annotations

import os
import re
import socket
import sys
from typing import Any

_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC
_PROC_PRIVATE = re.compile(r"^/proc/(\d+|self|thread-self)/(?:task/\d+/)?(?:environ|mem|fd|fdinfo|map_files)(?:/|$)")
#: Path-changing events and the positions of their path arguments that must lie inside the working directory.
_PATH_EVENTS: dict[str, tuple[int, ...]] = {
    "os.remove": (0,),
    "os.rename": (0, 1),
    "os.rmdir": (0,),
    "os.mkdir": (0,),
    "os.chmod": (0,),
    "os.chown": (0,),
    "os.chflags": (0,),
    "os.link": (0, 1),
    "os.symlink": (1,),
    "os.truncate": (0,),
    "os.utime": (0,),
    "os.mkfifo": (0,),
    "os.mknod": (0,),
    "shutil.rmtree": (0,),
    "shutil.copyfile": (1,),
    "shutil.move": (0, 1),
}
_BLOCKED_EVENTS = {
    "os.system": "running a shell",
    "os.exec": "running another program",
    "os.posix_spawn": "running another program",
    "os.spawn": "running another program",
    "os.startfile": "running another program",
    "subprocess.Popen": "running another program",
    "pty.spawn": "running another program",
    "gc.get_objects": "walking interpreter objects",
    "gc.get_referrers": "walking interpreter objects",
    "gc.get_referents": "walking interpreter objects",
    "sys.setprofile": "installing interpreter hooks",
    "sys._current_frames": "inspecting other threads",
    "socket.sethostname": "changing the host name",
}


class SandboxViolationError(PermissionError):
    """Raised inside the sandbox when code tries something the sandbox forbids."""


def _is_write_open(mode: Any, flags: Any) -> bool:
    if isinstance(mode, str):
        return any(ch in mode for ch in "wax+")
    return isinstance(flags, int) and bool(flags & _WRITE_FLAGS)


def install_audit_guard(
    workdir: str,
    allow_output_paths: tuple[str, ...] = (),
    allow_fork: bool = True,
    writable_roots: tuple[str, ...] = (),
) -> None:
    """Install the hook; from now on the interpreter may write only under ``workdir`` (and ``/dev/null``).

    ``allow_fork=False`` also refuses ``os.fork``: for root without namespaces, where ``RLIMIT_NPROC`` is not enforced
    and nothing else would bound a fork bomb.
    """
    root = os.path.realpath(workdir)
    allowed_exact = {root, "/dev/null", *(os.path.realpath(p) for p in allow_output_paths)}
    # the working directory and the run's own private temporary folders (namespaces mode)
    prefixes = tuple(p + os.sep for p in (root, *(os.path.realpath(r) for r in writable_roots)))
    allowed_exact.update(p.rstrip(os.sep) for p in prefixes)
    own_pgid = os.getpgid(0)
    realpath = os.path.realpath
    fspath = os.fspath
    violation = SandboxViolationError

    def inside(path: Any) -> bool:
        if isinstance(path, int):  # an already open descriptor: opening it was checked
            return True
        try:
            resolved = realpath(fspath(path) if not isinstance(path, bytes) else path.decode("utf-8", "replace"))
        except (TypeError, ValueError):
            return False
        return resolved in allowed_exact or resolved.startswith(prefixes)

    def hook(event: str, args: tuple[Any, ...]) -> None:
        if event == "open":
            path, mode, flags = args
            if path is None or isinstance(path, int):
                return
            text = path.decode("utf-8", "replace") if isinstance(path, bytes) else str(path)
            private = _PROC_PRIVATE.match(text) if text.startswith("/proc/") else None
            if private and private.group(1) not in ("self", "thread-self", str(os.getpid())):
                raise violation(f"sandbox: reading {text} (another process) is not allowed")
            if _is_write_open(mode, flags) and not inside(path):
                raise violation(f"sandbox: writing outside the working directory is not allowed: {text}")
        elif event in _PATH_EVENTS:
            for position in _PATH_EVENTS[event]:
                target = args[position] if position < len(args) else None
                if target is not None and not inside(target):
                    raise violation(f"sandbox: {event} outside the working directory is not allowed: {target}")
        elif event == "socket.__new__":
            family = args[1] if len(args) > 1 else None
            if family != socket.AF_UNIX:
                raise violation("sandbox: network access is not allowed")
        elif event in ("socket.connect", "socket.bind", "socket.sendto", "socket.sendmsg"):
            address = args[1] if len(args) > 1 else None
            if not isinstance(address, str | bytes):
                raise violation("sandbox: network access is not allowed")
        elif event in ("socket.getaddrinfo", "socket.gethostbyname", "socket.gethostbyaddr", "socket.getnameinfo"):
            raise violation("sandbox: network access is not allowed")
        elif event.startswith("ctypes."):
            raise violation("sandbox: ctypes is not allowed")
        elif event in ("os.kill", "os.killpg"):
            target = args[0]
            if event == "os.kill" and target in (0, os.getpid()):
                return
            group = target if event == "os.killpg" else None
            if group is None:
                if target < 0:
                    group = -target
                else:
                    try:
                        group = os.getpgid(target)
                    except OSError:
                        return  # no such process: the call fails by itself
            if group != own_pgid:
                raise violation("sandbox: signalling processes outside the sandbox is not allowed")
        elif event in ("os.fork", "os.forkpty") and not allow_fork:
            raise violation("sandbox: creating processes is not allowed under this isolation mode")
        elif event in _BLOCKED_EVENTS:
            raise violation(f"sandbox: {_BLOCKED_EVENTS[event]} is not allowed")

    sys.addaudithook(hook)
