"""The one LLM client every stage uses: TGI ``text_generation``, OpenAI-compatible ``chat_completion`` or
OpenAI-compatible raw ``completions``.

Built on aiohttp (:mod:`mathcode_pile.llm.transport`, which says why not the hub's inference client) with what a corpus
build needs around it:
- one or several endpoints, each request to the least loaded, one that keeps failing out of rotation for a while
  (:mod:`mathcode_pile.llm.endpoints`),
- bounded concurrency (a semaphore and HTTP session per event loop; ``datasets`` runs async map functions on a loop of
  its own),
- retries with exponential backoff and jitter on 429/5xx, ``OverloadedError``, timeouts and dropped
  connections, capped, ending in an :class:`LLMRequestError` that says what happened,
- a persistent :class:`RequestCache`, consulted before any request, so reruns cost nothing,
- counters (requests, cache hits, retries, failures, tokens) for the stage statistics,
- answers made safe to store and failures that say what the server sent (:mod:`mathcode_pile.llm.responses`).
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
import weakref
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Literal

from mathcode_pile.config import ValidatedConfig
from mathcode_pile.llm.cache import RequestCache, request_key
from mathcode_pile.llm.endpoints import EndpointPool, parse_endpoints
from mathcode_pile.llm.responses import FailureDetail, answer_text, failure_detail
from mathcode_pile.llm.transport import TRANSIENT_STATUS, HttpSession, close_sessions, is_transient

logger = logging.getLogger(__name__)

__all__ = ["TRANSIENT_STATUS", "LLMClient", "LLMConfig", "LLMRequestError", "LLMResponse", "is_transient"]


@dataclass
class LLMConfig(ValidatedConfig):
    """How to reach the LLM. With no endpoint, the embedded model is served locally by llama.cpp."""

    llm_endpoint: str | None = field(
        default=None,
        metadata={"help": "Base URL of a TGI / vLLM / SGLang / llama.cpp server, or several separated by commas (each "
                  "request goes to the least loaded); empty starts the embedded model."},
    )  # fmt: skip
    llm_mode: Literal["chat", "text_generation", "completions"] = field(
        default="chat",
        metadata={"help": "'chat' uses /v1/chat/completions (any OpenAI-compatible server, chat template applied "
                  "server-side); 'text_generation' uses TGI's native generate route with a raw prompt; "
                  "'completions' sends a raw prompt to /v1/completions (vLLM, llama.cpp, SGLang, TGI)."},
    )  # fmt: skip
    llm_model: str = field(
        default="tgi", metadata={"help": "Model name sent to the server and used in the request cache key."}
    )
    llm_max_concurrency: int = field(default=4, metadata={"help": "Requests in flight at once."})
    llm_max_retries: int = field(default=6, metadata={"help": "Retries of a transient failure before giving up."})
    llm_timeout_s: float = field(default=300.0, metadata={"help": "Timeout of one HTTP request, in seconds."})
    llm_backoff_initial_s: float = field(default=0.5, metadata={"help": "Base of the exponential backoff."})
    llm_backoff_max_s: float = field(default=30.0, metadata={"help": "Cap of one backoff wait."})
    llm_cache_path: str | None = field(
        default=None, metadata={"help": "SQLite request cache; default <work_dir>/llm_cache.sqlite."}
    )
    llm_endpoint_max_failures: int = field(
        default=5,
        metadata={"help": "With several endpoints: transient failures in a row that take one out of rotation."},
    )
    llm_endpoint_cooldown_s: float = field(
        default=60.0,
        metadata={"help": "Seconds an endpoint taken out of rotation stays out before it is tried again."},
    )
    llm_api_key: str | None = field(
        default=None, metadata={"help": "Bearer token for the endpoint (default: none; never cached or logged)."}
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.llm_max_concurrency < 1:
            raise ValueError("llm_max_concurrency must be >= 1")
        if self.llm_max_retries < 0:
            raise ValueError("llm_max_retries must be >= 0")
        if self.llm_endpoint_max_failures < 1 or not self.llm_endpoint_cooldown_s >= 0:
            raise ValueError("llm_endpoint_max_failures must be >= 1 and llm_endpoint_cooldown_s >= 0")

    @property
    def llm_endpoints(self) -> list[str]:
        """Every endpoint URL of ``llm_endpoint``."""
        return parse_endpoints(self.llm_endpoint)


@dataclass(frozen=True)
class LLMResponse:
    text: str
    from_cache: bool
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str | None = None


class LLMRequestError(RuntimeError):
    """A request that failed for good (non-transient error, or transient errors past the retry cap).

    ``detail`` holds the HTTP status and a short excerpt of the response body (when the server answered), for the
    dropped row's record and the log.
    """

    def __init__(self, message: str, detail: FailureDetail | None = None) -> None:
        super().__init__(message)
        self.detail = detail


def _cached_response(cached: dict[str, Any] | None) -> LLMResponse | None:
    """A cached answer, or None when there is none or it is not an answer (then the request is made again)."""
    if cached is None:
        return None
    try:
        response = LLMResponse(from_cache=True, **cached)
    except TypeError:
        logger.warning("request cache: an entry of an unknown shape (keys %s) is asked again", sorted(cached)[:8])
        return None
    if not isinstance(response.text, str):
        logger.warning("request cache: an entry whose text is %s is asked again", type(response.text).__name__)
        return None
    return response


class LLMClient:
    """Async text generation with retries, bounded concurrency, a persistent cache and counters."""

    def __init__(self, config: LLMConfig, cache: RequestCache | None = None) -> None:
        if not config.llm_endpoints:
            raise ValueError(
                "LLMClient needs llm_endpoint; use mathcode_pile.llm.LocalLlamaServer for the embedded model"
            )
        self.config = config
        self.cache = cache
        self.counters: Counter[str] = Counter()
        self.endpoints = EndpointPool(
            config.llm_endpoints, config.llm_endpoint_max_failures, config.llm_endpoint_cooldown_s
        )
        # one HTTP session and semaphore per event loop (datasets runs each async map on a loop of its own); weak keys
        # let a finished loop's state go with it
        self._per_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, tuple[HttpSession, asyncio.Semaphore]] = (
            weakref.WeakKeyDictionary()
        )
        self._sessions: list[HttpSession] = []
        weakref.finalize(self, close_sessions, self._sessions)
        self._counter_lock = threading.Lock()

    def _count(self, name: str, amount: int = 1) -> None:
        with self._counter_lock:
            self.counters[name] += amount

    async def _loop_state(self) -> tuple[HttpSession, asyncio.Semaphore]:
        loop = asyncio.get_running_loop()
        state = self._per_loop.get(loop)
        if state is None:
            concurrency = self.config.llm_max_concurrency
            http = HttpSession(concurrency, self.config.llm_timeout_s, self.config.llm_api_key)
            state = (http, asyncio.Semaphore(concurrency))
            self._per_loop[loop] = state  # before the await: a concurrent first request must not make a second one
            self._sessions.append(http)
            await http.start()
        return state

    def close(self) -> None:
        """Close every HTTP session (call it from outside the event loops; the client may be used again after)."""
        self._per_loop.clear()
        close_sessions(self._sessions)

    def request_payload(
        self,
        *,
        messages: list[dict[str, str]] | None = None,
        prompt: str | None = None,
        max_new_tokens: int = 512,
        temperature: float = 0.0,
        stop: list[str] | None = None,
        seed: int = 0,
    ) -> dict[str, Any]:
        """Everything that determines the answer; its hash is the cache key."""
        if (messages is None) == (prompt is None):
            raise ValueError("pass exactly one of messages= (chat mode) or prompt= (raw-prompt modes)")
        if self.config.llm_mode == "chat" and messages is None:
            messages = [{"role": "user", "content": prompt or ""}]
        if self.config.llm_mode != "chat" and prompt is None:
            raise ValueError(f"{self.config.llm_mode} mode needs a raw prompt; render the chat template first")
        payload: dict[str, Any] = {
            "mode": self.config.llm_mode,
            "model": self.config.llm_model,
            "max_new_tokens": max_new_tokens,
            "temperature": temperature,
            "stop": stop or [],
            "seed": seed,
        }
        if self.config.llm_mode == "chat":
            payload["messages"] = messages
        else:
            payload["prompt"] = prompt
        return payload

    async def generate(self, **kwargs: Any) -> LLMResponse:
        """Return the model's text for one request (from the cache when it was paid for before)."""
        payload = self.request_payload(**kwargs)
        key = request_key(payload)
        if self.cache is not None:
            cached = _cached_response(self.cache.get(key))
            if cached is not None:
                self._count("cache_hits")
                return cached
        http, semaphore = await self._loop_state()
        async with semaphore:
            result = await self._send_with_retries(http, payload)
        if self.cache is not None:
            await self.cache.aput(key, result)
        self._count("prompt_tokens", result["prompt_tokens"])
        self._count("completion_tokens", result["completion_tokens"])
        return LLMResponse(from_cache=False, **result)

    def backoff_s(self, retry: int) -> float:
        """Wait before retry number ``retry`` (1, 2, ...): random in [0, initial * 2^(retry-1)], capped; the jitter
        keeps clients that failed together from retrying together."""
        ceiling = self.config.llm_backoff_initial_s * 2 ** min(retry - 1, 62)
        return random.uniform(0, min(self.config.llm_backoff_max_s, ceiling))

    async def _send_with_retries(self, http: HttpSession, payload: dict[str, Any]) -> dict[str, Any]:
        """Attempts until one succeeds, a failure is not transient, or ``llm_max_retries`` retries are spent.

        A plain loop rather than tenacity's ``AsyncRetrying``: a profile at 64 requests in flight against an instant
        server put 15% of the client's time in building and driving the retry object of every request."""
        attempts = self.config.llm_max_retries + 1
        for attempt in range(1, attempts + 1):
            self._count("requests")
            endpoint = self.endpoints.acquire()
            try:
                result = await self._send_safely(http, endpoint.url, payload)
            except Exception as error:
                failure = error
            except BaseException:  # cancelled: the endpoint is not to blame
                self.endpoints.release(endpoint, None, counts_against=False)
                raise
            else:
                self.endpoints.release(endpoint, None, counts_against=False)
                return result
            transient = is_transient(failure)
            if self.endpoints.release(endpoint, failure, counts_against=transient):
                self._count("endpoints_taken_out")
            if not transient or attempt == attempts:
                self._count("failures")
                kind = "transient errors past the retry cap" if transient else "a non-retryable error"
                detail = failure_detail(failure)
                message = (
                    f"LLM request to {endpoint.url} failed after {attempts} attempt(s) at most ({kind}): {detail}"
                )
                logger.warning("%s", message)
                raise LLMRequestError(message, detail) from failure
            self._count("retries")
            logger.debug("retrying LLM request (attempt %d) after %r", attempt + 1, failure)
            await asyncio.sleep(self.backoff_s(attempt))
        raise AssertionError("unreachable")  # pragma: no cover

    async def _send_safely(self, http: HttpSession, url: str, payload: dict[str, Any]) -> dict[str, Any]:
        """One request whose answer text is safe to store (see :func:`~mathcode_pile.llm.responses.answer_text`);
        answers that had to be repaired are counted (``repaired_answers``)."""
        result = await http.send(url, payload)
        text = answer_text(result["text"])
        if isinstance(result["text"], str) and text is not result["text"]:
            self._count("repaired_answers")
        return {**result, "text": text}

    def __getstate__(self) -> dict[str, Any]:
        # Pickled by datasets for fingerprinting; live HTTP clients and locks stay behind.
        return {"config": self.config, "cache": self.cache, "counters": Counter(self.counters)}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["config"], state["cache"])  # type: ignore[misc]
        self.counters.update(state["counters"])
