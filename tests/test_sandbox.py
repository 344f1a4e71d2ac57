"""The sandbox: real forked workers, real limits, real attacks; after each one the pool must serve the next snippet."""

from __future__ import annotations

import asyncio
import os
import socket
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mathcode_pile.sandbox import PythonSession, SandboxLimits, SandboxPool
from mathcode_pile.sandbox.output import cap_text, strip_ansi

LIMITS = SandboxLimits(timeout_s=1.0, memory_mb=512, max_file_mb=4, max_processes=16, max_output_chars=2000)
#: wall-clock slack above a limit for kill, clean-up and a loaded 2-core machine
SLACK_S = 6.0


@pytest.fixture(scope="module")
def pool() -> Iterator[SandboxPool]:
    os.environ["HF_TOKEN"] = "hf_secret_for_the_sandbox_test"
    try:
        with SandboxPool(workers=2, limits=LIMITS) as sandbox_pool:
            sandbox_pool.worker_info()
            yield sandbox_pool
    finally:
        os.environ.pop("HF_TOKEN", None)


def assert_pool_still_serves(pool: SandboxPool) -> None:
    results = pool.run_many(["print(6 * 7)"] * 3)
    assert [r.status for r in results] == ["ok"] * 3
    assert [r.stdout for r in results] == ["42\n"] * 3


def run(pool: SandboxPool, code: str, **kwargs: object) -> tuple[object, float]:
    started = time.monotonic()
    result = pool.run(textwrap.dedent(code), **kwargs)  # type: ignore[arg-type]
    return result, time.monotonic() - started


# -- ordinary runs -------------------------------------------------------------------------------------------------


def test_preloaded_math_stack_and_result_fields(pool: SandboxPool) -> None:
    result, _ = run(pool, "import sympy, numpy\nprint(sympy.sqrt(8), numpy.int64(3) + 4)")
    assert result.status == "ok" and result.exit_code == 0 and result.reason == ""
    assert result.stdout == "2*sqrt(2) 7\n"
    assert result.duration_s > 0 and not result.truncated
    info = pool.worker_info()
    assert {"sympy", "numpy", "fractions", "math"} <= set(info.preloaded)


def test_every_run_starts_from_fresh_state(pool: SandboxPool) -> None:
    first, _ = run(pool, "import math\nmath.pi = 3\nleaked = 1\nprint(math.pi)")
    second, _ = run(pool, "import math\nprint(math.pi)\nprint(leaked)")
    assert first.stdout == "3\n"
    assert second.stdout.startswith("3.14159")
    assert second.status == "error" and "NameError" in second.reason


def test_exception_reports_type_message_and_only_user_frames(pool: SandboxPool) -> None:
    result, _ = run(pool, "def f():\n    return 1 / 0\nf()")
    assert result.status == "error" and result.exit_code == 1
    assert result.reason == "ZeroDivisionError: division by zero"
    assert 'File "<snippet>", line 2, in f' in result.stderr
    assert "mathcode_pile" not in result.stderr


def test_syntax_error_is_an_error(pool: SandboxPool) -> None:
    result, _ = run(pool, "print(")
    assert result.status == "error" and result.reason.startswith("SyntaxError")


def test_ansi_codes_are_stripped_and_output_capped(pool: SandboxPool) -> None:
    result, _ = run(pool, r"print('\x1b[31mred\x1b[0m'); print('z' * 10000)")
    assert result.stdout.startswith("red\n")
    assert result.truncated and len(result.stdout) < LIMITS.max_output_chars + 100
    assert strip_ansi("\x1b[1;32mok\x1b[0m") == "ok"
    assert cap_text("abcdef", 4) == ("ab\n... [2 characters cut] ...\nef", True)


def test_run_many_keeps_order_and_arun_works(pool: SandboxPool) -> None:
    results = pool.run_many([f"print({i} ** 2)" for i in range(12)])
    assert [r.stdout.strip() for r in results] == [str(i**2) for i in range(12)]

    async def two() -> list[object]:
        return await asyncio.gather(pool.arun("print('a')"), pool.arun("print('b')"))

    assert [r.stdout for r in asyncio.run(two())] == ["a\n", "b\n"]  # type: ignore[attr-defined]


