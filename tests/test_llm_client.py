"""The LLM client against the real embedded llama.cpp server, directly and through a fault-injecting proxy."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from mathcode_pile.llm import LLMClient, LLMConfig, LLMRequestError, RequestCache
from mathcode_pile.llm.cache import request_key
from tests.fault_proxy import FaultProxy

pytestmark = pytest.mark.slow


def make_client(endpoint: str, tmp_path: Path, **overrides: object) -> LLMClient:
    config = LLMConfig(
        llm_endpoint=endpoint,
        llm_model="smollm2-test",
        llm_backoff_initial_s=0.05,
        llm_backoff_max_s=0.2,
        **overrides,  # type: ignore[arg-type]
    )
    return LLMClient(config, RequestCache(tmp_path / "cache.sqlite"))


async def ask_many(client: LLMClient, prompts: list[str], max_new_tokens: int = 8) -> list[str]:
    responses = await asyncio.gather(
        *(client.generate(prompt=p, max_new_tokens=max_new_tokens, temperature=0.0) for p in prompts)
    )
    return [r.text for r in responses]


PROMPTS = [f"What is {a} plus {a}? Answer with a number." for a in range(1, 7)]
#: Raw text to continue (completions mode); the instruct model ends a bare question at once with its end token.
CONTINUATIONS = [f"Counting in steps of {a}: {a}, {2 * a}," for a in range(1, 7)]


def test_request_key_ignores_key_order_but_not_content() -> None:
    assert request_key({"a": 1, "b": [1, 2]}) == request_key({"b": [1, 2], "a": 1})
    assert request_key({"a": 1}) != request_key({"a": 2})


@pytest.mark.parametrize("mode", ["chat", "completions"])
def test_concurrent_requests_then_rerun_makes_no_new_request(embedded_server, tmp_path: Path, mode: str) -> None:
    prompts = PROMPTS if mode == "chat" else CONTINUATIONS
    client = make_client(embedded_server.url, tmp_path, llm_max_concurrency=3, llm_mode=mode)
    first = asyncio.run(ask_many(client, prompts))
    assert len(first) == len(prompts) and all(isinstance(t, str) for t in first)
    assert client.counters["requests"] == len(prompts)
    assert client.counters["completion_tokens"] > 0

    # a new client (as after a restart) on the same cache file: every answer comes back, nothing is sent
    rerun = make_client(embedded_server.url, tmp_path, llm_max_concurrency=3, llm_mode=mode)
    second = asyncio.run(ask_many(rerun, prompts))
    assert second == first
    assert rerun.counters["requests"] == 0
    assert rerun.counters["cache_hits"] == len(prompts)


def test_cache_key_includes_generation_parameters(embedded_server, tmp_path: Path) -> None:
    client = make_client(embedded_server.url, tmp_path)
    asyncio.run(client.generate(prompt=PROMPTS[0], max_new_tokens=4))
    asyncio.run(client.generate(prompt=PROMPTS[0], max_new_tokens=5))
    assert client.counters["requests"] == 2 and client.counters["cache_hits"] == 0


@pytest.mark.parametrize("mode", ["chat", "completions"])
def test_transient_faults_are_retried_until_every_request_succeeds(embedded_server, tmp_path: Path, mode: str) -> None:
    script = ["429", "503", "hang", "drop", "429", "503"]
    with FaultProxy(embedded_server.url, script=script, hang_s=12.0) as proxy:
        client = make_client(
            proxy.url, tmp_path, llm_max_concurrency=2, llm_timeout_s=6.0, llm_max_retries=8, llm_mode=mode
        )
        texts = asyncio.run(ask_many(client, PROMPTS[:4]))
    assert len(texts) == 4 and all(isinstance(t, str) for t in texts)
    assert client.counters["retries"] >= len(script)
    assert client.counters["failures"] == 0
    assert proxy.counts["forwarded"] >= 4
    for fault in ("429", "503", "hang", "drop"):
        assert proxy.counts[fault] >= 1


def test_persistent_failure_ends_in_clear_error_after_the_retry_cap(embedded_server, tmp_path: Path) -> None:
    with FaultProxy(embedded_server.url, always="503") as proxy:
        client = make_client(proxy.url, tmp_path, llm_max_retries=3)
        with pytest.raises(LLMRequestError, match=r"failed after 4 attempt\(s\).*past the retry cap"):
            asyncio.run(client.generate(prompt="hello", max_new_tokens=2))
    assert proxy.counts["received"] == 4
    assert client.counters["failures"] == 1


@pytest.mark.parametrize("mode", ["chat", "completions"])
def test_client_errors_are_not_retried(embedded_server, tmp_path: Path, mode: str) -> None:
    client = make_client(embedded_server.url + "/no-such-route", tmp_path, llm_max_retries=5, llm_mode=mode)
    with pytest.raises(LLMRequestError, match=r"non-retryable error\): HTTP 404") as failed:
        asyncio.run(client.generate(prompt="hello", max_new_tokens=2))
    assert client.counters["requests"] == 1
    assert failed.value.detail is not None and failed.value.detail.status == 404  # llama.cpp's own answer


def test_translate_stage_completes_with_every_row_through_injected_faults(embedded_server, tmp_path: Path) -> None:
    from datasets import Dataset

    from mathcode_pile.runner import run_stage
    from mathcode_pile.stages.base import StageContext
    from mathcode_pile.stages.translate import TranslateConfig, TranslateStage

    documents = Dataset.from_dict(
        {
            "id": [f"doc-{i}" for i in range(5)],
            "text": [
                f"A shop sells {i + 2} pens at 3 dollars each, so it earns {3 * (i + 2)} dollars." for i in range(5)
            ],
            "source": ["faults"] * 5,
            "metadata": ["{}"] * 5,
        }
    )
    script = ["429", "drop", "503", "hang", "429", "503", "drop"]
    # the timeout must exceed a real request's latency on a busy machine: only the "hang" may time out
    with FaultProxy(embedded_server.url, script=script, hang_s=20.0) as proxy:
        client = make_client(proxy.url, tmp_path, llm_max_concurrency=2, llm_timeout_s=10.0, llm_max_retries=8)
        stage = TranslateStage(TranslateConfig(translate_max_new_tokens=16), StageContext(tmp_path, llm=client))
        result = run_stage(stage, documents, "faults", tmp_path / "stage", shard_rows=5)
    assert result.dataset["id"] == documents["id"]
    assert result.stats.rows_kept == 5 and not result.stats.dropped
    # every scripted fault cost one retry (a slow machine may add timeouts of its own, never fewer retries)
    assert result.stats.extra["llm_retries"] >= len(script)
    assert all(proxy.counts[fault] >= 1 for fault in ("429", "503", "hang", "drop"))
    assert proxy.counts["forwarded"] >= 5


def test_several_endpoints_share_the_load_and_a_failing_one_is_taken_out(
    embedded_server, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Three endpoints, one answering 503 to everything: every row is translated by the two healthy ones, which share
    the requests, and the failing one is taken out of rotation once, with a warning naming it."""
    from datasets import Dataset

    from mathcode_pile.runner import run_stage
    from mathcode_pile.stages.base import StageContext
    from mathcode_pile.stages.translate import TranslateConfig, TranslateStage

    rows = 10
    documents = Dataset.from_dict(
        {
            "id": [f"doc-{i}" for i in range(rows)],
            "text": [
                f"A box holds {i + 3} apples and {i + 1} more are added, so it holds {2 * i + 4}." for i in range(rows)
            ],
            "source": ["endpoints"] * rows,
            "metadata": ["{}"] * rows,
        }
    )
    concurrency, max_failures = 3, 2
    with (
        FaultProxy(embedded_server.url, always="503") as failing,
        FaultProxy(embedded_server.url) as first,
        FaultProxy(embedded_server.url) as second,
        caplog.at_level("WARNING", logger="mathcode_pile.llm.endpoints"),
    ):
        client = make_client(
            f"{failing.url}, {first.url},{second.url}",
            tmp_path,
            llm_max_concurrency=concurrency,
            llm_max_retries=6,
            llm_endpoint_max_failures=max_failures,
            llm_endpoint_cooldown_s=600.0,
        )
        stage = TranslateStage(TranslateConfig(translate_max_new_tokens=8), StageContext(tmp_path, llm=client))
        result = run_stage(stage, documents, "endpoints", tmp_path / "stage", shard_rows=rows)
    assert result.stats.rows_kept == rows and not result.stats.dropped
    assert client.counters["endpoints_taken_out"] == 1
    removals = [r.getMessage() for r in caplog.records if "out of rotation" in r.getMessage()]
    assert len(removals) == 1 and failing.url in removals[0]
    # requests already on their way when it was taken out may fail too, no more
    assert max_failures <= failing.counts["received"] <= max_failures + concurrency - 1
    assert failing.counts["forwarded"] == 0
    assert first.counts["forwarded"] + second.counts["forwarded"] == rows
    assert min(first.counts["forwarded"], second.counts["forwarded"]) >= rows // 4


