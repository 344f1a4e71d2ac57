"""LLM answers are stored safely whatever they contain, and a failed request says what the server sent.

A real scripted server process (``tests/scripted_tgi.py``) answers in every mode the client speaks (TGI
``text_generation``, ``/v1/completions``, ``/v1/chat/completions``); the real fault proxy (``tests/fault_proxy.py``)
in front of it returns rate limits, overload and error pages.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from datasets import Dataset

from mathcode_pile.llm import LLMClient, LLMConfig, LLMRequestError, RequestCache
from mathcode_pile.runner import run_stage
from mathcode_pile.sources import document_metadata
from mathcode_pile.stages.base import StageContext
from mathcode_pile.stages.translate import TranslateConfig, TranslateStage
from tests.fault_proxy import FaultProxy
from tests.scripted_tgi import ANY_KEY, ScriptedServer, launch

MODES = ["chat", "completions", "text_generation"]
HUGE = "0123456789" * 800_000  # 8 MB in one answer
ANSWERS = {
    "surrogate": "a lone half of a pair \ud800 inside",
    "nul": "text with a NUL \x00 byte and a \x1f unit separator",
    "huge": HUGE,
}
#: What a translation answer looks like (used for every prompt the scripts do not know).
TRANSLATION = "```python\nprint(3 * 4)\n```\n```output\n12\n```\nbroken half \udfff of a pair"


@pytest.fixture(scope="module")
def answers_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ScriptedServer]:
    server = launch({**ANSWERS, ANY_KEY: TRANSLATION}, tmp_path_factory.mktemp("answers"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def strict_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ScriptedServer]:
    """Answers only its scripted question: any other prompt gets HTTP 422 with a JSON body."""
    server = launch({"known": "an answer"}, tmp_path_factory.mktemp("strict"))
    yield server
    server.stop()


def client_for(url: str, mode: str, cache: Path | None, **overrides: Any) -> LLMClient:
    config = LLMConfig(llm_endpoint=url, llm_mode=mode, llm_backoff_initial_s=0.01, llm_backoff_max_s=0.05,
                       **overrides)  # fmt: skip
    return LLMClient(config, RequestCache(cache) if cache is not None else None)


def ask(client: LLMClient, question: str) -> str:
    """One request in the client's mode, phrased so the scripted server finds ``question``."""
    if client.config.llm_mode == "chat":
        kwargs: dict[str, Any] = {"messages": [{"role": "user", "content": question}]}
    else:
        kwargs = {"prompt": f"<|user|><|text|>{question}<|endofblock|><|assistant|>"}
    return asyncio.run(client.generate(max_new_tokens=64, **kwargs)).text


@pytest.mark.parametrize("mode", MODES)
def test_any_answer_is_stored_and_the_rerun_reads_it_from_the_cache(
    answers_server: ScriptedServer, tmp_path: Path, mode: str
) -> None:
    cache = tmp_path / "cache.sqlite"
    first = client_for(answers_server.url, mode, cache)
    texts = {question: ask(first, question) for question in ANSWERS}
    assert texts["surrogate"] == "a lone half of a pair \ufffd inside"  # repaired: UTF-8 stores can hold it
    assert texts["nul"] == ANSWERS["nul"]  # NUL and control characters pass unchanged
    assert texts["huge"] == HUGE
    assert first.counters["requests"] == 3 and first.counters["repaired_answers"] == 1

    # a new client on the same cache file, as after a restart: every answer comes back, nothing is sent
    rerun = client_for(answers_server.url, mode, cache)
    assert {question: ask(rerun, question) for question in ANSWERS} == texts
    assert rerun.counters["requests"] == 0 and rerun.counters["cache_hits"] == 3


