"""The one LLM client every stage uses: TGI ``text_generation``, OpenAI-compatible ``chat_completion`` or
OpenAI-compatible raw ``completions``.

Built on ``huggingface_hub.AsyncInferenceClient`` with what a corpus build needs around it:
- bounded concurrency (a semaphore per event loop; ``datasets`` runs async map functions on its own loop),
- retries with exponential backoff and jitter (tenacity) on 429/5xx, ``OverloadedError``, timeouts and dropped
  connections, capped, ending in an :class:`LLMRequestError` that says what happened,
- a persistent :class:`RequestCache`, consulted before any request, so reruns cost nothing,
- counters (requests, cache hits, retries, failures, tokens) for the stage statistics,
- answers made safe to store and failures that say what the server sent (:mod:`mathcode_pile.llm.responses`).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import weakref
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Literal

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt, wait_random_exponential

from mathcode_pile.config import ValidatedConfig
from mathcode_pile.llm.cache import RequestCache, request_key
from mathcode_pile.llm.responses import FailureDetail, answer_text, failure_detail

logger = logging.getLogger(__name__)

TRANSIENT_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


@dataclass
class LLMConfig(ValidatedConfig):
    """How to reach the LLM. With no endpoint, the embedded model is served locally by llama.cpp."""

    llm_endpoint: str | None = field(
        default=None,
        metadata={"help": "Base URL of a TGI / vLLM / SGLang / llama.cpp server; empty starts the embedded model."},
    )
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
    llm_api_key: str | None = field(
        default=None, metadata={"help": "Bearer token for the endpoint (default: none; never cached or logged)."}
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.llm_max_concurrency < 1:
            raise ValueError("llm_max_concurrency must be >= 1")
        if self.llm_max_retries < 0:
            raise ValueError("llm_max_retries must be >= 0")


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


def is_transient(error: BaseException) -> bool:
    """True for failures worth retrying: rate limits, overload, 5xx, timeouts, dropped or refused connections."""
    from huggingface_hub.errors import HfHubHTTPError, InferenceTimeoutError, OfflineModeIsEnabled, OverloadedError

    if isinstance(error, OfflineModeIsEnabled):
        return False
    if isinstance(error, OverloadedError | InferenceTimeoutError | TimeoutError | asyncio.TimeoutError):
        return True
    if isinstance(error, HfHubHTTPError):
        response = getattr(error, "response", None)
        return response is not None and response.status_code in TRANSIENT_STATUS
    if isinstance(error, ConnectionError):
        return True
    try:
        import httpx2

        return isinstance(error, httpx2.TransportError)
    except ImportError:  # pragma: no cover - huggingface_hub always brings its HTTP library
        return False


def _use_plain_http_session(client: Any) -> None:
    """Give the inference client an HTTP session without huggingface_hub's Hub hooks.

    ``HF_HUB_OFFLINE=1`` (what offline users set to keep the Hub away) makes every huggingface_hub session refuse all
    URLs, including a local llama.cpp or TGI server the user chose explicitly. The endpoint is not the Hub, so it gets
    a plain session; errors are still raised by the client's own status check.
    """
    import httpx2

    if hasattr(client, "_async_client") and client._async_client is None:
        client._async_client = httpx2.AsyncClient(timeout=None)


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
        if not config.llm_endpoint:
            raise ValueError(
                "LLMClient needs llm_endpoint; use mathcode_pile.llm.LocalLlamaServer for the embedded model"
            )
        self.config = config
        self.cache = cache
        self.counters: Counter[str] = Counter()
        # one HTTP client and semaphore per event loop (datasets runs each async map on a loop of its own); weak keys
        # let a finished loop's state go with it
        self._per_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, tuple[Any, asyncio.Semaphore]] = (
            weakref.WeakKeyDictionary()
        )
        self._counter_lock = threading.Lock()

    def _count(self, name: str, amount: int = 1) -> None:
        with self._counter_lock:
            self.counters[name] += amount

    def _loop_state(self) -> tuple[Any, asyncio.Semaphore]:
        from huggingface_hub import AsyncInferenceClient

        loop = asyncio.get_running_loop()
        state = self._per_loop.get(loop)
        if state is None:
            client = AsyncInferenceClient(
                base_url=self.config.llm_endpoint, timeout=self.config.llm_timeout_s, api_key=self.config.llm_api_key
            )
            _use_plain_http_session(client)
            state = (client, asyncio.Semaphore(self.config.llm_max_concurrency))
            self._per_loop[loop] = state
        return state

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
        client, semaphore = self._loop_state()
        async with semaphore:
            result = await self._send_with_retries(client, payload)
        if self.cache is not None:
            self.cache.put(key, result)
        self._count("prompt_tokens", result["prompt_tokens"])
        self._count("completion_tokens", result["completion_tokens"])
        return LLMResponse(from_cache=False, **result)

    async def _send_with_retries(self, client: Any, payload: dict[str, Any]) -> dict[str, Any]:
        def _before_sleep(state: RetryCallState) -> None:
            self._count("retries")
            error = state.outcome.exception() if state.outcome else None
            logger.debug("retrying LLM request (attempt %d) after %r", state.attempt_number, error)

        retrying = AsyncRetrying(
            retry=retry_if_exception(is_transient),
            wait=wait_random_exponential(
                multiplier=self.config.llm_backoff_initial_s, max=self.config.llm_backoff_max_s
            ),
            stop=stop_after_attempt(self.config.llm_max_retries + 1),
            before_sleep=_before_sleep,
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    self._count("requests")
                    return await self._send_safely(client, payload)
        except Exception as error:
            self._count("failures")
            kind = "transient errors past the retry cap" if is_transient(error) else "a non-retryable error"
            detail = failure_detail(error)
            message = (
                f"LLM request to {self.config.llm_endpoint} failed after {self.config.llm_max_retries + 1} "
                f"attempt(s) at most ({kind}): {detail}"
            )
            logger.warning("%s", message)
            raise LLMRequestError(message, detail) from error
        raise AssertionError("unreachable")  # pragma: no cover

    async def _send_safely(self, client: Any, payload: dict[str, Any]) -> dict[str, Any]:
        """One request whose answer text is safe to store (see :func:`~mathcode_pile.llm.responses.answer_text`);
        answers that had to be repaired are counted (``repaired_answers``)."""
        result = await self._send_once(client, payload)
        text = answer_text(result["text"])
        if isinstance(result["text"], str) and text is not result["text"]:
            self._count("repaired_answers")
        return {**result, "text": text}

    async def _send_once(self, client: Any, payload: dict[str, Any]) -> dict[str, Any]:
        if payload["mode"] == "completions":
            return await self._send_completion(client, payload)
        if payload["mode"] == "chat":
            output = await client.chat_completion(
                payload["messages"],
                model=None if payload["model"] == "tgi" else payload["model"],
                max_tokens=payload["max_new_tokens"],
                temperature=payload["temperature"],
                stop=payload["stop"] or None,
                seed=payload["seed"],
            )
            choice = output.choices[0]
            usage = output.usage
            return {
                "text": choice.message.content or "",
                "prompt_tokens": int(getattr(usage, "prompt_tokens", 0) or 0),
                "completion_tokens": int(getattr(usage, "completion_tokens", 0) or 0),
                "finish_reason": choice.finish_reason,
            }
        output = await client.text_generation(
            payload["prompt"],
            max_new_tokens=payload["max_new_tokens"],
            temperature=payload["temperature"] or None,
            do_sample=payload["temperature"] > 0,
            stop=payload["stop"] or None,
            seed=payload["seed"],
            details=True,
        )
        details = output.details
        return {
            "text": output.generated_text,
            "prompt_tokens": 0,
            "completion_tokens": int(getattr(details, "generated_tokens", 0) or 0),
            "finish_reason": str(getattr(details, "finish_reason", "")) or None,
        }

    async def _send_completion(self, client: Any, payload: dict[str, Any]) -> dict[str, Any]:
        """POST a raw prompt to the OpenAI-compatible ``/v1/completions`` route.

        ``huggingface_hub`` has no method for this route, so the request goes through the inference client's own
        ``_inner_post``: the same HTTP session, timeout and error types (``HfHubHTTPError`` with the status,
        ``InferenceTimeoutError``) as the other modes, hence the same retry decisions.
        """
        import json

        from huggingface_hub.inference._common import RequestParameters

        base = self.config.llm_endpoint.rstrip("/")  # type: ignore[union-attr]
        base = base.removesuffix("/v1")
        body: dict[str, Any] = {
            "prompt": payload["prompt"],
            "max_tokens": payload["max_new_tokens"],
            "temperature": payload["temperature"],
            "seed": payload["seed"],
        }
        if payload["model"] != "tgi":
            body["model"] = payload["model"]
        if payload["stop"]:
            body["stop"] = payload["stop"]
        headers = {"Authorization": f"Bearer {self.config.llm_api_key}"} if self.config.llm_api_key else {}
        request = RequestParameters(
            url=f"{base}/v1/completions", task="text-generation", model=body.get("model"), json=body, data=None,
            headers=headers,
        )  # fmt: skip
        output = json.loads(await client._inner_post(request))
        choice = output["choices"][0]
        usage = output.get("usage") or {}
        return {
            "text": choice.get("text") or "",
            "prompt_tokens": int(usage.get("prompt_tokens") or 0),
            "completion_tokens": int(usage.get("completion_tokens") or 0),
            "finish_reason": choice.get("finish_reason"),
        }

    def __getstate__(self) -> dict[str, Any]:
        # Pickled by datasets for fingerprinting; live HTTP clients and locks stay behind.
        return {"config": self.config, "cache": self.cache, "counters": Counter(self.counters)}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["config"], state["cache"])  # type: ignore[misc]
        self.counters.update(state["counters"])
