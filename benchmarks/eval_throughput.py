"""Generation throughput of the suite's hf backend on CPU: batched generation vs one prompt at a time.

Same model (the embedded SmolLM2-135M-Instruct, converted to safetensors), same 4-shot GSM8K prompts from the
``mathcoder2_gsm8k`` task, same greedy settings; only lm-eval's ``batch_size`` changes. Prints samples/s for each
batch size and its ratio to batch size 1 measured in the same run, plus how many generations match batch size 1
(left padding may change a few greedy tokens). Run: ``python benchmarks/eval_throughput.py [--samples 16]``.
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def build_requests(samples: int, max_gen_toks: int) -> list[Any]:
    """generate_until requests for the first GSM8K test problems, exactly as the suite builds them."""
    from lm_eval.api.instance import Instance
    from lm_eval.tasks import TaskManager

    from evaluation.run_eval import TASKS_DIR
    from mathcode_pile.paths import benchmarks_dir

    manager = TaskManager(
        include_path=str(TASKS_DIR), include_defaults=False, metadata={"data_dir": str(benchmarks_dir())}
    )
    task = manager.load(["mathcoder2_gsm8k"])["tasks"]["mathcoder2_gsm8k"]
    generation = {**task.config.generation_kwargs, "max_gen_toks": max_gen_toks}
    docs = list(task.test_docs())[:samples]
    return [
        Instance(
            request_type="generate_until",
            doc=doc,
            arguments=(task.fewshot_context(doc, 4), generation),
            idx=0,
            metadata=("mathcoder2_gsm8k", index, 1),
        )
        for index, doc in enumerate(docs)
    ]


def timed_generation(model: Any, tokenizer: Any, batch_size: int, requests: list[Any]) -> tuple[float, list[str]]:
    from lm_eval.models.huggingface import HFLM

    lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size, device="cpu")
    started = time.perf_counter()
    outputs = lm.generate_until(requests, disable_tqdm=True)
    return time.perf_counter() - started, outputs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=16, help="GSM8K problems to generate for")
    parser.add_argument("--max-gen-toks", type=int, default=64, help="tokens generated per problem at most")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[4, 8, 16], help="batched runs besides 1")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from mathcode_pile.llm.embedded import convert_embedded_to_safetensors

    model_dir = convert_embedded_to_safetensors()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    requests = build_requests(args.samples, args.max_gen_toks)
    timed_generation(model, tokenizer, 1, requests[:1])  # warm-up: first-call allocations and kernels

    baseline_s, baseline_outputs = timed_generation(model, tokenizer, 1, requests)
    baseline_rate = len(requests) / baseline_s
    print(f"CPU threads: {torch.get_num_threads()}; {len(requests)} GSM8K 4-shot prompts, {args.max_gen_toks} tokens")
    print(f"batch  1: {baseline_rate:6.2f} samples/s  ({baseline_s:6.1f} s)  ratio 1.00")
    for batch_size in args.batch_sizes:
        elapsed, outputs = timed_generation(model, tokenizer, batch_size, requests)
        rate = len(requests) / elapsed
        same = sum(a == b for a, b in zip(outputs, baseline_outputs, strict=True))
        print(
            f"batch {batch_size:2d}: {rate:6.2f} samples/s  ({elapsed:6.1f} s)  ratio {rate / baseline_rate:4.2f}  "
            f"identical to batch 1: {same}/{len(requests)}"
        )


if __name__ == "__main__":
    main()
