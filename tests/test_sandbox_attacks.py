"""Real attacks on the sandbox's kernel layers, with the audit hook switched off first (nothing may depend on it).

Each variant runs ``tests/sandbox_attacks.py`` in a process of its own: as root in namespaces mode, as root in process
mode, and as an unprivileged user (the default mode there picks process isolation: Landlock and seccomp).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest

import mathcode_pile.sandbox
from mathcode_pile.sandbox import PythonSession, SandboxLimits, SandboxPool

ATTACKS = Path(__file__).with_name("sandbox_attacks.py")
UNPRIVILEGED_UID = 65534
#: the interpreter must be able to reach its own files by path (it starts workers by ``sys.executable``)
PROBE = "import os, sys; os.stat(sys.executable); os.listdir(sys.prefix)"


def run_attacks(command: list[str], env: dict[str, str]) -> dict[str, object]:
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=240, cwd="/")
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _interpreter_for(uid: int) -> str | None:
    """An interpreter that ``uid`` can run (the test's own may live under a folder only root can enter)."""
    for candidate in (sys.executable, getattr(sys, "_base_executable", ""), "/usr/bin/python3"):
        if not candidate or not shutil.which("setpriv"):
            continue
        probe = subprocess.run(
            ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", candidate, "-c", PROBE],
            capture_output=True,
            timeout=60,
        )
        if probe.returncode == 0:
            return candidate
    return None


def unprivileged_command(tmp_root: Path) -> tuple[list[str], dict[str, str]]:
    """The attack script as user ``nobody``: a world-readable copy of the sandbox package and its one dependency."""
    import pyseccomp

    python = _interpreter_for(UNPRIVILEGED_UID)
    if python is None:
        pytest.skip("no interpreter here that an unprivileged user may run (and no setpriv)")
    source = tmp_root / "src"
    shutil.copytree(Path(mathcode_pile.sandbox.__file__).parent, source / "mathcode_pile" / "sandbox")
    (source / "mathcode_pile" / "__init__.py").write_text("")
    shutil.copy(pyseccomp.__file__, source)
    shutil.copy(ATTACKS, source)
    for path in [tmp_root, *tmp_root.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    command = ["setpriv", f"--reuid={UNPRIVILEGED_UID}", f"--regid={UNPRIVILEGED_UID}", "--clear-groups", python]
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(source)}
    return [*command, str(source / ATTACKS.name), "auto"], env


def assert_contained(report: dict[str, object]) -> None:
    escape = report["escape"]
    assert isinstance(escape, dict) and escape, report
    # the hook really was off: ctypes loaded, which it refuses
    assert escape.pop("hook_disabled_ctypes_loaded") == "ESCAPED"
    escaped = {name: outcome for name, outcome in escape.items() if not str(outcome).startswith("refused")}
    assert not escaped, escaped
    assert report["host_files"] == [] and report["host_files_after_close"] == []
    assert report["new_sysv_segments"] == [] and report["new_sysv_segments_after_close"] == []
    # filling every writable place, then a benign run on the same (only) worker: it works, nothing is left over
    assert report["after_fill"] == ["ok", "42\n"] and report["leftovers"] == "[]"
    assert report["host_fill_files"] == []
    assert report["forged"][0] == "error", report["forged"]
    assert report["after_all"] == "42\n"


@pytest.mark.parametrize("mode", ["namespaces", "process"])
def test_attacks_with_the_hook_disabled_as_this_user(mode: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(Path(mathcode_pile.__file__).parents[1])}
    report = run_attacks([sys.executable, str(ATTACKS), mode], env)
    if mode == "namespaces" and os.geteuid() != 0:
        assert "needs root" in str(report["refused_to_start"])
        return
    assert report["mode"] == mode
    assert_contained(report)
    status, reason, _ = report["hogs"]
    if mode == "process" and os.geteuid() == 0:
        # nothing counts root's processes: the kernel refuses to create any (seccomp), hook or no hook
        assert (status == "error" and "Operation not permitted" in reason) or "not allowed" in reason
    else:
        assert status == "memory_limit" and "together" in reason


def test_attacks_as_an_unprivileged_user() -> None:
    if os.geteuid() != 0:
        report = run_attacks([sys.executable, str(ATTACKS), "auto"], dict(os.environ))
    else:
        root = Path(tempfile.mkdtemp(prefix="mathcode-unprivileged-", dir="/tmp"))
        try:
            command, env = unprivileged_command(root)
            report = run_attacks(command, env)
            # namespaces need root: asked for by name without it, the pool refuses to start and says why
            refused = run_attacks([*command[:-1], "namespaces"], env)
        finally:
            shutil.rmtree(root, ignore_errors=True)
        assert report["euid"] == UNPRIVILEGED_UID
        assert "namespaces mode needs root" in str(refused["refused_to_start"])
    assert report["mode"] == "process"
    assert_contained(report)
    assert report["hogs"][0] == "memory_limit"


def test_unsafe_mode_must_be_named_and_unknown_modes_are_rejected() -> None:
    with pytest.raises(ValueError, match="unsafe-hook-only"):
        SandboxPool(workers=1, preload=("math",), isolation="hook")
    with SandboxPool(workers=1, preload=("math",), isolation="unsafe-hook-only") as pool:
        assert pool.isolation_mode == "unsafe-hook-only" and "UNSAFE" in pool.worker_info().detail
        assert pool.run("print(1)").stdout == "1\n"


# -- sessions ------------------------------------------------------------------------------------------------------

LIMITS = SandboxLimits(timeout_s=3.0, memory_mb=256)


def test_a_cell_s_processes_are_gone_when_it_returns() -> None:
    with SandboxPool(workers=1, preload=("math",), limits=LIMITS) as pool:
        session = PythonSession(pool=pool)
        started = session.run_cell(
            textwrap.dedent(
                """
                import os, time
                for _ in range(3):
                    if os.fork() == 0:
                        os.setsid()
                        while True:
                            pass
                print("started")
                """
            )
        )
        assert started.status == "ok" and started.stdout == "started\n"
        census = session.run_cell("import os\nprint(len(os.listdir(f'/proc/{os.getpid()}/task')), os.getpid())")
        assert census.status == "ok"
        # a benign CPU-bound cell is not slowed into a timeout by leftover busy loops
        timed = time.monotonic()
        busy = session.run_cell("sum(range(3_000_000))")
        assert busy.status == "ok" and time.monotonic() - timed < LIMITS.timeout_s
        if pool.isolation_mode == "namespaces":
            alive = session.run_cell("import os\nprint(sorted(int(p) for p in os.listdir('/proc') if p.isdigit()))")
            assert alive.stdout.strip() == f"[1, {census.stdout.split()[1]}]"
        session.close()


def test_a_session_that_forges_frames_and_stops_reading_cannot_block_others() -> None:
    with SandboxPool(workers=1, preload=("math",), limits=LIMITS) as pool:
        bystander = PythonSession(pool=pool)
        assert bystander.run_cell("kept = 41").status == "ok"
        attacker = PythonSession(pool=pool)
        forged = attacker.run_cell(
            textwrap.dedent(
                """
                import fcntl, json, os, struct, threading, time
                frame = json.dumps({"kind": "ok"}).encode()
                for fd in range(3, 16):
                    try:
                        fcntl.fcntl(fd, 1031, 4096)  # F_SETPIPE_SZ: the smallest request pipe
                        os.write(fd, struct.pack(">I", len(frame)) + frame)
                    except OSError:
                        pass
                time.sleep(60)  # never back to reading requests
                """
            )
        )
        started = time.monotonic()
        big = attacker.run_cell("x = 1\n" + "#" * 200_000)
        assert time.monotonic() - started < 20
        assert big.status == "error" and "did not take its next cell" in big.reason and "restarted" in big.reason
        assert attacker.run_cell("print('fresh')").stdout == "fresh\n"
        assert bystander.run_cell("kept + 1").stdout == "42\n"
        assert forged.status in ("ok", "timeout")  # a session's own record is its only account; see the docs
        for session in (attacker, bystander):
            session.close()


def test_a_standalone_session_refuses_nothing_it_should_allow() -> None:
    with PythonSession(preload=("math",), limits=LIMITS) as session:
        assert session.run_cell("import math\nmath.factorial(6)").stdout == "720\n"
        assert session.run_cell("open('here.txt', 'w').write('ok')\nopen('here.txt').read()").stdout == "'ok'\n"


# -- infrastructure failures are not verdicts ----------------------------------------------------------------------


def test_infrastructure_failures_are_never_cached(tmp_path: Path) -> None:
    from mathcode_pile.llm.cache import RequestCache
    from mathcode_pile.translation.execution import run_snippets, sandbox_cache_key

    full = "import errno\nraise OSError(errno.ENOSPC, 'No space left on device')"
    codes = [full, "print(6 * 7)"]
    cache = RequestCache(tmp_path / "sandbox-cache")
    with SandboxPool(workers=1, preload=("math",), limits=LIMITS) as pool:
        first = run_snippets(pool, codes, LIMITS, cache)
        assert [r.status for r in first] == ["sandbox_error", "ok"]
        assert "no space left" in first[0].reason
        assert cache.get(sandbox_cache_key(full, LIMITS)) is None
        assert cache.get(sandbox_cache_key(codes[1], LIMITS))["stdout"] == "42\n"

    # a pool that cannot start (here: its worker is not ready within a millisecond) is an exception, not a row's
    # verdict: nothing is stored for it either
    unready = SandboxPool(workers=1, preload=("math",), limits=LIMITS, start_timeout_s=0.001)
    with unready, pytest.raises(mathcode_pile.sandbox.SandboxError, match="did not start"):
        run_snippets(unready, ["print(1)"], LIMITS, cache)
    assert cache.get(sandbox_cache_key("print(1)", LIMITS)) is None
