"""What an endpoint sends back, made safe to keep: the answer text, and the reason a request failed.

An answer is stored in the request cache, the stage shards and ledgers, so it must be text those can hold whatever
the server put in it: a lone surrogate (``"\\ud800"`` is valid JSON) is replaced by U+FFFD, NUL bytes and any size
pass through unchanged. A failure is reduced to what a user needs to fix the endpoint: the HTTP status and a short
excerpt of the response body (``HTTP 503: {"error": "overloaded"}``), not a library's multi-line message.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from mathcode_pile.surrogates import replace_lone_surrogates

#: Characters of a response body kept in an error (enough for a JSON error object or the title of an HTML page).
EXCERPT_CHARS = 200
_WHITESPACE = re.compile(r"\s+")


class AnswerError(ValueError):
    """The endpoint answered, but with something that is not text where the answer belongs."""


def answer_text(value: Any) -> str:
    """The answer as storable text: ``None`` is empty, lone surrogates are replaced; anything else is refused."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise AnswerError(f"the endpoint's answer is {type(value).__name__}, not text: {excerpt(repr(value))}")
    return replace_lone_surrogates(value)


def excerpt(text: str, limit: int = EXCERPT_CHARS) -> str:
    """``text`` on one line (whitespace runs collapsed, control characters escaped), cut to ``limit`` characters."""
    flat = _WHITESPACE.sub(" ", replace_lone_surrogates(text[: 4 * limit])).strip()
    flat = "".join(c if c.isprintable() else repr(c)[1:-1] for c in flat)
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


@dataclass(frozen=True)
class FailureDetail:
    """Why a request failed: the HTTP status and body excerpt when the server answered, else the error itself."""

    status: int | None
    body: str
    error: str

    def __str__(self) -> str:
        if self.status is None:
            return self.error
        return f"HTTP {self.status}: {self.body}" if self.body else f"HTTP {self.status}"

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, "body": self.body, "error": self.error}


def failure_detail(error: BaseException) -> FailureDetail:
    """The status and body excerpt of the HTTP response behind ``error`` (found along its causes), if any."""
    summary = f"{type(error).__name__}: {excerpt(str(error))}"
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        response = getattr(current, "response", None)
        status = getattr(response, "status_code", None)
        if isinstance(status, int):
            return FailureDetail(status, _body_excerpt(response), summary)
        current = current.__cause__ or current.__context__
    return FailureDetail(None, "", summary)


def _body_excerpt(response: Any) -> str:
    try:
        return excerpt(response.text)
    except Exception:  # a streamed or already-closed body: the status alone still says a lot
        return ""
