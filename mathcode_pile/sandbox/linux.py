"""Thin ctypes wrappers over the Linux calls Python 3.11's ``os`` module lacks: unshare, mount, prctl.

Kept apart so that the isolation code reads as policy and this file as plumbing. Every wrapper raises ``OSError``
with the errno on failure, like the ``os`` functions do.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from functools import cache

CLONE_NEWNS = 0x00020000
CLONE_NEWNET = 0x40000000
CLONE_NEWPID = 0x20000000
CLONE_NEWIPC = 0x08000000

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_BIND = 4096
MS_MOVE = 8192
MS_REC = 16384
MS_PRIVATE = 1 << 18

PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_NO_NEW_PRIVS = 38


@cache
def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")


def unshare(flags: int) -> None:
    """Move the calling process into new namespaces (``CLONE_NEWNET``, ``CLONE_NEWNS``...)."""
    _check(_libc().unshare(ctypes.c_int(flags)), "unshare")


def mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    """``mount(2)``; strings are passed as UTF-8, ``None`` as NULL."""

    def encode(value: str | None) -> bytes | None:
        return None if value is None else value.encode("utf-8")

    _check(
        _libc().mount(encode(source), encode(target), encode(fstype), ctypes.c_ulong(flags), encode(data)),
        f"mount {target}",
    )


def umount(target: str) -> None:
    _check(_libc().umount2(target.encode("utf-8"), ctypes.c_int(0)), f"umount {target}")


def prctl(option: int, value: int) -> None:
    _check(_libc().prctl(ctypes.c_int(option), ctypes.c_ulong(value), 0, 0, 0), f"prctl({option})")
