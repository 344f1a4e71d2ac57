"""Throughput of the local LCE backend: concurrent problems' blocks batched into one ``generate`` vs one at a time.

Both runs continue the same prompts (GSM8K questions in the LCE prompt layout) by the same number of greedy tokens
with the same model, in this process; the ratio is what batching buys on this machine.

    python benchmarks/lce_inference.py [--model outputs/models/smollm2] [--problems 8] [--tokens 32]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path

from evaluation.lce.backends import TransformersBackend
from mathcode_pile.jsonl import read_jsonl
from mathcode_pile.lce.format import build_conversation, render_prompt
from mathcode_pile.paths import benchmark_file, benchmarks_dir


def prompts(count: int) -> list[str]:
    rows = read_jsonl(benchmark_file(benchmarks_dir(), "gsm8k_test"))[:count]
    return [render_prompt(build_conversation(row["question"])) for row in rows]


async def solve_blocks(backend: TransformersBackend, texts: list[str], tokens: int) -> None:
    await asyncio.gather(*(backend.generate(text, tokens) for text in texts))


def timed_run(backend: TransformersBackend, texts: list[str], tokens: int) -> float:
    started = time.perf_counter()
    asyncio.run(solve_blocks(backend, texts, tokens))
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="model folder (default: the converted embedded SmolLM2)")
    parser.add_argument("--problems", type=int, default=8)
    parser.add_argument("--tokens", type=int, default=32)
    args = parser.parse_args()
    if args.model is None:
        from mathcode_pile.llm.embedded import convert_embedded_to_safetensors

        args.model = str(convert_embedded_to_safetensors())
    # generate whole budgets: the early stop on malformed block starts would end an untuned model's blocks at once
    backend = TransformersBackend(str(Path(args.model)), device="cpu", stop_malformed_starts=False)
    texts = prompts(args.problems)
    timed_run(backend, texts[:1], 2)  # warm-up
    backend.max_batch_size = 1
    sequential = timed_run(backend, texts, args.tokens)
    backend.max_batch_size = args.problems
    batched = timed_run(backend, texts, args.tokens)
    total = args.problems * args.tokens
    print(f"model {args.model}: {args.problems} problems x {args.tokens} tokens")
    print(f"one block at a time : {sequential:7.2f} s  ({total / sequential:6.1f} tokens/s)")
    print(f"batched ({args.problems} per call): {batched:7.2f} s  ({total / batched:6.1f} tokens/s)")
    print(f"speed-up of batching: {sequential / batched:.2f}x")


if __name__ == "__main__":
    main()
