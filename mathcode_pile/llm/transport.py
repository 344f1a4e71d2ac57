"""The HTTP side of the LLM client: one request to one endpoint in one of three dialects, on aiohttp.

Why not ``huggingface_hub.AsyncInferenceClient``: against a server that answers at once, at 64 requests in flight,
the translate stage reached 0.11 of a bare aiohttp loop's rate through it, and a profile put most of the time in its
httpx2/httpcore2 connection pool (assigning requests to connections, expiry checks, reading bodies). aiohttp's pool
does the same work for a fraction of the cost (figures in the README's performance section). The routes are those the
hub client used: OpenAI-compatible ``/v1/chat/completions`` and ``/v1/completions``, and TGI's native ``/generate``.

An error status becomes :class:`EndpointHTTPError`, whose ``response`` carries ``status_code`` and ``text`` so that
:func:`~mathcode_pile.llm.responses.failure_detail` reports it like any HTTP library's error.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp

from mathcode_pile.llm.responses import excerpt

#: Statuses worth another attempt: timeouts, rate limits, overload and gateway errors.
TRANSIENT_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


@dataclass(frozen=True)
class ErrorResponse:
    """What an endpoint answered with an error status (the attributes failure reports look for)."""

    status_code: int
    text: str


class EndpointHTTPError(RuntimeError):
    """The endpoint answered with an error status."""

    def __init__(self, url: str, status: int, body: str) -> None:
        super().__init__(f"HTTP {status} from {url}: {excerpt(body)}" if body.strip() else f"HTTP {status} from {url}")
        self.response = ErrorResponse(status, body)


class EndpointAnswerError(RuntimeError):
    """The endpoint answered 2xx with a body that is not the route's JSON (a proxy's page, a truncated body)."""


def is_transient(error: BaseException) -> bool:
    """True for failures worth retrying: rate limits, overload, 5xx, timeouts, dropped or refused connections."""
    if isinstance(error, EndpointHTTPError):
        return error.response.status_code in TRANSIENT_STATUS
    transient = (TimeoutError, asyncio.TimeoutError, ConnectionError, aiohttp.ClientConnectionError)
    return isinstance(error, (*transient, aiohttp.ClientPayloadError))


def base_url(endpoint: str) -> str:
    """The server root: ``http://host:8000/v1/`` and ``http://host:8000`` both name ``http://host:8000``."""
    return endpoint.rstrip("/").removesuffix("/v1")


def _openai_body(payload: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """The generation settings both OpenAI-compatible routes share, after the route's own ``fields``."""
    body = {
        **fields,
        "max_tokens": payload["max_new_tokens"],
        "temperature": payload["temperature"],
        "seed": payload["seed"],
    }
    if payload["stop"]:
        body["stop"] = payload["stop"]
    return body


def chat_request(payload: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    return "/v1/chat/completions", _openai_body(payload, model=payload["model"], messages=payload["messages"])


def completions_request(payload: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    # a TGI server takes no model name on this route; any other server is told which model to use
    named = {"model": payload["model"]} if payload["model"] != "tgi" else {}
    return "/v1/completions", _openai_body(payload, prompt=payload["prompt"], **named)


def generate_request(payload: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """TGI's native route; TGI refuses ``temperature: 0``, so greedy decoding leaves it out (``do_sample: false``)."""
    parameters: dict[str, Any] = {
        "max_new_tokens": payload["max_new_tokens"],
        "do_sample": payload["temperature"] > 0,
        "seed": payload["seed"],
        "details": True,
    }
    if payload["temperature"] > 0:
        parameters["temperature"] = payload["temperature"]
    if payload["stop"]:
        parameters["stop"] = payload["stop"]
    return "/generate", {"inputs": payload["prompt"], "parameters": parameters}


def parse_answer(mode: str, output: Any) -> dict[str, Any]:
    """``text``, token counts and finish reason from a route's JSON answer."""
    if mode == "text_generation":
        if isinstance(output, list) and output:  # TGI's root route answers a list of one
            output = output[0]
        details = output.get("details") or {}
        return {
            "text": output["generated_text"],
            "prompt_tokens": 0,
            "completion_tokens": int(details.get("generated_tokens") or 0),
            "finish_reason": str(details.get("finish_reason") or "") or None,
        }
    choice = output["choices"][0]
    usage = output.get("usage") or {}
    text = choice["message"].get("content") if mode == "chat" else choice.get("text")
    return {
        "text": "" if text is None else text,
        "prompt_tokens": int(usage.get("prompt_tokens") or 0),
        "completion_tokens": int(usage.get("completion_tokens") or 0),
        "finish_reason": choice.get("finish_reason"),
    }


REQUESTS = {"chat": chat_request, "completions": completions_request, "text_generation": generate_request}


class HttpSession:
    """One aiohttp session for one event loop, its connection pool as large as the requests allowed in flight (a
    smaller pool would queue requests inside aiohttp; a larger one would only hold idle sockets)."""

    def __init__(self, pool_size: int, timeout_s: float, api_key: str | None) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.loop = asyncio.get_running_loop()
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=pool_size, limit_per_host=pool_size),
            timeout=aiohttp.ClientTimeout(total=timeout_s),
            headers=headers,
            raise_for_status=False,
        )
        self._closer: AsyncIterator[None] | None = None

    async def start(self) -> HttpSession:
        """Tie the session's end to its loop's: ``asyncio.run`` closes the async generators of a loop before the
        loop itself, and this one's ``finally`` closes the session (a loop closed with its session open would log
        "Unclosed client session")."""
        self._closer = self._close_with_loop()
        await anext(self._closer)
        return self

    async def _close_with_loop(self) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await self.session.close()

    async def send(self, endpoint: str, payload: dict[str, Any]) -> dict[str, Any]:
        """One attempt of ``payload`` (see :meth:`LLMClient.request_payload`) at ``endpoint``; raises on failure."""
        route, body = REQUESTS[payload["mode"]](payload)
        url = base_url(endpoint) + route
        async with self.session.post(url, json=body) as response:
            raw = await response.read()
            if response.status >= 400:
                raise EndpointHTTPError(url, response.status, raw.decode("utf-8", "replace"))
        try:
            return parse_answer(payload["mode"], json.loads(raw))
        except (ValueError, KeyError, IndexError, TypeError, AttributeError) as error:
            raise EndpointAnswerError(
                f"{url} answered HTTP {response.status} with a body that is not the route's JSON "
                f"({type(error).__name__}: {error}): {raw[:200].decode('utf-8', 'replace')!r}"
            ) from error

    async def close(self) -> None:
        await self.session.close()

    def close_now(self) -> None:
        """Close from outside the session's loop, on that loop, when it is idle (a loop ``datasets`` left behind); a
        loop that ``asyncio.run`` ended has closed it already (:meth:`start`)."""
        if self.session.closed or self.loop.is_closed() or self.loop.is_running():
            return
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            self.loop.run_until_complete(self.session.close())


def close_sessions(sessions: list[HttpSession]) -> None:
    """Close every session of a client (its ``close``, and a finalizer when it is collected or the process ends)."""
    while sessions:
        sessions.pop().close_now()