def test_per_call_timeout_overrides_the_default(pool: SandboxPool) -> None:
    result, elapsed = run(pool, "import time\ntime.sleep(5)", timeout_s=0.5)
    assert result.status == "timeout" and "0.5s" in result.reason
    assert elapsed < 0.5 + SLACK_S


# -- containment: each finishes within its limit and the pool goes on --------------------------------------------


def test_infinite_loop_hits_the_wall_timeout(pool: SandboxPool) -> None:
    result, elapsed = run(pool, "while True:\n    pass")
    assert result.status == "timeout" and "wall time limit of 1s" in result.reason
    assert elapsed < LIMITS.timeout_s + SLACK_S
    assert_pool_still_serves(pool)


def test_cpu_limit_applies_when_lower_than_wall_time(pool: SandboxPool) -> None:
    limits = SandboxLimits(timeout_s=8.0, cpu_s=1.0)
    result, elapsed = run(pool, "while True:\n    pass", limits=limits)
    assert result.status == "timeout" and "CPU time limit" in result.reason
    assert elapsed < 8.0


def test_memory_bomb_hits_the_memory_limit(pool: SandboxPool) -> None:
    at_once, _ = run(pool, "x = [0] * 10**10")
    assert at_once.status == "memory_limit" and "512 MB" in at_once.reason
    # growing step by step (zero-filling takes a while on a loaded machine: a longer wall limit keeps it about memory)
    growing, elapsed = run(pool, "blocks = []\nwhile True:\n    blocks.append(bytearray(64 * 2**20))", timeout_s=20)
    assert growing.status == "memory_limit"
    assert elapsed < 20 + SLACK_S
    assert_pool_still_serves(pool)


def test_fork_bomb_is_contained_and_leaves_nothing_behind() -> None:
    code = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass"
    with SandboxPool(workers=1, limits=LIMITS, preload=("math",)) as small_pool:
        result, elapsed = run(small_pool, code)
        assert result.status in ("timeout", "killed")
        assert elapsed < LIMITS.timeout_s + SLACK_S
        census, _ = run(small_pool, "import os\nprint(sum(name.isdigit() for name in os.listdir('/proc')))")
        assert census.status == "ok"
        if small_pool.isolation_mode == "namespaces":
            # the worker's own PID namespace: the worker (1) and this census process only
            assert census.stdout.strip() == "2"
        assert_pool_still_serves(small_pool)


def test_hundred_megabytes_of_output_stop_at_the_file_cap(pool: SandboxPool) -> None:
    result, elapsed = run(pool, "line = 'y' * 999\nfor _ in range(100_000):\n    print(line)")
    assert result.status == "output_limit" and "4 MB" in result.reason
    assert result.truncated and len(result.stdout) < LIMITS.max_output_chars + 100
    assert elapsed < LIMITS.timeout_s + SLACK_S
    assert_pool_still_serves(pool)


def test_writes_stay_inside_the_temporary_working_directory(pool: SandboxPool, tmp_path: Path) -> None:
    target = tmp_path / "escaped.txt"
    result, _ = run(pool, f"open({str(target)!r}, 'w').write('x')")
    # refused by the hook, or (namespaces mode) written nowhere: the run's /tmp is a fresh tmpfs of its own
    assert result.status == "error"
    assert "outside the working directory" in result.reason or "No such file or directory" in result.reason
    assert not target.exists()
    inside, _ = run(
        pool, "import os\nopen('scratch.txt', 'w').write('ok')\nprint(os.getcwd())\nprint(open('scratch.txt').read())"
    )
    workdir, content = inside.stdout.split()
    assert inside.status == "ok" and content == "ok"
    assert not Path(workdir).exists()  # removed after the run (and, as root, never visible outside the sandbox)
    assert_pool_still_serves(pool)


def test_no_connection_to_a_listening_local_port(pool: SandboxPool) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        server.settimeout(0.5)
        port = server.getsockname()[1]
        result, _ = run(
            pool, f"import socket\ns = socket.create_connection(('127.0.0.1', {port}), timeout=1)\nprint('connected')"
        )
        assert result.status == "error" and "connected" not in result.stdout
        with pytest.raises(TimeoutError):
            server.accept()
    if pool.isolation_mode == "namespaces":
        # the kernel layer on its own: the network namespace has nothing but a loopback interface
        interfaces, _ = run(pool, "print(open('/proc/net/dev').read())")
        names = [line.split(":")[0].strip() for line in interfaces.stdout.splitlines()[2:] if ":" in line]
        assert names == ["lo"]
    assert_pool_still_serves(pool)


