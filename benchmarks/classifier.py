"""Throughput of the ``math_classify`` filter vs a bare fastText predict loop over the same documents.

The bare loop is the floor of any fastText filter: ``model.predict(text)`` per document (newlines replaced, as
fastText requires), nothing else. The filter is the stage's batched function applied by ``Dataset.map`` (the stage
contract), which adds text preparation, batching, Arrow conversion and the keep / drop column; it is timed with
``num_proc=1`` and ``num_proc=2``. The whole ``run_stage`` (shard bookkeeping and Parquet writing around the map) is
timed too, for reference. Printed: documents/s of each, the ratio filter / bare with ``num_proc=1`` (goal >= 0.7)
and the speed-up of ``num_proc=2`` over ``num_proc=1`` (near-linear: close to 2 on two otherwise idle cores; the
load average is printed because other work on the machine takes cores away).
Run: ``python benchmarks/classifier.py [--docs 40000] [--repeats 3]``.
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

from datasets import Dataset, load_from_disk

from mathcode_pile.classifier import ClassifierTrainingSettings, MathClassifier, train_math_classifier
from mathcode_pile.classifier.data import read_labeled, sample_training_sources
from mathcode_pile.runner import run_stage
from mathcode_pile.stages.base import StageContext
from mathcode_pile.stages.classify import ClassifyConfig, MathClassifyStage


def make_documents(count: int) -> Dataset:
    """``count`` documents cycled from the bundled samples (each made unique by a suffix)."""
    positives, negatives = sample_training_sources()
    examples, _ = read_labeled(positives, negatives)
    random.Random(0).shuffle(examples)  # math and non-math mixed in every batch
    texts = [f"{examples[i % len(examples)].text}\n(copy {i})" for i in range(count)]
    return Dataset.from_dict(
        {
            "id": [f"doc-{i}" for i in range(count)],
            "text": texts,
            "source": ["web"] * count,
            "metadata": [json.dumps({"kind": "web", "location": f"bench:{i}"}) for i in range(count)],
        }
    )


def bare_loop(model_path: Path, texts: list[str]) -> float:
    model = MathClassifier(model_path).model
    started = time.perf_counter()
    for text in texts:
        model.predict(text.replace("\n", " "))
    return time.perf_counter() - started


def make_stage(model_path: Path, work: Path, num_proc: int = 1) -> MathClassifyStage:
    stage = MathClassifyStage(
        ClassifyConfig(classifier_model=str(model_path)), StageContext(work_dir=work, num_proc=num_proc)
    )
    stage.fingerprint("bench")  # reads the model folder outside the timed part, as a build does first
    return stage


def filter_run(stage: MathClassifyStage, dataset: Dataset, num_proc: int, work: Path) -> float:
    # results go to Arrow files (as datasets does by default): with keep_in_memory=True every worker would send its
    # whole output back through a pipe, which costs more than the classification itself
    started = time.perf_counter()
    mapped = dataset.map(
        stage.process_batch,
        batched=True,
        batch_size=stage.batch_size,
        num_proc=num_proc if num_proc > 1 else None,
        load_from_cache_file=False,
        cache_file_name=str(work / f"filter-{num_proc}-{time.perf_counter_ns()}.arrow"),
        new_fingerprint=f"bench-{num_proc}-{time.perf_counter_ns()}",
    )
    elapsed = time.perf_counter() - started
    assert len(mapped) == len(dataset)
    return elapsed


def stage_run(stage: MathClassifyStage, dataset: Dataset, work: Path) -> float:
    started = time.perf_counter()
    result = run_stage(stage, dataset, "bench", work, shard_rows=len(dataset))
    elapsed = time.perf_counter() - started
    assert result.stats.rows_in == len(dataset)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=40_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    import datasets

    datasets.disable_progress_bars()
    with tempfile.TemporaryDirectory(prefix="bench-classifier-") as tmp:
        work = Path(tmp)
        positives, negatives = sample_training_sources()
        train_math_classifier(ClassifierTrainingSettings(positives, negatives), work / "model")
        # memory-mapped from disk, as a build's datasets are: worker processes then map the file instead of
        # receiving a pickled copy of the whole table
        make_documents(args.docs).save_to_disk(str(work / "docs"))
        dataset = load_from_disk(str(work / "docs"))
        texts = dataset["text"]
        megabytes = sum(len(t.encode("utf-8")) for t in texts) / 1e6
        stage = make_stage(work / "model", work)
        _ = stage.classifier.model  # loaded once here, like the bare loop's model
        timings: dict[str, list[float]] = {"bare": [], "one": [], "two": [], "stage": []}
        for repeat in range(args.repeats):
            timings["bare"].append(bare_loop(work / "model", texts))
            timings["one"].append(filter_run(stage, dataset, 1, work))
            timings["two"].append(filter_run(stage, dataset, 2, work))
            timings["stage"].append(stage_run(stage, dataset, work / f"stage-{repeat}"))
        rate = {name: args.docs / statistics.median(values) for name, values in timings.items()}
    load = os.getloadavg()[0]
    machine = f"{os.cpu_count()} cores, load average {load:.1f}"
    print(f"documents: {args.docs} ({megabytes:.1f} MB), median of {args.repeats} runs; {machine}")
    print(f"bare fastText predict loop        : {rate['bare']:10.0f} docs/s")
    print(f"math_classify filter, num_proc=1  : {rate['one']:10.0f} docs/s")
    print(f"math_classify filter, num_proc=2  : {rate['two']:10.0f} docs/s")
    print(f"run_stage (shards + Parquet), 1   : {rate['stage']:10.0f} docs/s")
    print(f"ratio filter(num_proc=1) / bare   : {rate['one'] / rate['bare']:.2f}  (goal >= 0.7)")
    print(f"speed-up num_proc=2 / num_proc=1  : {rate['two'] / rate['one']:.2f}  (near-linear: close to 2)")


if __name__ == "__main__":
    main()
