"""Kernel-enforced layers applied to every sandboxed run, whatever the isolation mode: Landlock and seccomp.

Both are unprivileged (they need only ``no_new_privs``), so they hold for root and non-root alike, and no code in the
sandboxed process can lift them: they are properties of the process that the kernel checks on every system call and
that every child inherits.

Landlock (filesystem, TCP, abstract Unix sockets, signals)
    A ruleset that handles every filesystem right the running kernel knows: the run may read (and map) the
    interpreter, its packages and a few system folders, read and write its own working folder, and nothing else. No
    file, folder, socket file or FIFO can be created anywhere else, ``dir_fd`` or not. With ABI >= 4 TCP bind and
    connect are refused; with ABI >= 6 abstract Unix sockets and signals are scoped to the run. Landlock also keeps a
    sandboxed process from ptrace-reading any process outside its own domain, which is what closes
    ``/proc/<pid>/environ`` and ``/proc/<pid>/mem`` of the pipeline.

    Written with ``ctypes`` (three system calls) instead of the ``landlock`` package on PyPI: its only release is a
    development version whose ruleset structure stops at ABI 1 (no TCP rules, no scoping, no truncate right), and the
    whole interface is three calls and two small structures.

seccomp (system calls)
    A filter, built once per worker with ``pyseccomp`` (a small ``ctypes`` binding of the system's libseccomp2, API
    compatible with libseccomp's own Python module, which is not on PyPI), that makes the kernel refuse with
    ``EPERM``: SysV IPC, ``ptrace`` and ``process_vm_*``, ``unshare``, ``setns`` and ``clone`` with namespace flags,
    the mount family, keyrings, ``bpf``, ``perf_event_open``, ``userfaultfd``, ``io_uring``, module and reboot calls,
    ``execve`` (a snippet is Python; no other program runs), and sockets of any family but ``AF_UNIX``. ``clone3``
    answers ``ENOSYS`` (its flags live in memory a filter cannot read), so the C library falls back to ``clone``,
    whose flags are checked. Where nothing else bounds the number of processes (root without namespaces), creating a
    process at all is refused; threads stay allowed.
"""

from __future__ import annotations

import ctypes
import errno
import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from typing import Any

SYS_LANDLOCK_CREATE_RULESET = 444
SYS_LANDLOCK_ADD_RULE = 445
SYS_LANDLOCK_RESTRICT_SELF = 446
LANDLOCK_CREATE_RULESET_VERSION = 1
LANDLOCK_RULE_PATH_BENEATH = 1

FS_EXECUTE = 1 << 0
FS_WRITE_FILE = 1 << 1
FS_READ_FILE = 1 << 2
FS_READ_DIR = 1 << 3
FS_TRUNCATE = 1 << 14
FS_IOCTL_DEV = 1 << 15
#: every filesystem right of each ABI version (index = ABI)
FS_HANDLED_BY_ABI = {1: (1 << 13) - 1, 2: (1 << 14) - 1, 3: (1 << 15) - 1, 4: (1 << 15) - 1, 5: (1 << 16) - 1}
NET_BIND_TCP = 1
NET_CONNECT_TCP = 2
SCOPE_ABSTRACT_UNIX_SOCKET = 1
SCOPE_SIGNAL = 2

FILE_RIGHTS = FS_EXECUTE | FS_WRITE_FILE | FS_READ_FILE | FS_TRUNCATE | FS_IOCTL_DEV
READ_RIGHTS = FS_EXECUTE | FS_READ_FILE | FS_READ_DIR

#: System folders a Python run reads: shared libraries, time zones, the loader's cache, CPU topology for numpy.
SYSTEM_READ_PATHS = (
    "/usr",
    "/lib",
    "/lib32",
    "/lib64",
    "/bin",
    "/etc/ld.so.cache",
    "/etc/localtime",
    "/etc/ssl",
    "/etc/fonts",
    "/proc",
    "/sys/devices/system/cpu",
    "/dev/urandom",
    "/dev/random",
    "/dev/zero",
)
READ_WRITE_DEVICES = ("/dev/null",)
#: Global files of the host's /proc a run may read when /proc is not a private PID namespace's.
HOST_PROC_FILES = ("/proc/cpuinfo", "/proc/meminfo", "/proc/stat", "/proc/version")

