"""Throughput (MB/s) of ``mathcode-pile decontaminate`` vs normalizing the same text, against every shared test set.

The baseline is the part no normalized n-gram check can skip: NFKC + lower-casing + splitting into words, over the
same documents. The decontamination run adds the n-gram lookups, JSON reading and writing and the report; it is timed
with one and two worker processes. The index build (all benchmark items) is timed separately.
Printed: MB/s of each, the ratio decontamination / normalization and the two-process speed-up.
Run: ``python benchmarks/decontamination.py [--megabytes 20] [--repeats 3]``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import statistics
import tempfile
import time
from pathlib import Path

from mathcode_pile.classifier.data import read_labeled, sample_training_sources
from mathcode_pile.decontamination import normalize_tokens
from mathcode_pile.decontamination.run import build_index, decontaminate_file
from mathcode_pile.jsonl import read_jsonl
from mathcode_pile.paths import benchmark_file, benchmarks_dir


def write_documents(path: Path, megabytes: float) -> tuple[list[str], int]:
    """Documents of about 2 KB glued from clean sample paragraphs, one in 500 with a GSM8K question planted."""
    # AQuA-RAT and TheoremQA only: the bundled MMLU and NumGLUE samples hold real test items (MMLU, SimulEq)
    positives, _ = sample_training_sources()
    clean = [spec for spec in positives if spec["name"] in ("aqua_rat", "theoremqa")]
    paragraphs = [example.text for example in read_labeled(clean, [])[0]]
    questions = [row["question"] for row in read_jsonl(benchmark_file(benchmarks_dir(), "gsm8k_test"))]
    rng = random.Random(0)
    texts: list[str] = []
    size = 0
    while size < megabytes * 1e6:
        parts = rng.sample(paragraphs, 6)
        if len(texts) % 500 == 0:
            parts.insert(3, rng.choice(questions).upper())
        text = "\n\n".join(parts)
        texts.append(text)
        size += len(text.encode("utf-8"))
    with path.open("w", encoding="utf-8") as handle:
        for i, text in enumerate(texts):
            handle.write(json.dumps({"id": f"doc-{i}", "text": text}) + "\n")
    return texts, size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=float, default=20.0)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="bench-decontam-") as tmp:
        source = Path(tmp) / "docs.jsonl"
        texts, size = write_documents(source, args.megabytes)
        started = time.perf_counter()
        index = build_index([str(benchmarks_dir())])
        build_seconds = time.perf_counter() - started
        timings: dict[str, list[float]] = {"normalize": [], "one": [], "two": []}
        removed = 0
        for _ in range(args.repeats):
            started = time.perf_counter()
            for text in texts:
                normalize_tokens(text)
            timings["normalize"].append(time.perf_counter() - started)
            for name, num_proc in (("one", 1), ("two", 2)):
                target = Path(tmp) / f"clean-{name}.jsonl"
                report = decontaminate_file(source, target, index, num_proc=num_proc, overwrite=True)
                timings[name].append(report.seconds)
                removed = len(report.removed)
    megabytes = size / 1e6
    rate = {name: megabytes / statistics.median(values) for name, values in timings.items()}
    machine = f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}"
    print(f"input: {len(texts)} documents, {megabytes:.1f} MB; median of {args.repeats} runs; {machine}")
    print(f"index: {len(index.items)} test items, {len(index)} windows, built in {build_seconds:.2f}s")
    print(f"normalization only              : {rate['normalize']:7.2f} MB/s")
    print(f"decontaminate, 1 process        : {rate['one']:7.2f} MB/s  ({removed} documents removed)")
    print(f"decontaminate, 2 processes      : {rate['two']:7.2f} MB/s")
    print(f"ratio decontaminate(1) / normalization : {rate['one'] / rate['normalize']:.2f}")
    print(f"speed-up 2 processes / 1 process       : {rate['two'] / rate['one']:.2f}")


if __name__ == "__main__":
    main()
