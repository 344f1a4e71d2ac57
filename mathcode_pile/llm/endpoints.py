"""Several servers behind one client: each request goes to the least-loaded endpoint, and one that keeps failing is
taken out of rotation for a while.

- *Least loaded* is the endpoint with the fewest requests of this client in flight; ties go round-robin, so equal
  servers get equal shares. A slower server holds its requests longer and so is chosen less, with no tuning.
- *Keeps failing* is ``max_failures`` transient failures in a row (connection refused or dropped, timeout, 429/5xx).
  The endpoint is then left out for ``cooldown_s`` seconds, with a warning naming it and the last error; after that
  it is tried again with the next request, and one more failure takes it out again at once. Coming back after a
  cool-down, rather than never, is deliberate: a replica that restarts or sheds a burst of load should get its share
  again without restarting a build that may run for days. A failure that is the request's fault (4xx) does not count.
- When every endpoint is out, requests go to the one whose cool-down ends first rather than stopping: the client's
  retries with backoff then decide, as they do with one endpoint.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

logger = logging.getLogger(__name__)


def parse_endpoints(value: str | None) -> list[str]:
    """The URLs of ``llm_endpoint``: one, or several separated by commas or spaces (order kept, repeats dropped)."""
    urls: list[str] = []
    for url in (value or "").replace(",", " ").split():
        if url not in urls:
            urls.append(url)
    return urls


@dataclass
class EndpointState:
    url: str
    in_flight: int = 0
    sent: int = 0
    failures_in_a_row: int = 0
    out_until: float = 0.0
    removals: int = 0


class EndpointPool:
    """The endpoints of one client and their load and health; safe to use from several threads and event loops."""

    def __init__(self, urls: list[str], max_failures: int = 5, cooldown_s: float = 60.0) -> None:
        if not urls:
            raise ValueError("no endpoint URL given")
        self.endpoints = [EndpointState(url) for url in urls]
        self.max_failures = max_failures
        self.cooldown_s = cooldown_s
        self._lock = threading.Lock()
        self._turn = 0

    def acquire(self) -> EndpointState:
        """The endpoint for the next attempt, counted in flight until :meth:`release`."""
        with self._lock:
            if len(self.endpoints) == 1:
                chosen = self.endpoints[0]
            else:
                now = time.monotonic()
                available = [e for e in self.endpoints if e.out_until <= now]
                if not available:
                    chosen = min(self.endpoints, key=lambda e: e.out_until)
                else:
                    count = len(available)
                    start = self._turn % count
                    self._turn += 1
                    chosen = min((available[(start + i) % count] for i in range(count)), key=lambda e: e.in_flight)
            chosen.in_flight += 1
            chosen.sent += 1
            return chosen

    def release(self, endpoint: EndpointState, failure: BaseException | None, counts_against: bool) -> bool:
        """Record the attempt's outcome; True when this failure took the endpoint out of rotation."""
        with self._lock:
            endpoint.in_flight -= 1
            if failure is None or not counts_against:
                if failure is None:
                    endpoint.failures_in_a_row = 0
                return False
            endpoint.failures_in_a_row += 1
            if len(self.endpoints) == 1 or endpoint.failures_in_a_row < self.max_failures:
                return False
            if endpoint.out_until > time.monotonic():
                return False  # already out: requests sent before it was taken out are failing too
            endpoint.out_until = time.monotonic() + self.cooldown_s
            endpoint.failures_in_a_row = self.max_failures - 1  # after the cool-down, one more failure is enough
            endpoint.removals += 1
        logger.warning(
            "LLM endpoint %s failed %d times in a row (last: %s: %s); out of rotation for %.0f s, then tried again",
            endpoint.url, self.max_failures, type(failure).__name__, str(failure)[:200], self.cooldown_s,
        )  # fmt: skip
        return True

    def sent_per_endpoint(self) -> dict[str, int]:
        with self._lock:
            return {e.url: e.sent for e in self.endpoints}
