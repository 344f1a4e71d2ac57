"""The pre-translation stages on datatrove's local executor vs the one-machine ``datasets`` path, same documents.

Generates ``--docs`` documents (default 100,000, about 2 KB each: bundled math and non-math samples joined, every
50th a near copy of the one before it, so dedup has clusters to find) as one JSONL source, then builds the recipe's
pre-translation stages (math_classify, dedup, decontaminate, mixture) four ways in fresh processes:
``--executor datasets`` with ``num_proc`` 1 and 2, and ``--executor local --tasks T`` with ``--workers`` 1 and 2.
The classifier is trained once up front and shared, so every run times the same work. The time compared is the
build's own "stages finished in" figure (loading the source and writing the dataset are the same in every run).
Printed: local 2 workers vs 1 (goal >= 1.7) and local vs datasets at the same process count (goal >= 0.9).
Run: ``python benchmarks/scale_out.py [--docs 100000] [--tasks 8]``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mathcode_pile.classifier.data import read_labeled, sample_training_sources
from mathcode_pile.stages.base import StageContext
from mathcode_pile.stages.classify import ClassifyConfig, ensure_trained_classifier

STAGES = ["math_classify", "dedup", "decontaminate", "mixture"]


def write_documents(path: Path, count: int, min_chars: int) -> int:
    positives, negatives = sample_training_sources()
    examples, _ = read_labeled(positives, negatives)
    random.Random(0).shuffle(examples)
    total = 0
    with path.open("w", encoding="utf-8") as handle:
        previous = ""
        for i in range(count):
            if i % 50 == 49:
                text = previous + " (edited)"  # a near-duplicate of the document before
            else:
                parts, length, j = [], 0, i
                while length < min_chars:
                    parts.append(examples[j % len(examples)].text)
                    length += len(parts[-1])
                    j += 7
                text = "\n\n".join(parts) + f"\n(document {i})"
            previous = text
            total += len(text)
            handle.write(json.dumps({"id": f"doc-{i}", "text": text}) + "\n")
    return total


def run_build(folder: Path, recipe: Path, name: str, *overrides: str) -> float:
    command = [sys.executable, "-m", "mathcode_pile.cli", "build", "--config", str(recipe),
               "--output_dir", str(folder / name), *overrides]  # fmt: skip
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode:
        raise SystemExit(f"{name} failed:\n{result.stderr[-3000:]}")
    match = re.search(r"stages finished in ([0-9.]+)s", result.stderr)
    seconds = float(match.group(1)) if match else float("nan")
    print(f"  {name:<28} stages {seconds:7.1f} s   (whole build {time.perf_counter() - started:6.1f} s)", flush=True)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=100_000)
    parser.add_argument("--min-chars", type=int, default=2000)
    parser.add_argument("--tasks", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="scale_out_") as tmp:
        folder = Path(tmp)
        chars = write_documents(folder / "docs.jsonl", args.docs, args.min_chars)
        classifier = ensure_trained_classifier(ClassifyConfig(), StageContext(work_dir=folder / "shared"))
        recipe = folder / "recipe.yaml"
        recipe.write_text(
            json.dumps(
                {
                    "dataset_name": "scale-out benchmark",
                    "sources": [{"name": "web", "path": str(folder / "docs.jsonl"), "kind": "web"}],
                    "stages": STAGES,
                    "classifier_model": str(classifier),
                    "shard_rows": 20_000,
                    "token_count_tokenizer": "none",
                }
            ),
            encoding="utf-8",
        )
        print(f"{args.docs:,} documents, {chars / 1e6:.0f} MB of text, stages {', '.join(STAGES)}; "
              f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs", flush=True)  # fmt: skip
        datasets_1 = run_build(folder, recipe, "datasets num_proc=1", "--executor", "datasets", "--num_proc", "1")
        local_1 = run_build(folder, recipe, "local workers=1", "--executor", "local", "--tasks", str(args.tasks),
                            "--workers", "1")  # fmt: skip
        local_2 = run_build(folder, recipe, "local workers=2", "--executor", "local", "--tasks", str(args.tasks),
                            "--workers", "2")  # fmt: skip
        datasets_2 = run_build(folder, recipe, "datasets num_proc=2", "--executor", "datasets", "--num_proc", "2")
    print(f"local executor, 2 workers vs 1:            {local_1 / local_2:.2f}x  (goal >= 1.7)")
    print(f"local vs datasets, 1 process:              {datasets_1 / local_1:.2f}  (goal >= 0.9)")
    print(f"local vs datasets, 2 processes:            {datasets_2 / local_2:.2f}  (goal >= 0.9)")


if __name__ == "__main__":
    main()
