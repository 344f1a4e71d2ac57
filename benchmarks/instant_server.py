"""An OpenAI-compatible (and TGI ``/generate``) server that answers at once, on 127.0.0.1, in its own process.

It measures the client, not a model: every chat, completions or generate request gets the same short answer with no
work behind it, so the request rate a client reaches against it is the client's own ceiling. It prints its port on
the first line of standard output and serves until stopped. Run: ``python benchmarks/instant_server.py``.
"""

from __future__ import annotations

import asyncio
import json
import sys

from aiohttp import web

ANSWER = "We compute the result.\n```python\nprint(6 * 7)\n```\n```output\n42\n```\nSo the answer is 42."
CHAT = json.dumps(
    {
        "id": "instant",
        "object": "chat.completion",
        "created": 0,
        "model": "instant",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": ANSWER}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 50, "completion_tokens": 30, "total_tokens": 80},
    }
).encode()
COMPLETION = json.dumps(
    {
        "id": "instant",
        "object": "text_completion",
        "created": 0,
        "model": "instant",
        "choices": [{"index": 0, "text": ANSWER, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 50, "completion_tokens": 30, "total_tokens": 80},
    }
).encode()
GENERATE = json.dumps(
    {"generated_text": ANSWER, "details": {"finish_reason": "eos_token", "generated_tokens": 30}}
).encode()


def answer(body: bytes) -> web.RequestHandler:
    async def handle(request: web.Request) -> web.Response:
        await request.read()  # the whole request is received, as a real server must
        return web.Response(body=body, content_type="application/json")

    return handle


async def serve() -> None:
    app = web.Application()
    app.router.add_post("/v1/chat/completions", answer(CHAT))
    app.router.add_post("/v1/completions", answer(COMPLETION))
    app.router.add_post("/generate", answer(GENERATE))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
    await site.start()
    print(site._server.sockets[0].getsockname()[1], flush=True)  # type: ignore[union-attr]
    await asyncio.Event().wait()


if __name__ == "__main__":
    try:
        asyncio.run(serve())
    except KeyboardInterrupt:
        sys.exit(0)
