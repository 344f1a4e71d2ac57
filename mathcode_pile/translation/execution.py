"""Run snippets in the sandbox and check their output against the stated results: shared by the
``verify_computations`` stage and ``mathcode-pile verify``.

Snippets run concurrently on a :class:`~mathcode_pile.sandbox.SandboxPool`; the comparison (math-verify) runs here,
in the calling thread, which must be a main thread for math-verify's timeouts (see :mod:`.verify`). Sandbox results
can be cached on disk by a hash of code and limits, so a resumed build does not run a finished snippet again.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

from mathcode_pile.llm.cache import RequestCache
from mathcode_pile.sandbox import ExecResult, SandboxLimits, SandboxPool
from mathcode_pile.translation.verify import VerificationSettings, verify_printed_output

#: Part of the sandbox cache key: bump when the sandbox's behaviour changes. 2: kernel layers, verdicts from the exit
#: status, ENOSPC reported as ``sandbox_error`` (results cached by version 1 may hold such infrastructure failures).
SANDBOX_CACHE_VERSION = "2"


@dataclass(frozen=True)
class CheckedSnippet:
    """What ``mathcode-pile verify`` writes back for one row, and the verify stage stores per computation."""

    exec_status: str
    exec_output: str
    verified: bool
    #: ``match: <how>`` when verified, else why not (``exec_error: ZeroDivisionError: ...``, ``exec_timeout: ...``,
    #: ``empty_output``, ``mismatch: printed '41'``, ...); the part before ``:`` is the countable code
    reason: str

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    @property
    def reason_code(self) -> str:
        return self.reason.split(":", 1)[0]


def sandbox_cache_key(code: str, limits: SandboxLimits) -> str:
    material = json.dumps({"code": code, "limits": limits.to_dict(), "version": SANDBOX_CACHE_VERSION}, sort_keys=True)
    return hashlib.sha256(material.encode("utf-8")).hexdigest()


PoolSource = SandboxPool | Callable[[], SandboxPool]


def run_snippets(
    pool: PoolSource, codes: Sequence[str], limits: SandboxLimits, cache: RequestCache | None = None
) -> list[ExecResult]:
    """Every snippet's sandbox result, in order; cached results are reused and new ones stored (infrastructure
    failures are never cached). ``pool`` may be a function returning one, called only if something must run."""
    results: list[ExecResult | None] = [None] * len(codes)
    keys = [sandbox_cache_key(code, limits) for code in codes]
    missing: list[int] = []
    for index, key in enumerate(keys):
        cached = cache.get(key) if cache is not None else None
        if cached is not None:
            results[index] = ExecResult.from_dict(cached)
        else:
            missing.append(index)
    if not missing:
        return [r for r in results if r is not None]
    if not isinstance(pool, SandboxPool):
        pool = pool()
    fresh = pool.run_many([codes[i] for i in missing], limits=limits)
    for index, result in zip(missing, fresh, strict=True):
        results[index] = result
        if cache is not None and result.status != "sandbox_error":
            cache.put(keys[index], result.to_dict())
    return [r for r in results if r is not None]


def check_snippet(result: ExecResult, stated_result: str, settings: VerificationSettings) -> CheckedSnippet:
    """A sandbox result judged against the stated result (failures of the run come first)."""
    if result.status != "ok":
        detail = f": {result.reason}" if result.reason else ""
        return CheckedSnippet(result.status, result.stdout, False, f"exec_{result.status}{detail}")
    verdict = verify_printed_output(result.stdout, stated_result, settings)
    reason = verdict.reason
    if reason == "mismatch":
        reason = f"mismatch: printed {verdict.value[:200]!r}"
    return CheckedSnippet("ok", result.stdout, verdict.verified, reason)


def execute_and_verify(
    pool: PoolSource,
    items: Sequence[tuple[str, str]],
    limits: SandboxLimits,
    settings: VerificationSettings,
    cache: RequestCache | None = None,
) -> list[CheckedSnippet]:
    """``(code, stated_result)`` pairs → one :class:`CheckedSnippet` each, in order."""
    results = run_snippets(pool, [code for code, _ in items], limits, cache)
    return [check_snippet(result, stated, settings) for result, (_, stated) in zip(results, items, strict=True)]
