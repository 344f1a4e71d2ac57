"""A real HTTP proxy on 127.0.0.1 that injects faults in front of an LLM server.

Each incoming request takes the next fault from a script ("429", "503", "500", "hang", "drop", "pass"); when it runs
out, requests pass through. ``500`` answers with a long HTML error page, as a gateway in front of a crashed server
does. ``hang`` holds the connection without answering (the client must time out), ``drop`` closes the
TCP connection without a response. Counters record what was received and what reached the upstream server.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
from collections import Counter
from collections.abc import Iterable

import aiohttp
from aiohttp import web

FAULTS = ("429", "503", "500", "hang", "drop", "pass")
#: The body of the ``500`` fault: a gateway's error page, far longer than what an error message should quote.
ERROR_PAGE = (
    "<html>\n<head><title>500 Internal Server Error</title></head>\n<body>\n<h1>Internal Server Error</h1>\n"
    + "<p>upstream worker crashed</p>\n" * 400
    + "</body>\n</html>\n"
)


class FaultProxy:
    def __init__(self, upstream: str, script: Iterable[str] = (), always: str | None = None, hang_s: float = 20.0):
        for fault in [*script, *([always] if always else [])]:
            if fault not in FAULTS:
                raise ValueError(f"unknown fault {fault!r}; choose from {FAULTS}")
        self.upstream = upstream.rstrip("/")
        self.script = list(script)
        self.always = always
        self.hang_s = hang_s
        self.counts: Counter[str] = Counter()
        #: request-body hash -> times the upstream answer was relayed back in full (a paid request)
        self.completed_bodies: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._runner: web.AppRunner | None = None
        self._stop: asyncio.Event | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _next_fault(self) -> str:
        with self._lock:
            if self.script:
                return self.script.pop(0)
            return self.always or "pass"

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        fault = self._next_fault()
        self.counts["received"] += 1
        self.counts[fault] += 1
        if fault == "429":
            return web.json_response({"error": "rate limited"}, status=429, headers={"Retry-After": "0"})
        if fault == "503":
            return web.json_response({"error": "overloaded"}, status=503)
        if fault == "500":
            return web.Response(text=ERROR_PAGE, status=500, content_type="text/html")
        if fault == "hang":
            await asyncio.sleep(self.hang_s)
            return web.json_response({"error": "gateway timeout"}, status=504)
        if fault == "drop":
            assert request.transport is not None
            request.transport.abort()
            raise ConnectionResetError("connection dropped by fault proxy")
        body = await request.read()
        headers = {k: v for k, v in request.headers.items() if k.lower() in ("content-type", "authorization")}
        async with (
            aiohttp.ClientSession() as session,
            session.request(request.method, self.upstream + request.path_qs, data=body, headers=headers) as upstream,
        ):
            payload = await upstream.read()
            self.counts["forwarded"] += 1
        response = web.Response(body=payload, status=upstream.status, content_type=upstream.content_type)
        await response.prepare(request)
        await response.write_eof()
        self.completed_bodies[hashlib.sha256(body).hexdigest()] += 1
        return response

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)

        async def main() -> None:
            app = web.Application()
            app.router.add_route("*", "/{tail:.*}", self._handle)
            self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
            await self._runner.setup()
            site = web.TCPSite(self._runner, "127.0.0.1", 0)
            await site.start()
            self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            self._stop = asyncio.Event()
            self._ready.set()
            await self._stop.wait()
            await self._runner.cleanup()

        self._loop.run_until_complete(main())

    def __enter__(self) -> FaultProxy:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("fault proxy did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=10)
