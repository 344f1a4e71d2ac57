"""Request throughput of the translate stage vs a bare load generator, same server, same requests, same concurrency.

The bare generator is the ceiling: raw aiohttp POSTs to /v1/chat/completions with a semaphore, no retries, no cache, no
datasets. The stage adds the request cache (fresh, so every request is sent), retries, ``Dataset.map`` and shard
writing. The printed ratio is stage / bare. Two servers:

- the embedded model (default; goal >= 0.9): ``python benchmarks/llm_client.py [--docs 24]``, where the model's own
  time dominates and the question is whether the stage keeps it busy;
- ``--instant`` (goal >= 0.5): a server that answers at once (:mod:`instant_server`, its own process), concurrency 64
  by default, where only the client's own cost is left. It also runs two tasks at once (two processes, each with its
  own client and request cache, as two datatrove tasks have) and prints their summed rate against one task's.
  ``python benchmarks/llm_client.py --instant [--docs 4000] [--concurrency 64] [--profile out.prof]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import logging
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import aiohttp
from datasets import Dataset, disable_progress_bars

from mathcode_pile.llm import LLMClient, LLMConfig, RequestCache
from mathcode_pile.llm.local_server import LocalLlamaServer
from mathcode_pile.paths import SAMPLES_DIR
from mathcode_pile.runner import run_stage
from mathcode_pile.sources import SourceSpec, iter_documents
from mathcode_pile.stages.base import StageContext
from mathcode_pile.stages.translate import TranslateConfig, TranslateStage
from mathcode_pile.translation.prompt import build_translation_messages


async def bare_load(url: str, payloads: list[dict], concurrency: int) -> float:
    semaphore = asyncio.Semaphore(concurrency)
    async with aiohttp.ClientSession() as session:

        async def one(payload: dict) -> None:
            async with semaphore, session.post(f"{url}/v1/chat/completions", json=payload) as response:
                response.raise_for_status()
                await response.json()

        started = time.perf_counter()
        await asyncio.gather(*(one(p) for p in payloads))
        return time.perf_counter() - started


def stage_run(url: str, dataset: Dataset, config: TranslateConfig, concurrency: int, work: Path) -> float:
    client = LLMClient(
        LLMConfig(llm_endpoint=url, llm_model="bench", llm_max_concurrency=concurrency),
        RequestCache(work / "cache.sqlite"),
    )
    stage = TranslateStage(config, StageContext(work, llm=client))
    started = time.perf_counter()
    result = run_stage(stage, dataset, "bench", work / "stage", shard_rows=len(dataset))
    elapsed = time.perf_counter() - started
    assert result.stats.extra["llm_requests"] == len(dataset), "every stage request must reach the server"
    return elapsed


@contextlib.contextmanager
def instant_server() -> Iterator[str]:
    """The instant server in a process of its own (the client under test must not share its event loop or core)."""
    script = Path(__file__).with_name("instant_server.py")
    process = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        port = int(process.stdout.readline())
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)


def instant_documents(count: int, salt: str) -> Dataset:
    """``count`` short, distinct math documents (one request each; ``salt`` keeps runs from sharing cache keys)."""
    texts = [
        f"Problem {salt}-{i}: a shop sells {i % 97 + 2} pens at {i % 13 + 1} dollars each. "
        f"It earns {(i % 97 + 2) * (i % 13 + 1)} dollars."
        for i in range(count)
    ]
    return Dataset.from_dict(
        {
            "id": [f"{salt}-{i}" for i in range(count)],
            "text": texts,
            "source": ["instant"] * count,
            "metadata": ["{}"] * count,
        }
    )


def instant_payloads(dataset: Dataset, config: TranslateConfig) -> list[dict]:
    return [
        {
            "messages": build_translation_messages(text, config.translate_max_doc_chars),
            "max_tokens": config.translate_max_new_tokens,
            "temperature": 0.0,
            "seed": 0,
        }
        for text in dataset["text"]
    ]


def instant_task(url: str, count: int, concurrency: int, work: str, salt: str, start_at: float) -> tuple[int, float]:
    """One task as a datatrove task runs it: its own client and cache, the stage over its documents. Waits until
    ``start_at`` (wall clock) so that tasks started in parallel overlap; returns (requests sent, seconds)."""
    disable_progress_bars()
    config = TranslateConfig(translate_max_new_tokens=64)
    dataset = instant_documents(count, salt)
    client = LLMClient(
        LLMConfig(llm_endpoint=url, llm_model="bench", llm_max_concurrency=concurrency),
        RequestCache(Path(work) / "cache.sqlite"),
    )
    stage = TranslateStage(config, StageContext(Path(work), llm=client))
    time.sleep(max(0.0, start_at - time.time()))
    started = time.perf_counter()
    result = run_stage(stage, dataset, "bench", Path(work) / "stage", shard_rows=count)
    elapsed = time.perf_counter() - started
    client.close()
    requests = int(result.stats.extra["llm_requests"])
    assert requests == count, f"every stage request must reach the server ({requests} of {count})"
    return requests, elapsed


def parallel_tasks(url: str, tasks: int, count: int, concurrency: int, work: Path, salt: str) -> tuple[int, float]:
    """``tasks`` processes at once; returns (requests, seconds from the common start to the last task's end)."""
    with ProcessPoolExecutor(tasks, mp_context=get_context("spawn")) as pool:
        start_at = time.time() + 15.0  # past every process's start and imports
        futures = [
            pool.submit(instant_task, url, count, concurrency, str(work / f"task{n}"), f"{salt}{n}", start_at)
            for n in range(tasks)
        ]
        results = [future.result() for future in futures]
    return sum(r for r, _ in results), max(t for _, t in results)


def run_instant(args: argparse.Namespace) -> None:
    concurrency = args.concurrency or 64
    config = TranslateConfig(translate_max_new_tokens=64)
    with tempfile.TemporaryDirectory() as tmp, instant_server() as url:
        work = Path(tmp)
        bare_rates, stage_rates = [], []
        for repeat in range(args.repeats):
            payloads = instant_payloads(instant_documents(args.docs, f"bare{repeat}"), config)
            bare_rates.append(args.docs / asyncio.run(bare_load(url, payloads, concurrency)))
            profiler = cProfile.Profile() if args.profile and repeat == 0 else None
            if profiler is not None:
                profiler.enable()
            requests, seconds = instant_task(
                url, args.docs, concurrency, str(work / f"one{repeat}"), f"one{repeat}", 0
            )
            if profiler is not None:
                profiler.disable()
                profiler.dump_stats(args.profile)
            stage_rates.append(requests / seconds)
        bare, stage = statistics.median(bare_rates), statistics.median(stage_rates)
        print(f"instant server, {args.docs} requests per run, concurrency {concurrency}, {args.repeats} run(s) each")
        print(f"bare aiohttp loop   : {bare:7.0f} requests/s  (runs: {', '.join(f'{r:.0f}' for r in bare_rates)})")
        print(f"translate stage     : {stage:7.0f} requests/s  (runs: {', '.join(f'{r:.0f}' for r in stage_rates)})")
        print(f"ratio stage / bare  : {stage / bare:.3f}  (goal >= 0.5)")
        one_requests, one_seconds = parallel_tasks(url, 1, args.docs, concurrency, work / "p1", "p1-")
        two_requests, two_seconds = parallel_tasks(url, 2, args.docs, concurrency, work / "p2", "p2-")
        one, two = one_requests / one_seconds, two_requests / two_seconds
        print(f"one task (process)  : {one:7.0f} requests/s")
        print(
            f"two tasks at once   : {two:7.0f} requests/s  ({two / one:.2f}x one task; each has its own client/cache)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instant", action="store_true", help="an instant local server instead of the model")
    parser.add_argument("--docs", type=int, default=None, help="requests per run (default 24; 4000 with --instant)")
    parser.add_argument("--concurrency", type=int, default=None, help="requests in flight (default 4; 64 instant)")
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--profile", help="with --instant: write a cProfile of the first stage run to this file")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    disable_progress_bars()
    if args.instant:
        args.docs = args.docs or 4000
        run_instant(args)
        return
    args.docs = args.docs or 24
    args.concurrency = args.concurrency or 4

    spec = SourceSpec(
        name="aqua_rat", path=str(SAMPLES_DIR / "aqua_rat.jsonl"), text_template="{question}\n\n{rationale}"
    )
    docs = list(iter_documents(spec, counts=__import__("collections").Counter()))
    config = TranslateConfig(translate_max_new_tokens=args.max_new_tokens, translate_max_doc_chars=1500)
    with tempfile.TemporaryDirectory() as tmp, LocalLlamaServer(log_path=Path(tmp) / "server.log") as server:
        bare_times, stage_times = [], []
        for repeat in range(args.repeats):
            # a different document window per repeat so neither side benefits from the server's prompt reuse
            window = docs[repeat * args.docs : (repeat + 1) * args.docs]
            dataset = Dataset.from_list(window)
            payloads = [
                {
                    "messages": build_translation_messages(d["text"], config.translate_max_doc_chars),
                    "max_tokens": args.max_new_tokens,
                    "temperature": 0.0,
                    "seed": 0,
                }
                for d in window
            ]
            bare_times.append(asyncio.run(bare_load(server.url, payloads, args.concurrency)))
            stage_times.append(stage_run(server.url, dataset, config, args.concurrency, Path(tmp) / f"run{repeat}"))
        bare_rps = args.docs / statistics.mean(bare_times)
        stage_rps = args.docs / statistics.mean(stage_times)
        print(
            f"documents per run: {args.docs}, concurrency: {args.concurrency}, max_new_tokens: {args.max_new_tokens}"
        )
        print(
            f"bare load generator : {bare_rps:6.2f} requests/s  (runs: {', '.join(f'{t:.1f}s' for t in bare_times)})"
        )
        print(
            f"translate stage     : {stage_rps:6.2f} requests/s  (runs: {', '.join(f'{t:.1f}s' for t in stage_times)})"
        )
        print(f"ratio stage / bare  : {stage_rps / bare_rps:.3f}  (goal >= 0.9)")


if __name__ == "__main__":
    main()