def test_environment_is_scrubbed_of_tokens(pool: SandboxPool) -> None:
    assert os.environ["HF_TOKEN"]  # set by the fixture before the workers started
    result, _ = run(pool, "import os\nprint(sorted(os.environ))\nprint(os.environ.get('HF_TOKEN'))")
    assert result.status == "ok" and "hf_secret" not in result.stdout
    assert result.stdout.splitlines()[1] == "None"
    parent_environ, _ = run(pool, f"print(open('/proc/{os.getpid()}/environ').read())")
    assert parent_environ.status == "error" and "hf_secret" not in parent_environ.stdout


def test_killing_the_parent_or_the_caller_fails(pool: SandboxPool) -> None:
    for target in ("os.getppid()", str(os.getpid())):
        result, _ = run(pool, f"import os, signal\nos.kill({target}, signal.SIGKILL)\nprint('killed it')")
        assert result.status == "error" and "killed it" not in result.stdout
    assert_pool_still_serves(pool)  # and this test process is still alive to check


@pytest.mark.parametrize(
    ("code", "status", "exit_code", "stdout"),
    [
        ("print('bye')\nimport sys\nsys.exit(0)", "ok", 0, "bye\n"),
        ("import sys\nsys.exit(3)", "error", 3, ""),
        ("print('partial')\nimport os\nos._exit(7)", "error", 7, "partial\n"),
    ],
)
def test_exit_calls(pool: SandboxPool, code: str, status: str, exit_code: int, stdout: str) -> None:
    result, _ = run(pool, code)
    assert (result.status, result.exit_code, result.stdout) == (status, exit_code, stdout)
    assert_pool_still_serves(pool)


def test_deep_recursion(pool: SandboxPool) -> None:
    default, _ = run(pool, "def f(n):\n    return f(n + 1)\nf(0)")
    assert default.status == "error" and "RecursionError" in default.reason
    unbounded, elapsed = run(pool, "import sys\nsys.setrecursionlimit(10**8)\ndef f(n):\n    return f(n + 1)\nf(0)")
    assert unbounded.status in ("error", "timeout", "memory_limit", "killed")
    assert elapsed < LIMITS.timeout_s + SLACK_S
    assert_pool_still_serves(pool)


@pytest.mark.parametrize(
    ("code", "status"),
    [
        (  # ignoring every catchable signal does not survive SIGKILL
            "import signal\nfor s in (signal.SIGXCPU, signal.SIGTERM, signal.SIGINT, signal.SIGHUP):\n"
            "    signal.signal(s, signal.SIG_IGN)\nwhile True:\n    pass",
            "timeout",
        ),
        ("import signal, time\nsignal.setitimer(signal.ITIMER_REAL, 0.2)\ntime.sleep(30)", "killed"),
        ("import os, signal\nos.kill(os.getpid(), signal.SIGKILL)", "killed"),
        (
            "import signal\nsignal.pthread_sigmask(signal.SIG_BLOCK, set(signal.Signals))\nwhile True:\n    pass",
            "timeout",
        ),
    ],
)
def test_signal_tricks(pool: SandboxPool, code: str, status: str) -> None:
    result, elapsed = run(pool, code)
    assert result.status == status
    assert elapsed < LIMITS.timeout_s + SLACK_S
    assert_pool_still_serves(pool)


@pytest.mark.parametrize(
    "code",
    [
        "import ctypes\nctypes.CDLL(None).getpid()",
        "import subprocess\nsubprocess.run(['id'])",
        "import os\nos.system('id')",
        "import gc\ngc.get_objects()",
    ],
)
def test_escape_hatches_are_refused(pool: SandboxPool, code: str) -> None:
    result, _ = run(pool, code)
    assert result.status == "error" and "SandboxViolationError" in result.reason


def test_a_dead_worker_is_replaced(pool: SandboxPool) -> None:
    victim = pool._workers[0]
    victim.kill()
    results = [pool.run("print(1)") for _ in range(4)]
    assert {r.status for r in results} <= {"ok", "sandbox_error"}
    assert results[-1].status == "ok"
    assert pool._workers[0] is not victim
    assert_pool_still_serves(pool)


