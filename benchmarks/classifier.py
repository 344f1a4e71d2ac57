"""Throughput of the ``math_classify`` filter vs a bare fastText predict loop over the same documents.

The bare loop is the floor of any fastText filter: ``model.predict(text)`` per document (newlines replaced, as
fastText requires), nothing else. The filter is the stage's batched function applied by ``Dataset.map`` exactly as
the runner applies it (``apply_stage``: text preparation, batching, Arrow conversion, the keep / drop column; the
columns the stage does not rewrite pass through uncopied); it is timed with ``num_proc=1`` and ``num_proc=2``. The
whole ``run_stage`` (kept / dropped split and Parquet writing around the map) is timed too. Printed: documents/s of
each, the ratio map / bare with ``num_proc=1`` (goal >= 0.7) and the speed-ups of two processes over one
(near-linear: close to 2 on two otherwise idle cores; the load average is printed because other work on the machine
takes cores away). The same-run baseline for two processes is the bare loop split over two forked processes: how far
fastText itself scales here (two cores share caches and memory bandwidth). Documents are bundled samples joined up
to ``--min-chars`` characters: web pages and papers average several KB, and short documents make the fixed costs
(starting worker processes) dominate.
Run: ``python benchmarks/classifier.py [--docs 40000] [--min-chars 4000] [--repeats 3]``.
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
from mathcode_pile.runner import apply_stage, run_stage
from mathcode_pile.stages.base import StageContext
from mathcode_pile.stages.classify import ClassifyConfig, MathClassifyStage


def make_documents(count: int, min_chars: int) -> Dataset:
    """``count`` documents of at least ``min_chars`` characters, each joined from consecutive bundled samples of one
    label (cycled; made unique by a suffix)."""
    positives, negatives = sample_training_sources()
    examples, _ = read_labeled(positives, negatives)
    random.Random(0).shuffle(examples)  # math and non-math mixed in every batch
    texts = []
    for i in range(count):
        first = examples[i % len(examples)]
        parts, length, j = [first.text], len(first.text), i + 1
        while length < min_chars:
            following = examples[j % len(examples)]
            if following.is_math == first.is_math:
                parts.append(following.text)
                length += len(following.text)
            j += 1
        texts.append("\n\n".join(parts) + f"\n(copy {i})")
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


def bare_loop_two_processes(model_path: Path, texts: list[str]) -> float:
    """The bare loop split over two forked processes: the parallel ceiling of fastText itself on this machine."""
    import multiprocessing

    model = MathClassifier(model_path).model
    halves = [texts[: len(texts) // 2], texts[len(texts) // 2 :]]

    def predict_all(part: list[str]) -> None:
        for text in part:
            model.predict(text.replace("\n", " "))

    context = multiprocessing.get_context("fork")
    started = time.perf_counter()
    workers = [context.Process(target=predict_all, args=(half,)) for half in halves]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    elapsed = time.perf_counter() - started
    assert all(worker.exitcode == 0 for worker in workers)
    return elapsed


def make_stage(model_path: Path, work: Path, num_proc: int = 1) -> MathClassifyStage:
    stage = MathClassifyStage(
        ClassifyConfig(classifier_model=str(model_path)), StageContext(work_dir=work, num_proc=num_proc)
    )
    stage.fingerprint("bench")  # reads the model folder outside the timed part, as a build does first
    return stage


def filter_run(model_path: Path, dataset: Dataset, num_proc: int, work: Path) -> float:
    """The stage's ``Dataset.map`` exactly as the runner applies it (columns it does not rewrite pass through)."""
    stage = make_stage(model_path, work, num_proc)
    _ = stage.classifier.model  # loaded once here, like the bare loop's model
    scratch = work / f"scratch-{num_proc}-{time.perf_counter_ns()}"
    started = time.perf_counter()
    mapped = apply_stage(stage, dataset, scratch, new_fingerprint=f"bench-{num_proc}-{time.perf_counter_ns()}")
    elapsed = time.perf_counter() - started
    assert len(mapped) == len(dataset)
    return elapsed


def stage_run(model_path: Path, dataset: Dataset, num_proc: int, work: Path) -> float:
    """The whole stage as a build runs it: one shard, kept / dropped split and Parquet files included."""
    stage = make_stage(model_path, work, num_proc)
    _ = stage.classifier.model
    started = time.perf_counter()
    result = run_stage(stage, dataset, "bench", work / f"stage-{num_proc}-{time.perf_counter_ns()}", len(dataset))
    elapsed = time.perf_counter() - started
    assert result.stats.rows_in == len(dataset)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=40_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--min-chars", type=int, default=4000, help="join samples up to this length (web pages average several KB)"
    )
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
        make_documents(args.docs, args.min_chars).save_to_disk(str(work / "docs"))
        dataset = load_from_disk(str(work / "docs"))
        texts = dataset["text"]
        megabytes = sum(len(t.encode("utf-8")) for t in texts) / 1e6
        timings: dict[str, list[float]] = {
            "bare": [], "bare_two": [], "one": [], "two": [], "stage_one": [], "stage_two": []
        }  # fmt: skip
        for _ in range(args.repeats):
            timings["bare"].append(bare_loop(work / "model", texts))
            timings["bare_two"].append(bare_loop_two_processes(work / "model", texts))
            timings["one"].append(filter_run(work / "model", dataset, 1, work))
            timings["two"].append(filter_run(work / "model", dataset, 2, work))
            timings["stage_one"].append(stage_run(work / "model", dataset, 1, work))
            timings["stage_two"].append(stage_run(work / "model", dataset, 2, work))
        rate = {name: args.docs / statistics.median(values) for name, values in timings.items()}
    load = os.getloadavg()[0]
    machine = f"{os.cpu_count()} cores, load average {load:.1f}"
    print(f"documents: {args.docs} ({megabytes:.1f} MB), median of {args.repeats} runs; {machine}")
    print(f"bare fastText predict loop          : {rate['bare']:10.0f} docs/s")
    print(f"bare loop in 2 processes            : {rate['bare_two']:10.0f} docs/s")
    print(f"math_classify map, num_proc=1       : {rate['one']:10.0f} docs/s")
    print(f"math_classify map, num_proc=2       : {rate['two']:10.0f} docs/s")
    print(f"run_stage (map + Parquet), 1 process: {rate['stage_one']:10.0f} docs/s")
    print(f"run_stage (map + Parquet), 2        : {rate['stage_two']:10.0f} docs/s")
    print(f"ratio map(num_proc=1) / bare        : {rate['one'] / rate['bare']:.2f}  (goal >= 0.7)")
    print(f"speed-up of the bare loop, 2 / 1    : {rate['bare_two'] / rate['bare']:.2f}  (this machine's ceiling)")
    print(f"speed-up of the map, 2 / 1 processes: {rate['two'] / rate['one']:.2f}  (near-linear: close to 2)")
    print(f"map(num_proc=2) / bare in 2 procs   : {rate['two'] / rate['bare_two']:.2f}")
    print(f"speed-up of run_stage, 2 / 1        : {rate['stage_two'] / rate['stage_one']:.2f}")


if __name__ == "__main__":
    main()
