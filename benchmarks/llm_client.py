"""Request throughput of the translate stage vs a bare load generator, same server, same requests, same concurrency.

The bare generator is the ceiling: raw aiohttp POSTs to /v1/chat/completions with a semaphore, no retries, no cache, no
datasets. The stage adds the request cache (fresh, so every request is sent), retries, ``Dataset.map`` and shard
writing. The printed ratio is stage / bare (goal >= 0.9). Run: ``python benchmarks/llm_client.py [--docs 24]``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import tempfile
import time
from pathlib import Path

import aiohttp
from datasets import Dataset

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=24)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

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
