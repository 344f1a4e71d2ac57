"""Attacks on the sandbox, run by ``tests/test_sandbox_attacks.py`` in a process of their own (as root or as an
unprivileged user): ``python sandbox_attacks.py MODE`` prints one JSON report on its last line.

Kept a plain script (no pytest, no project imports beyond the sandbox) so that it runs under any interpreter and
user id the test picks.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from pathlib import Path

from mathcode_pile.sandbox import KernelLayerError, SandboxError, SandboxLimits, SandboxPool

#: Turns every check of the audit hook off from pure Python: its globals are read at call time, and an object that
#: claims to contain every event name and lists no path to check makes each branch pass.
DISABLE_HOOK = """
import re
import mathcode_pile.sandbox.guard as guard
class Everything(dict):
    def __contains__(self, key):
        return True
    def __getitem__(self, key):
        return ()
guard._PATH_EVENTS = Everything()
guard._is_write_open = lambda *args: False
guard._PROC_PRIVATE = re.compile("(?!)")
"""

ESCAPES = """
import ctypes, json, os, socket, sqlite3
results = {}
def attempt(name, action):
    try:
        outcome = action()
        results[name] = "ESCAPED" if outcome is not False else "refused: failed"
    except BaseException as exc:
        results[name] = f"refused: {type(exc).__name__}: {exc}"[:200]
libc = ctypes.CDLL(None, use_errno=True)
attempt("hook_disabled_ctypes_loaded", lambda: libc is not None)
attempt("shell", lambda: os.system("echo escaped > /dev/null") == 0)
attempt("ctypes_unshare_user", lambda: libc.unshare(0x10000000) == 0)
def dir_fd_write():
    folder = os.open(HOST_DIR, os.O_PATH | os.O_DIRECTORY)
    os.close(os.open(NAME + ".dirfd", os.O_CREAT | os.O_WRONLY, 0o644, dir_fd=folder))
attempt("dir_fd_write", dir_fd_write)
def sqlite_write():
    connection = sqlite3.connect(os.path.join(HOST_DIR, NAME + ".db"))
    connection.execute("create table t (x)")
    connection.commit()
attempt("sqlite_write", sqlite_write)
attempt("socket_bind_write", lambda: socket.socket(socket.AF_UNIX).bind(os.path.join(HOST_DIR, NAME + ".sock")))
attempt("sysv_shmget", lambda: libc.shmget(0, 4096, 0o1666) >= 0)
attempt("pipeline_environ", lambda: "HF_TOKEN" in open(f"/proc/{PIPELINE_PID}/environ").read())
attempt("parent_environ", lambda: len(open(f"/proc/{os.getppid()}/environ").read()) >= 0)
attempt("tcp_connect", lambda: socket.create_connection(("127.0.0.1", PORT), timeout=2))
attempt("signal_pipeline", lambda: os.kill(PIPELINE_PID, 0))
attempt("abstract_socket_connect", lambda: socket.socket(socket.AF_UNIX).connect(ABSTRACT))
print(json.dumps(results))
"""

FILL_SCRATCH = """
import os
written = 0
for target in ("/tmp", "/var/tmp", "/dev/shm", "."):
    try:
        folder = os.open(target, os.O_PATH | os.O_DIRECTORY)
        for index in range(16):
            fd = os.open(f"fill-{index}", os.O_CREAT | os.O_WRONLY, 0o644, dir_fd=folder)
            try:
                os.write(fd, b"x" * (4 << 20))
                written += 4
            finally:
                os.close(fd)
    except OSError:
        continue
print(written)
"""

LEFTOVERS = """
import os
seen = []
for folder in ("/tmp", "/var/tmp", "/dev/shm", "."):
    try:
        seen += [name for name in os.listdir(folder) if name.startswith("fill-")]
    except OSError:
        pass  # not even readable to a run: nothing of a run can be there
print(sorted(seen))
"""

MEMORY_HOGS = """
import os, time
children = []
for _ in range(4):
    pid = os.fork()
    if pid == 0:
        block = bytearray(200 << 20)
        for offset in range(0, len(block), 4096):
            block[offset] = 1
        time.sleep(30)
        os._exit(0)
    children.append(pid)
for pid in children:
    os.waitpid(pid, 0)
"""

FORGED_FRAME = """
import json, os, struct
frame = json.dumps({"kind": "ok"}).encode()
for fd in range(3, 64):
    try:
        os.write(fd, struct.pack(">I", len(frame)) + frame)
    except OSError:
        pass
raise RuntimeError("the real outcome")
"""


def sysv_segments() -> list[str]:
    return Path("/proc/sysvipc/shm").read_text().splitlines()[1:]


def main(mode: str) -> dict[str, object]:
    report: dict[str, object] = {"euid": os.geteuid(), "mode_requested": mode}
    limits = SandboxLimits(timeout_s=10, memory_mb=256, max_file_mb=4, max_processes=16)
    host_dir = "/run/lock" if os.access("/run/lock", os.W_OK) else "/tmp"
    name = f"mathcode-sandbox-attack-{os.getpid()}"
    listener = socket.create_server(("127.0.0.1", 0))
    abstract = socket.socket(socket.AF_UNIX)
    abstract.bind(f"\0{name}")
    abstract.listen()
    segments_before = sysv_segments()
    try:
        pool = SandboxPool(workers=1, limits=limits, preload=("math",), isolation=mode, tmpfs_mb=32)
        report["mode"] = pool.isolation_mode
    except (SandboxError, KernelLayerError) as exc:
        report["refused_to_start"] = str(exc)[-600:]
        return report
    with pool:
        constants = (
            f"HOST_DIR = {host_dir!r}\nNAME = {name!r}\nPIPELINE_PID = {os.getpid()}\n"
            f"PORT = {listener.getsockname()[1]}\nABSTRACT = {f'{chr(0)}{name}'!r}\n"
        )
        escape = pool.run(DISABLE_HOOK + constants + ESCAPES)
        report["escape_status"] = escape.status
        report["escape"] = json.loads(escape.stdout.strip().splitlines()[-1]) if escape.stdout.strip() else {}
        report["escape_stderr"] = escape.stderr[-500:]
        report["host_files"] = sorted(p.name for p in Path(host_dir).glob(f"{name}*"))
        report["new_sysv_segments"] = [s for s in sysv_segments() if s not in segments_before]
        fill = pool.run(DISABLE_HOOK + FILL_SCRATCH)
        report["fill"] = (fill.status, fill.stdout.strip())
        benign = pool.run("print(6 * 7)")
        report["after_fill"] = (benign.status, benign.stdout)
        report["leftovers"] = pool.run(LEFTOVERS).stdout.strip()
        report["host_fill_files"] = [str(p) for d in ("/tmp", "/var/tmp", "/dev/shm") for p in Path(d).glob("fill-*")]
        started = time.monotonic()
        hogs = pool.run(DISABLE_HOOK + MEMORY_HOGS)
        report["hogs"] = (hogs.status, hogs.reason, round(time.monotonic() - started, 1))
        forged = pool.run(FORGED_FRAME)
        report["forged"] = (forged.status, forged.reason)
        report["after_all"] = pool.run("print(6 * 7)").stdout
    report["host_files_after_close"] = sorted(p.name for p in Path(host_dir).glob(f"{name}*"))
    report["new_sysv_segments_after_close"] = [s for s in sysv_segments() if s not in segments_before]
    return report


if __name__ == "__main__":
    os.environ["HF_TOKEN"] = "hf_secret_the_sandbox_must_not_see"
    print(json.dumps(main(sys.argv[1])))