def test_process_isolation_mode_still_guards() -> None:
    with SandboxPool(workers=1, limits=LIMITS, preload=("math",), isolation="process") as process_pool:
        assert process_pool.isolation_mode == "process"
        ok, _ = run(process_pool, "import math\nprint(math.factorial(5))")
        assert ok.stdout == "120\n"
        refused = ["import socket\nsocket.socket()", "open('/etc/mathcode-test', 'w')", "import os\nos.kill(1, 0)"]
        if os.geteuid() == 0:  # no kernel limit on processes for root without namespaces: forking is refused
            refused.append("import os\nos.fork()")
        for code in refused:
            result, _ = run(process_pool, code)
            assert result.status == "error" and "SandboxViolationError" in result.reason
        looping, elapsed = run(process_pool, "while True:\n    pass")
        assert looping.status == "timeout" and elapsed < LIMITS.timeout_s + SLACK_S


# -- stateful sessions (LCE inference) -----------------------------------------------------------------------------


def test_session_keeps_variables_and_shows_last_expression(pool: SandboxPool) -> None:
    with PythonSession(pool=pool) as session:
        assert session.run_cell("import sympy as sp\nx = sp.Symbol('x')\nroots = sp.solve(x**2 - 4, x)").stdout == ""
        shown = session.run_cell("roots")
        assert shown.status == "ok" and shown.stdout == "[-2, 2]\n"
        assert session.run_cell("print(len(roots))\nNone").stdout == "2\n"  # a None value is not shown
        assert session.run_cell("len(roots) * 21").stdout == "42\n"
        error = session.run_cell("undefined_name")
        assert error.status == "error" and "NameError" in error.reason and '"<cell' in error.stderr
        assert session.run_cell("roots[0]").stdout == "-2\n"  # an error does not reset the state


def test_session_timeout_interrupts_the_cell_and_keeps_state(pool: SandboxPool) -> None:
    with PythonSession(pool=pool) as session:
        session.run_cell("kept = 'still here'")
        started = time.monotonic()
        result = session.run_cell("import time\ntime.sleep(30)", timeout_s=0.5)
        assert result.status == "timeout" and "keeps its variables" in result.reason
        assert time.monotonic() - started < 0.5 + SLACK_S
        assert session.run_cell("kept").stdout == "'still here'\n"
        assert session.restarts == 0


def test_session_restarts_when_the_cell_ignores_interrupts_or_exits(pool: SandboxPool) -> None:
    with PythonSession(pool=pool) as session:
        session.run_cell("value = 1")
        stubborn = (
            "import time\nwhile True:\n    try:\n        time.sleep(10)\n    except KeyboardInterrupt:\n        pass"
        )
        result = session.run_cell(stubborn, timeout_s=0.5)
        assert result.status == "timeout" and "variables were lost" in result.reason
        assert session.restarts == 1
        lost = session.run_cell("value")
        assert lost.status == "error" and "NameError" in lost.reason
        exited = session.run_cell("import os\nos._exit(4)")
        assert exited.status == "error" and "variables were lost" in exited.reason
        assert session.restarts == 2
        assert session.run_cell("1 + 1").stdout == "2\n"


def test_session_limits_and_isolation(pool: SandboxPool) -> None:
    limits = SandboxLimits(timeout_s=3.0, memory_mb=256, max_file_mb=1, max_output_chars=500)
    with PythonSession(pool=pool, limits=limits) as session:
        memory = session.run_cell("big = bytearray(600 * 2**20)")
        assert memory.status == "memory_limit"
        flood = session.run_cell("for _ in range(20000):\n    print('w' * 100)")
        assert flood.status == "output_limit" and flood.truncated and len(flood.stdout) < 600
        assert session.run_cell("import os\nos.environ.get('HF_TOKEN')").stdout == ""
        assert session.run_cell("'\\x1b[1mbold\\x1b[0m'").stdout == "'\\x1b[1mbold\\x1b[0m'\n"
        assert session.run_cell("print('\\x1b[1mbold\\x1b[0m')").stdout == "bold\n"


