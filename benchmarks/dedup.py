"""Throughput of the ``dedup`` stage vs computing the same MinHash signatures bare, on the same documents.

The baseline is the part no MinHash dedup can skip: datasketch's ``MinHash.bulk`` over the shingle sets of every
document. The stage adds the LSH index (query + insert, keep-first), the Jaccard check of candidates, saving the
kept signatures for resumption and ``Dataset.map``. Half of the documents are near-duplicates of the other half (a
re-post with another header and changed spacing), so the index answers hits as well as misses.
Printed: documents/s of each and the ratio stage / signatures.
Run: ``python benchmarks/dedup.py [--docs 20000] [--repeats 3]``.
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import statistics
import tempfile
import time
from pathlib import Path

from datasets import Dataset
from datasketch import MinHash

from mathcode_pile.classifier.data import read_labeled, sample_training_sources
from mathcode_pile.dedup import shingles
from mathcode_pile.runner import run_stage
from mathcode_pile.stages.base import StageContext
from mathcode_pile.stages.dedup import DedupConfig, DedupStage


def make_documents(count: int) -> Dataset:
    positives, negatives = sample_training_sources()
    examples, _ = read_labeled(positives, negatives)
    rng = random.Random(0)
    paragraphs = [example.text for example in examples]
    originals = ["\n\n".join(rng.sample(paragraphs, 3)) for _ in range(count // 2)]
    reposts = [f"Re-posted from a forum:\n{text.replace(' ', '  ')}\nThanks!" for text in originals]
    texts = originals + reposts
    rng.shuffle(texts)
    return Dataset.from_dict(
        {
            "id": [f"doc-{i}" for i in range(len(texts))],
            "text": texts,
            "source": ["web"] * len(texts),
            "metadata": ['{"kind": "web"}'] * len(texts),
        }
    )


def signatures_only(texts: list[str], config: DedupConfig) -> float:
    started = time.perf_counter()
    MinHash.bulk([shingles(t, config.dedup_ngram_size) for t in texts], num_perm=config.dedup_num_perm)
    return time.perf_counter() - started


def stage_run(dataset: Dataset, config: DedupConfig, work: Path) -> tuple[float, int]:
    stage = DedupStage(config, StageContext(work_dir=work))
    started = time.perf_counter()
    result = run_stage(stage, dataset, "bench", work / "stage", shard_rows=len(dataset))
    return time.perf_counter() - started, result.stats.rows_dropped


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    import datasets

    datasets.disable_progress_bars()
    config = DedupConfig()
    dataset = make_documents(args.docs)
    texts = dataset["text"]
    bare, staged = [], []
    dropped = 0
    for repeat in range(args.repeats):
        bare.append(signatures_only(texts, config))
        with tempfile.TemporaryDirectory(prefix=f"bench-dedup-{repeat}-") as tmp:
            seconds, dropped = stage_run(dataset, config, Path(tmp))
        staged.append(seconds)
    bare_rate = len(texts) / statistics.median(bare)
    stage_rate = len(texts) / statistics.median(staged)
    machine = f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}"
    print(f"documents: {len(texts)}, half near-duplicates (the stage dropped {dropped}); {machine}")
    print(f"median of {args.repeats} runs")
    print(f"MinHash signatures only (datasketch bulk): {bare_rate:9.0f} docs/s")
    print(f"dedup stage (LSH keep-first, run_stage)  : {stage_rate:9.0f} docs/s")
    print(f"ratio stage / signatures                 : {stage_rate / bare_rate:.2f}")


if __name__ == "__main__":
    main()
