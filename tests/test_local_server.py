"""The embedded llama.cpp server is always stopped: normal exit, exception, SIGTERM, and even kill -9 of its parent."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

import pytest

from mathcode_pile.llm.embedded import find_embedded_gguf
from mathcode_pile.llm.local_server import LocalLlamaServer

pytestmark = pytest.mark.slow


def is_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is dead for our purpose
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split()[2] == "Z")


def wait_dead(pid: int, seconds: float = 15) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not is_alive(pid):
            return True
        time.sleep(0.1)
    return False


def test_embedded_model_is_found() -> None:
    path = find_embedded_gguf()
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and path.stat().st_size > 50_000_000


def test_server_answers_then_stops_on_exit_and_on_exception(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="boom"), LocalLlamaServer(log_path=tmp_path / "log") as server:
        with urllib.request.urlopen(f"{server.url}/v1/models", timeout=5) as response:
            assert response.status == 200
        assert server.url.startswith("http://127.0.0.1:")
        pid = server.process.pid  # type: ignore[union-attr]
        raise RuntimeError("boom")
    assert wait_dead(pid)
    assert server.process is None
    assert (tmp_path / "log").stat().st_size > 0


def _start_in_child(tmp_path: Path) -> tuple[subprocess.Popen[str], int]:
    script = textwrap.dedent(
        f"""
        import sys, time
        from mathcode_pile.llm.local_server import LocalLlamaServer
        with LocalLlamaServer(log_path={str(tmp_path / "log")!r}) as server:
            print(server.process.pid, flush=True)
            time.sleep(120)
        """
    )
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    server_pid = int(parent.stdout.readline())
    assert is_alive(server_pid)
    return parent, server_pid


def test_sigterm_of_the_parent_stops_the_server(tmp_path: Path) -> None:
    parent, server_pid = _start_in_child(tmp_path)
    parent.send_signal(signal.SIGTERM)
    parent.wait(timeout=30)
    assert wait_dead(server_pid)


def test_kill_minus_9_of_the_parent_still_stops_the_server(tmp_path: Path) -> None:
    parent, server_pid = _start_in_child(tmp_path)
    parent.kill()
    parent.wait(timeout=30)
    assert wait_dead(server_pid), "the llama.cpp server outlived its parent"


def test_a_bad_model_file_fails_fast_with_the_log_tail(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.gguf"
    bogus.write_bytes(b"not a gguf file")
    with pytest.raises(RuntimeError, match="exited with code"):
        LocalLlamaServer(model_path=bogus, log_path=tmp_path / "log", startup_timeout_s=60).start()