def test_standalone_session_owns_its_worker() -> None:
    with PythonSession(preload=("math",), limits=SandboxLimits(timeout_s=2)) as session:
        assert session.run_cell("import math\nmath.gcd(12, 18)").stdout == "6\n"
        worker_process = session.pool._workers[0].process
    assert worker_process.poll() is not None  # closing the session stopped its private worker
    with pytest.raises(RuntimeError, match="closed"):
        session.run_cell("1")


def test_invalid_settings_are_rejected() -> None:
    with pytest.raises(ValueError, match="isolation"):
        SandboxPool(workers=1, isolation="vm")
    with pytest.raises(ValueError, match="timeout_s"):
        SandboxLimits(timeout_s=0)
    with pytest.raises(ValueError, match="memory_mb"):
        SandboxLimits(memory_mb=0)


# -- an interpreter that lives under /tmp (a CI clone): the private tmpfs must not hide it ------------------------

TMP_WORKER_SCRIPT = """
import json, sys
from mathcode_pile.sandbox import SandboxError, SandboxLimits, SandboxPool

report = {}
with SandboxPool(workers=1, preload=("math", "tmp_only_probe"), limits=SandboxLimits(timeout_s=10)) as pool:
    info = pool.worker_info()
    report["mode"], report["missing"] = info.mode, info.missing
    code = "import tmp_only_probe, tmp_only_lazy, mathcode_pile, sys\\n"
    code += "print(tmp_only_probe.VALUE + tmp_only_lazy.VALUE, sys.prefix == %r)" % sys.prefix
    result = pool.run(code)
    report["status"], report["stdout"], report["reason"] = result.status, result.stdout, result.reason
    report["write"] = pool.run("open(%r, 'w')" % (sys.prefix + "/written")).status
try:
    with SandboxPool(workers=1, preload=("math", "hidden_probe")) as pool:
        pool.worker_info()
    report["hidden"] = "started"
except SandboxError as exc:
    report["hidden"] = str(exc)
print(json.dumps(report))
"""


@pytest.fixture
def venv_under_tmp() -> Iterator[Path]:
    """A real venv (its own interpreter, site-packages and a copy of the sandbox package) in a 0700 folder of /tmp,
    under a path with a space."""
    import shutil
    import subprocess
    import sys
    import tempfile

    import pyseccomp

    import mathcode_pile.sandbox

    top = Path(tempfile.mkdtemp(prefix="mathcode-ci-", dir="/tmp"))
    root = top / "clone with space"  # as the CI clone's path
    root.mkdir()
    try:
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root / "venv")], check=True)
        site = next((root / "venv" / "lib").glob("python3*/site-packages"))
        (site / "tmp_only_probe.py").write_text("VALUE = 40\n")
        (site / "tmp_only_lazy.py").write_text("VALUE = 2\n")
        shutil.copy(pyseccomp.__file__, site)  # the sandbox's one dependency (a single module)
        package = root / "src" / "mathcode_pile"
        shutil.copytree(Path(mathcode_pile.sandbox.__file__).parent, package / "sandbox")
        (package / "__init__.py").write_text("")
        hidden = root / "hidden"  # readable by root only: the worker imports it, a sandboxed run could not
        hidden.mkdir(mode=0o700)
        (hidden / "hidden_probe.py").write_text("VALUE = 1\n")
        (site / "hidden.pth").write_text(f"{hidden}\n")
        yield root
    finally:
        shutil.rmtree(top, ignore_errors=True)


def test_an_interpreter_under_tmp_stays_visible_and_read_only(venv_under_tmp: Path) -> None:
    import json
    import subprocess

    python = str(venv_under_tmp / "venv" / "bin" / "python")
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(venv_under_tmp / "src")}
    done = subprocess.run(
        [python, "-c", TMP_WORKER_SCRIPT], env=env, capture_output=True, text=True, timeout=120, cwd="/"
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["missing"] == []
    assert (report["status"], report["stdout"]) == ("ok", "42 True\n"), report["reason"]
    assert report["write"] == "error"
    assert not (venv_under_tmp / "venv" / "written").exists()
    if report["mode"] == "namespaces":
        # installed but unreadable by the run's user id: the pool refuses to start and says why
        assert "not readable inside the sandbox" in report["hidden"] and "hidden_probe" in report["hidden"]
