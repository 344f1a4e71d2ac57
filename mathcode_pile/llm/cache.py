"""A persistent request cache so that a rerun never pays for an LLM request twice.

SQLite in WAL mode: one file, safe to read while another process writes, survives ``kill -9`` (a request is either
committed whole or absent). The key is a SHA-256 of the canonical JSON of everything that changes the answer:
endpoint mode, model, prompt or messages, and generation parameters.

From async code, :meth:`RequestCache.aput` commits the answers of all requests that finish together in one
transaction (group commit) on a writer thread, and returns once its answer is committed: the same guarantee as
:meth:`put`, without a transaction per request on the event loop (at 64 requests in flight against a fast server, the
per-request commits were the largest single cost left in the client).

Responses are stored as ASCII JSON, so any string survives the round trip (NUL bytes, and lone surrogates that SQLite
could not encode as UTF-8). An entry that does not read back as a JSON object (a file edited or damaged by hand) is
logged, removed and reported as absent: the request is made again instead of failing on every rerun.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import sqlite3
import threading
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)


def request_key(payload: dict[str, Any]) -> str:
    """Stable hash of a request payload (key order and whitespace do not matter)."""
    canonical = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    # surrogatepass: a prompt holding a lone surrogate gets a key instead of an exception (valid text: same bytes)
    return hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()


def _settle(futures: list[asyncio.Future[None]], error: BaseException | None) -> None:
    for future in futures:
        if not future.done():
            if error is None:
                future.set_result(None)
            else:
                future.set_exception(error)


class RequestCache:
    """Maps request keys to JSON responses on disk."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=60)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute("CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, response TEXT NOT NULL)")
        self._pending: list[tuple[str, str, asyncio.Future[None]]] = []
        self._pending_lock = threading.Lock()
        self._wake = threading.Event()
        self._writer: threading.Thread | None = None

    def get(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._conn.execute("SELECT response FROM responses WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        try:
            value = json.loads(row[0])
        except (json.JSONDecodeError, TypeError, RecursionError, ValueError) as exc:
            value, problem = None, f"{type(exc).__name__}: {exc}"
        else:
            problem = None if isinstance(value, dict) else f"a JSON {type(value).__name__}, not an object"
        if problem is None:
            return value
        logger.warning("%s: cached response %s… is unreadable (%s); it is removed and asked again", self.path,
                       key[:12], problem[:200])  # fmt: skip
        with self._lock:
            self._conn.execute("DELETE FROM responses WHERE key = ?", (key,))
        return None

    def put(self, key: str, response: dict[str, Any]) -> None:
        with self._lock:
            self._conn.execute(
                "INSERT OR REPLACE INTO responses (key, response) VALUES (?, ?)",
                (key, json.dumps(response, ensure_ascii=True)),
            )

    async def aput(self, key: str, response: dict[str, Any]) -> None:
        """:meth:`put` for async code: returns when the entry is committed, together with those queued meanwhile."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        with self._pending_lock:
            self._pending.append((key, json.dumps(response, ensure_ascii=True), future))
            if self._writer is None:
                self._writer = threading.Thread(target=self._write_pending, name="request-cache-writer", daemon=True)
                self._writer.start()
        self._wake.set()
        await future

    def _write_pending(self) -> None:
        """The writer thread: one transaction for whatever is queued, then wake each waiter on its own loop."""
        while True:
            with self._pending_lock:
                batch, self._pending = self._pending, []
                if not batch:
                    self._wake.clear()
            if not batch:
                if not self._wake.wait(timeout=5.0):  # idle for a while: end; the next aput starts a writer again
                    with self._pending_lock:
                        if not self._pending:
                            self._writer = None
                            return
                continue
            error: BaseException | None = None
            try:
                with self._lock:
                    self._conn.execute("BEGIN")
                    try:
                        self._conn.executemany(
                            "INSERT OR REPLACE INTO responses (key, response) VALUES (?, ?)",
                            [(key, text) for key, text, _ in batch],
                        )
                        self._conn.execute("COMMIT")
                    except BaseException:
                        self._conn.execute("ROLLBACK")
                        raise
            except Exception as exc:  # every waiter of the batch sees the failure, as a failed put would raise
                error = exc
            by_loop: dict[asyncio.AbstractEventLoop, list[asyncio.Future[None]]] = {}
            for _, _, future in batch:
                by_loop.setdefault(future.get_loop(), []).append(future)
            for loop, futures in by_loop.items():
                with contextlib.suppress(RuntimeError):  # a loop closed meanwhile has nobody left to wake
                    loop.call_soon_threadsafe(_settle, futures, error)

    def __len__(self) -> int:
        with self._lock:
            return int(self._conn.execute("SELECT COUNT(*) FROM responses").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __getstate__(self) -> dict[str, Any]:
        # datasets pickles map functions (for fingerprints and num_proc); reopen the connection on the other side.
        return {"path": str(self.path)}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["path"])  # type: ignore[misc]
