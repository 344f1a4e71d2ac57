"""Start, health-check and always stop a local llama.cpp OpenAI-compatible server for the embedded model.

Used when no ``--endpoint`` is given, so ``make pile`` runs offline. The server binds 127.0.0.1 on a free port, its
log goes to a file (shown in errors), and it is stopped on normal exit, on exceptions and on Ctrl-C / SIGTERM.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import FrameType, TracebackType

from mathcode_pile.llm.embedded import find_embedded_gguf

logger = logging.getLogger(__name__)


def _die_with_parent() -> None:
    """Runs in the server child before exec: ask Linux to SIGTERM it when its parent dies (even by ``kill -9``)."""
    try:
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)
    except (OSError, AttributeError):  # not Linux: the context manager still stops it on every normal path
        pass


def find_free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LocalLlamaServer:
    """Context manager around ``python -m llama_cpp.server`` serving one GGUF file.

    Example::

        with LocalLlamaServer(log_path="work/server.log") as server:
            client = LLMClient(LLMConfig(llm_endpoint=server.url))
    """

    def __init__(
        self,
        model_path: str | Path | None = None,
        log_path: str | Path = "llama_server.log",
        n_ctx: int = 2048,
        n_threads: int | None = None,
        startup_timeout_s: float = 180.0,
        port: int | None = None,
    ) -> None:
        self.model_path = Path(model_path) if model_path else find_embedded_gguf()
        self.log_path = Path(log_path)
        self.n_ctx = n_ctx
        self.n_threads = n_threads or max(1, os.cpu_count() or 1)
        self.startup_timeout_s = startup_timeout_s
        self.port = port or find_free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self._previous_sigterm: signal.Handlers | None = None

    @property
    def url(self) -> str:
        """Base URL of the OpenAI-compatible API (``/v1/chat/completions`` lives under it)."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> LocalLlamaServer:
        try:
            import llama_cpp.server  # noqa: F401
        except ImportError as exc:
            raise RuntimeError(
                "the embedded model needs llama.cpp's server: pip install 'llama-cpp-python[server]==0.3.36' "
                "(or `make install`), or pass --endpoint URL of a running TGI / vLLM / OpenAI-compatible server"
            ) from exc
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        command = [
            sys.executable, "-m", "llama_cpp.server",
            "--model", str(self.model_path),
            "--host", "127.0.0.1",
            "--port", str(self.port),
            "--n_ctx", str(self.n_ctx),
            "--n_threads", str(self.n_threads),
        ]  # fmt: skip
        logger.info("starting embedded llama.cpp server on %s (log: %s)", self.url, self.log_path)
        log_file = self.log_path.open("ab")
        # A new session keeps terminal Ctrl-C away from the child: we stop it ourselves, after our own cleanup.
        self.process = subprocess.Popen(
            command, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=_die_with_parent
        )
        log_file.close()
        self._install_sigterm_handler()
        try:
            self._wait_until_healthy()
        except BaseException:
            self.stop()
            raise
        return self

    def _install_sigterm_handler(self) -> None:
        """Turn SIGTERM into an exception so ``__exit__`` runs and the server is stopped (main thread only)."""
        import threading

        if threading.current_thread() is not threading.main_thread():
            return

        def _raise_on_term(signum: int, frame: FrameType | None) -> None:
            raise KeyboardInterrupt(f"received signal {signum}")

        self._previous_sigterm = signal.signal(signal.SIGTERM, _raise_on_term)  # type: ignore[assignment]

    def _wait_until_healthy(self) -> None:
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"llama.cpp server exited with code {self.process.returncode} during start-up; "
                    f"last log lines:\n{self.log_tail()}"
                )
            try:
                with urllib.request.urlopen(f"{self.url}/v1/models", timeout=2) as response:
                    if response.status == 200:
                        logger.info("embedded server ready on %s", self.url)
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                pass
            time.sleep(0.25)
        raise TimeoutError(f"llama.cpp server not healthy after {self.startup_timeout_s}s; log:\n{self.log_tail()}")

    def log_tail(self, lines: int = 20) -> str:
        if not self.log_path.exists():
            return "(no log)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
            logger.info("embedded server on %s stopped", self.url)
        if self._previous_sigterm is not None:
            signal.signal(signal.SIGTERM, self._previous_sigterm)
            self._previous_sigterm = None

    def __enter__(self) -> LocalLlamaServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()
