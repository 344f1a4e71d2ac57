"""Throughput of the local inference backend: concurrent problems batched into one ``generate`` vs one at a time.

``--syntax lce`` (default) times LCE blocks: the same prompts (GSM8K questions in the LCE prompt layout) continued by
the same number of greedy tokens. ``--syntax fenced`` times whole tool-integrated (TIR) evaluations: the engine of
``make eval-tir`` solves GSM8K problems in the model's chat template (with one worked example in the system turn, so
that the untuned model writes code), each ```python block it writes run in the sandbox and its output fed back, and
the script prints problems/s and how many code calls ran. Both runs use the same model in this process;
the ratio is what batching buys on this machine.

    python benchmarks/lce_inference.py [--model outputs/models/smollm2] [--problems 8] [--tokens 32]
    python benchmarks/lce_inference.py --syntax fenced [--problems 8] [--tokens 96] [--threads 1]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections import Counter
from pathlib import Path
from typing import Any

from evaluation.lce.backends import TransformersBackend
from mathcode_pile.jsonl import read_jsonl
from mathcode_pile.lce.format import build_conversation, render_prompt
from mathcode_pile.paths import benchmark_file, benchmarks_dir


def questions(count: int) -> list[str]:
    return [row["question"] for row in read_jsonl(benchmark_file(benchmarks_dir(), "gsm8k_test"))[:count]]


def prompts(count: int) -> list[str]:
    return [render_prompt(build_conversation(question)) for question in questions(count)]


async def solve_blocks(backend: TransformersBackend, texts: list[str], tokens: int) -> None:
    await asyncio.gather(*(backend.generate(text, tokens) for text in texts))


def timed_run(backend: TransformersBackend, texts: list[str], tokens: int) -> float:
    started = time.perf_counter()
    asyncio.run(solve_blocks(backend, texts, tokens))
    return time.perf_counter() - started


def benchmark_lce_blocks(model: str, problems: int, tokens: int) -> None:
    # generate whole budgets: the early stop on malformed block starts would end an untuned model's blocks at once
    backend = TransformersBackend(model, device="cpu", stop_malformed_starts=False)
    texts = prompts(problems)
    timed_run(backend, texts[:1], 2)  # warm-up
    backend.max_batch_size = 1
    sequential = timed_run(backend, texts, tokens)
    backend.max_batch_size = problems
    batched = timed_run(backend, texts, tokens)
    total = problems * tokens
    print(f"model {model}: {problems} problems x {tokens} tokens")
    print(f"one block at a time : {sequential:7.2f} s  ({total / sequential:6.1f} tokens/s)")
    print(f"batched ({problems} per call): {batched:7.2f} s  ({total / batched:6.1f} tokens/s)")
    print(f"speed-up of batching: {sequential / batched:.2f}x")


def timed_solve(engine: Any, items: list[str]) -> tuple[float, Counter[str]]:
    started = time.perf_counter()
    solutions = asyncio.run(engine.solve_many(items))
    finishes = Counter(solution.finish_reason for solution in solutions)
    finishes["code_calls"] = sum(solution.counters["code_calls"] for solution in solutions)
    return time.perf_counter() - started, finishes


def benchmark_tir_eval(model: str, problems: int, tokens: int) -> None:
    from transformers import AutoTokenizer

    from evaluation.lce.engine import LCEInferenceConfig, LCEInferenceEngine
    from evaluation.tir_eval import WORKED_EXAMPLE_SYSTEM_PROMPT
    from mathcode_pile.lce.execution import SandboxSessions
    from mathcode_pile.lce.syntax import syntax_for

    syntax = syntax_for("chat", AutoTokenizer.from_pretrained(model))
    backend = TransformersBackend(model, device="cpu", max_batch_size=problems, syntax=syntax)
    config = LCEInferenceConfig(
        max_new_tokens_per_block=tokens,
        max_code_calls=2,
        max_concurrent_problems=problems,
        system_prompt=WORKED_EXAMPLE_SYSTEM_PROMPT,  # the untuned model then writes code that runs
    )
    items = questions(problems)
    with SandboxSessions(workers=2) as sessions:
        engine = LCEInferenceEngine(backend, sessions, config, syntax=syntax)
        timed_solve(engine, items[:1])  # warm-up: model, sandbox pool
        backend.max_batch_size = 1
        sequential, sequential_finishes = timed_solve(engine, items)
        backend.max_batch_size = problems
        batched, batched_finishes = timed_solve(engine, items)
    print(f"model {model}: TIR evaluation of {problems} GSM8K problems, up to {tokens} tokens per generation")
    for label, seconds, finishes in (
        ("one problem at a time ", sequential, sequential_finishes),
        (f"batched ({problems} in flight)", batched, batched_finishes),
    ):
        print(f"{label}: {seconds:7.2f} s  ({problems / seconds:6.2f} problems/s)  {dict(finishes)}")
    print(f"speed-up of batching: {sequential / batched:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="model folder (default: the converted embedded SmolLM2)")
    parser.add_argument("--syntax", choices=("lce", "fenced"), default="lce")
    parser.add_argument("--problems", type=int, default=8)
    parser.add_argument("--tokens", type=int, default=None, help="per block (lce: 32) or per generation (fenced: 96)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    args = parser.parse_args()
    if args.model is None:
        from mathcode_pile.llm.embedded import convert_embedded_to_safetensors

        args.model = str(convert_embedded_to_safetensors())
    if args.threads is not None:
        import torch

        torch.set_num_threads(args.threads)
    model = str(Path(args.model))
    if args.syntax == "lce":
        benchmark_lce_blocks(model, args.problems, args.tokens or 32)
    else:
        benchmark_tir_eval(model, args.problems, args.tokens or 96)


if __name__ == "__main__":
    main()