CLONE_NAMESPACE_FLAGS = (
    0x00020000,  # CLONE_NEWNS
    0x02000000,  # CLONE_NEWCGROUP
    0x04000000,  # CLONE_NEWUTS
    0x08000000,  # CLONE_NEWIPC
    0x10000000,  # CLONE_NEWUSER
    0x20000000,  # CLONE_NEWPID
    0x40000000,  # CLONE_NEWNET
    0x00000080,  # CLONE_NEWTIME
)
CLONE_THREAD = 0x00010000
AF_UNIX = 1
#: System calls no snippet needs and every escape or cross-run leak in the review used.
DENIED_SYSCALLS = (
    "shmget",
    "shmat",
    "shmctl",
    "shmdt",
    "semget",
    "semop",
    "semtimedop",
    "semctl",
    "msgget",
    "msgsnd",
    "msgrcv",
    "msgctl",
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "pidfd_getfd",
    "kcmp",
    "unshare",
    "setns",
    "mount",
    "umount2",
    "pivot_root",
    "chroot",
    "open_tree",
    "move_mount",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "mount_setattr",
    "keyctl",
    "add_key",
    "request_key",
    "bpf",
    "perf_event_open",
    "userfaultfd",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    "init_module",
    "finit_module",
    "delete_module",
    "kexec_load",
    "kexec_file_load",
    "reboot",
    "swapon",
    "swapoff",
    "acct",
    "quotactl",
    "name_to_handle_at",
    "open_by_handle_at",
    "execve",
    "execveat",
)


class KernelLayerError(RuntimeError):
    """A kernel layer the isolation mode needs is not available here (the message says which and why)."""


@cache
def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _syscall(number: int, *args: Any) -> int:
    result = _libc().syscall(ctypes.c_long(number), *args)
    if result < 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))
    return int(result)


def landlock_abi() -> int:
    """The Landlock ABI version of the running kernel; 0 when it lacks Landlock or has it disabled."""
    try:
        return _syscall(SYS_LANDLOCK_CREATE_RULESET, None, ctypes.c_size_t(0), ctypes.c_uint32(1))
    except OSError:
        return 0


class _RulesetAttr(ctypes.Structure):
    _fields_ = [
        ("handled_access_fs", ctypes.c_uint64),
        ("handled_access_net", ctypes.c_uint64),
        ("scoped", ctypes.c_uint64),
    ]


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


def apply_landlock(abi: int, read_rules: Iterable[tuple[str, int]], write_paths: Iterable[str]) -> None:
    """Restrict the calling process (and all it will start) to ``read_rules`` (path, rights) and to writing
    ``write_paths``. Paths that do not exist are skipped. Needs ``no_new_privs`` (set by the caller before)."""
    handled = FS_HANDLED_BY_ABI[min(abi, 5)]
    attr = _RulesetAttr(handled, NET_BIND_TCP | NET_CONNECT_TCP if abi >= 4 else 0, 0)
    if abi >= 6:
        attr.scoped = SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL
    size = 8 if abi < 4 else 16 if abi < 6 else 24
    ruleset = _syscall(SYS_LANDLOCK_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(size), ctypes.c_uint32(0))
    try:
        for path, rights in [*read_rules, *((path, handled) for path in write_paths)]:
            try:
                fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
            except OSError:
                continue
            try:
                allowed = rights & handled
                if not stat.S_ISDIR(os.fstat(fd).st_mode):
                    allowed &= FILE_RIGHTS
                if allowed:
                    rule = _PathBeneathAttr(allowed, fd)
                    _syscall(
                        SYS_LANDLOCK_ADD_RULE,
                        ruleset,
                        ctypes.c_int(LANDLOCK_RULE_PATH_BENEATH),
                        ctypes.byref(rule),
                        ctypes.c_uint32(0),
                    )
            finally:
                os.close(fd)
        _syscall(SYS_LANDLOCK_RESTRICT_SELF, ruleset, ctypes.c_uint32(0))
    finally:
        os.close(ruleset)


@dataclass
class SeccompFilter:
    """A built (not yet loaded) seccomp filter; building takes milliseconds, loading it in a child microseconds."""

    context: Any

    def load(self) -> None:
        self.context.load()


def build_seccomp_filter(allow_processes: bool) -> SeccompFilter:
    """The deny-list filter described in the module docstring; raises :class:`KernelLayerError` if unavailable."""
    try:
        import pyseccomp as seccomp
    except (ImportError, OSError) as exc:
        raise KernelLayerError(f"seccomp is unavailable (pyseccomp over libseccomp2: {exc})") from exc
    denied = seccomp.ERRNO(errno.EPERM)
    context = seccomp.SyscallFilter(seccomp.ALLOW)
    for name in DENIED_SYSCALLS:
        try:
            context.add_rule(denied, name)
        except (OSError, ValueError, RuntimeError):
            continue  # a call this architecture does not have (e.g. an IPC multiplexer instead of shmget)
    for flag in CLONE_NAMESPACE_FLAGS:
        context.add_rule(denied, "clone", seccomp.Arg(0, seccomp.MASKED_EQ, flag, flag))
    context.add_rule(seccomp.ERRNO(errno.ENOSYS), "clone3")
    if not allow_processes:
        context.add_rule(denied, "clone", seccomp.Arg(0, seccomp.MASKED_EQ, CLONE_THREAD, 0))
        for name in ("fork", "vfork"):
            try:
                context.add_rule(denied, name)
            except (OSError, ValueError, RuntimeError):
                continue
    for name in ("socket", "socketpair"):
        context.add_rule(denied, name, seccomp.Arg(0, seccomp.NE, AF_UNIX))
    return SeccompFilter(context)