def test_least_loaded_endpoint_is_chosen_and_a_taken_out_one_returns_after_the_cooldown() -> None:
    import time

    from mathcode_pile.llm.endpoints import EndpointPool

    pool = EndpointPool(["http://a", "http://b", "http://c"], max_failures=2, cooldown_s=0.2)
    held = [pool.acquire() for _ in range(3)]
    assert sorted(e.url for e in held) == ["http://a", "http://b", "http://c"]  # one each, round-robin on ties
    pool.release(held[1], None, counts_against=False)
    assert pool.acquire() is held[1]  # the only one with nothing in flight
    for endpoint in held:
        pool.release(endpoint, None, counts_against=False)

    a = pool.endpoints[0]
    for _ in range(2):  # a fails twice in a row while the others answer
        for endpoint in [pool.acquire() for _ in range(3)]:
            failure = ConnectionError("refused") if endpoint is a else None
            pool.release(endpoint, failure, counts_against=failure is not None)
    assert {pool.acquire().url for _ in range(6)} == {"http://b", "http://c"}
    time.sleep(0.25)
    assert "http://a" in {pool.acquire().url for _ in range(3)}
    assert a.removals == 1


def test_endpoint_key_takes_several_urls() -> None:
    config = LLMConfig(llm_endpoint="http://a:8080, http://b:8080,http://a:8080 http://c/v1")
    assert config.llm_endpoints == ["http://a:8080", "http://b:8080", "http://c/v1"]
    with pytest.raises(ValueError, match="llm_endpoint_max_failures"):
        LLMConfig(llm_endpoint="http://a", llm_endpoint_max_failures=0)


def test_answers_written_together_are_each_committed_before_the_request_returns(tmp_path: Path) -> None:
    """``aput`` groups concurrent writes into one transaction; each returns only once its entry is on disk, so a
    second connection (another process after a kill) reads every entry at that moment."""
    cache = RequestCache(tmp_path / "cache.sqlite")
    reader = RequestCache(tmp_path / "cache.sqlite")

    async def write(count: int) -> list[bool]:
        async def one(i: int) -> bool:
            await cache.aput(f"key-{i}", {"text": f"answer {i}", "n": i})
            return reader.get(f"key-{i}") == {"text": f"answer {i}", "n": i}

        return await asyncio.gather(*(one(i) for i in range(count)))

    assert all(asyncio.run(write(300)))
    assert all(asyncio.run(write(5)))  # a later loop reuses (or restarts) the writer
    assert len(reader) == 300
    cache.close()
    reader.close()