def test_unreadable_cache_entries_are_asked_again_instead_of_failing_every_rerun(
    answers_server: ScriptedServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cache = tmp_path / "cache.sqlite"
    first = client_for(answers_server.url, "completions", cache)
    expected = {question: ask(first, question) for question in ("surrogate", "nul")}
    first.cache.close()  # type: ignore[union-attr]
    with sqlite3.connect(cache) as connection:
        keys = [key for (key,) in connection.execute("SELECT key FROM responses ORDER BY key")]
        assert len(keys) == 2
        connection.execute("UPDATE responses SET response = ? WHERE key = ?", ('{"text": "cut off', keys[0]))
        connection.execute("UPDATE responses SET response = ? WHERE key = ?", ('["not", "an object"]', keys[1]))
    with caplog.at_level(logging.WARNING):
        rerun = client_for(answers_server.url, "completions", cache)
        assert {question: ask(rerun, question) for question in expected} == expected
    assert rerun.counters["requests"] == 2  # asked again, once each
    assert sum("is unreadable" in record.getMessage() for record in caplog.records) == 2

    with sqlite3.connect(cache) as connection:  # valid JSON, but not an answer
        connection.execute("UPDATE responses SET response = ?", ('{"unexpected": 1}',))
    third = client_for(answers_server.url, "completions", cache)
    assert {question: ask(third, question) for question in expected} == expected
    assert third.counters["requests"] == 2
    fourth = client_for(answers_server.url, "completions", cache)
    assert {question: ask(fourth, question) for question in expected} == expected
    assert fourth.counters["requests"] == 0


@pytest.mark.parametrize("mode", MODES)
def test_a_failed_request_records_the_http_status_and_a_short_excerpt_of_the_body(
    answers_server: ScriptedServer,
    strict_server: ScriptedServer,
    tmp_path: Path,
    mode: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    cases = [("503", 503, '{"error": "overloaded"}'), ("429", 429, '{"error": "rate limited"}'),
             ("500", 500, "<html> <head><title>500 Internal Server Error</title></head>")]  # fmt: skip
    for fault, status, body in cases:
        with FaultProxy(answers_server.url, always=fault) as proxy:
            client = client_for(proxy.url, mode, None, llm_max_retries=1)
            with caplog.at_level(logging.WARNING), pytest.raises(LLMRequestError) as failed:
                ask(client, "nul")
        detail = failed.value.detail
        assert detail is not None and detail.status == status and detail.body.startswith(body)
        assert len(detail.body) <= 200 and "\n" not in detail.body  # the error page is cut, on one line
        assert f"past the retry cap): HTTP {status}: {body}" in str(failed.value)
        assert proxy.counts["received"] == 2  # retried once, as configured
        assert f"HTTP {status}: {body}" in caplog.text  # and in the log

    # a non-retryable answer from the server itself: sent once, its status and body kept
    client = client_for(strict_server.url, mode, None, llm_max_retries=3)
    with pytest.raises(LLMRequestError, match="non-retryable") as failed:
        ask(client, "a question the server has no script for")
    assert failed.value.detail is not None and failed.value.detail.status == 422
    assert "prompt strays from the script" in failed.value.detail.body
    assert client.counters["requests"] == 1


def documents(count: int) -> Dataset:
    return Dataset.from_dict(
        {
            "id": [f"doc-{i}" for i in range(count)],
            "text": [f"A shop sells {i + 2} pens at 3 dollars each." for i in range(count)],
            "source": ["shop"] * count,
            "metadata": [json.dumps({"kind": "math_text", "url": f"https://example.org/{i}"}) for i in range(count)],
        }
    )


@pytest.mark.parametrize("mode", MODES)
def test_translate_drops_record_the_status_and_body_and_answers_with_lone_surrogates_are_kept(
    answers_server: ScriptedServer, strict_server: ScriptedServer, tmp_path: Path, mode: str
) -> None:
    # the endpoint fails the first request with an error page, answers the others (llm_max_retries 0: one try)
    with FaultProxy(answers_server.url, script=["500"]) as proxy:
        client = client_for(proxy.url, mode, tmp_path / "cache.sqlite", llm_max_retries=0, llm_max_concurrency=1)
        stage = TranslateStage(TranslateConfig(translate_max_new_tokens=16), StageContext(tmp_path, llm=client))
        result = run_stage(stage, documents(3), "faults", tmp_path / "stage", shard_rows=3)
    assert result.stats.dropped == {"llm_error": 1} and result.stats.rows_kept == 2
    # the answers held a lone surrogate: stored (U+FFFD) in the stage's Parquet shards, not a crash
    kept = result.dataset["translation_response"]
    assert all(text.endswith("broken half \ufffd of a pair") for text in kept)
    assert result.stats.extra["llm_repaired_answers"] == 2
    dropped = pq.read_table(tmp_path / "stage" / "shard-00000.dropped.parquet").to_pylist()
    assert len(dropped) == 1
    failure = document_metadata(dropped[0]["metadata"])
    assert failure["url"].startswith("https://example.org/")  # the document's own metadata is kept
    assert failure["llm_error"]["status"] == 500
    assert failure["llm_error"]["body"].startswith("<html> <head><title>500 Internal Server Error</title>")
    assert "500 Internal Server Error" in failure["llm_error"]["error"]  # the error itself, on one line

    # a server that refuses every prompt: every document dropped, each with the server's own reason
    client = client_for(strict_server.url, mode, tmp_path / "strict.sqlite", llm_max_retries=0)
    stage = TranslateStage(TranslateConfig(translate_max_new_tokens=16), StageContext(tmp_path, llm=client))
    refused = run_stage(stage, documents(2), "refused", tmp_path / "refused", shard_rows=2)
    assert refused.stats.dropped == {"llm_error": 2}
    for row in pq.read_table(tmp_path / "refused" / "shard-00000.dropped.parquet").to_pylist():
        detail = document_metadata(row["metadata"])["llm_error"]
        assert detail["status"] == 422 and "prompt strays from the script" in detail["body"]
