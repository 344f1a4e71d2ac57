"""The build's stages as datatrove pipelines: input shards → stage steps → MinHash dedup → stage steps → rows.

The loaded sources are cut into ``tasks`` contiguous Parquet shards; consecutive stages run as one pipeline per
segment (reader, :class:`StageStep`s, writer), and ``dedup`` becomes datatrove's four MinHash steps (signatures →
buckets → clusters → filter) with the banding datasketch chooses for the recipe's threshold and permutation count.
The classifier is trained (or its cached model found) once here, before any scoring task starts; each task builds
the decontamination index from the benchmark files itself. Task outputs keep the input order (task ``i`` reads
shard ``i``), so the assembled rows come in the same order as on one machine. Everything lives under
``<work_dir>/scale/<fingerprint>/``: a rerun with the same input and recipe skips the tasks datatrove marked
complete and re-runs the rest.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
from datasets import Dataset

from mathcode_pile.scale.config import ExecutorConfig
from mathcode_pile.scale.executors import make_executor, run_with_retries, start_ray
from mathcode_pile.scale.minhash import minhash_config, signature_step
from mathcode_pile.scale.stats import stage_stats, step_counters
from mathcode_pile.stages.dedup import DATATROVE_MINHASH_COUNTER
from mathcode_pile.stats import StageStats

logger = logging.getLogger(__name__)

INPUT_DIR = "00_input"
DEDUP = "dedup"


def write_input_shards(dataset: Dataset, folder: Path, tasks: int) -> None:
    """``tasks`` contiguous shards (``NNNNN.parquet``), so task ``i`` reads rows in the dataset's order."""
    if (folder / "_SUCCESS").exists():
        return
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    table = dataset.with_format("arrow")[:]
    per_task = max(1, math.ceil(len(dataset) / tasks))
    for rank in range(tasks):
        part = table.slice(rank * per_task, per_task)
        if part.num_rows:
            pq.write_table(part, folder / f"{rank:05d}.parquet")
    (folder / "_SUCCESS").write_text("")


def _reader(folder: Path) -> Any:
    from datatrove.pipeline.readers import ParquetReader

    from mathcode_pile.scale.documents import read_row

    reader = ParquetReader(str(folder), adapter=read_row, glob_pattern="*.parquet")
    reader.add_file_path = False  # rows keep exactly their columns
    return reader


def _writer(folder: Path) -> Any:
    from datatrove.pipeline.writers import ParquetWriter

    from mathcode_pile.scale.documents import write_row

    return ParquetWriter(str(folder), output_filename="${rank}.parquet", adapter=write_row)


def _fingerprint(input_fingerprint: str, executor: ExecutorConfig, stage_names: list[str], configs: Any) -> str:
    material = {
        "input": input_fingerprint,
        "tasks": executor.tasks,
        "stages": stage_names,
        "configs": {type(c).__name__: repr(c) for c in configs.stage_configs.values()},
    }
    return hashlib.sha256(json.dumps(material, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _prepare_shared_models(stage_classes: list[type], configs: Any, context: Any) -> None:
    """Work every task would otherwise repeat, done once here before any task starts.

    Each stage is built once in this process too, so it publishes its card section exactly as on one machine; the
    classifier is trained (or found cached) here.
    """
    for stage_class in stage_classes:
        stage_class(configs.stage_configs[stage_class.config_class], context)
    if "math_classify" in [c.name for c in stage_classes]:
        from mathcode_pile.stages.classify import ClassifyConfig, ensure_trained_classifier

        folder = ensure_trained_classifier(configs.stage_configs[ClassifyConfig], context)
        logger.info("math classifier ready for the scoring tasks: %s", folder)


def run_stages_scaled(
    configs: Any,
    dataset: Dataset,
    input_fingerprint: str,
    work_dir: Path,
    output_dir: Path,
    llm: Any,
    stage_classes: list[type],
) -> tuple[Dataset, list[StageStats]] | None:
    """Run the recipe's stages under its datatrove executor; returns the kept rows and each stage's stats.

    Under Slurm the jobs are submitted (each depending on the one before) and None is returned: assembly is a rerun
    once they have finished.
    """
    from mathcode_pile.stages.base import StageContext

    executor_config: ExecutorConfig = configs.stage_configs[ExecutorConfig]
    pipeline = configs.pipeline
    stage_names = [c.name for c in stage_classes]
    root = work_dir / "scale" / _fingerprint(input_fingerprint, executor_config, stage_names, configs)
    tasks = executor_config.tasks
    write_input_shards(dataset, root / INPUT_DIR, tasks)
    context = StageContext(
        work_dir=work_dir, llm=llm, num_proc=1, seed=pipeline.seed, extras={"output_dir": str(output_dir)}
    )
    _prepare_shared_models(stage_classes, configs, context)
    if executor_config.executor == "ray":
        start_ray(executor_config)
    if executor_config.executor == "local":
        preload_local_workers(stage_classes)
    llm_config = llm.config if llm is not None else None
    plan, final_folder = _plan(configs, stage_classes, root, str(work_dir), str(output_dir), llm_config)
    previous = None
    for name, pipeline_steps, step_tasks, workers in plan:
        logging_dir = root / "logs" / name
        executor = make_executor(
            executor_config, pipeline_steps, logging_dir, step_tasks, f"mathcode_{name}", previous, workers
        )
        if executor_config.executor == "slurm":
            previous = executor
            continue
        logger.info("step %s: %d task(s) on %s", name, step_tasks, executor_config.executor)
        run_with_retries(executor, executor_config, logging_dir, step_tasks, name)
    if executor_config.executor == "slurm":
        previous.run()
        logger.info(
            "Slurm jobs submitted (logs under %s); once they finish, rerun the same command with --executor local "
            "to assemble the dataset from their outputs (finished tasks are skipped)",
            root / "logs",
        )
        return None
    stats = [_stats_of(root, plan, name) for name in stage_names]
    return read_rows(final_folder), stats


def preload_local_workers(stage_classes: list[type]) -> None:
    """Import the stage code once, in the fork server every local worker of every step is forked from.

    datatrove's local executor starts its workers with ``forkserver``; without a preload each worker of each step
    imports the stages, ``datasets`` and datatrove again (about 3 s of CPU apiece, measured), which on a few cores is
    a large share of a step.
    """
    import multiprocess

    modules = {"mathcode_pile.scale.stage_step", "datatrove.pipeline.dedup.minhash", "datatrove.pipeline.readers"}
    modules.update(stage_class.__module__ for stage_class in stage_classes)
    multiprocess.get_context("forkserver").set_forkserver_preload(sorted(modules))


def read_rows(folder: Path) -> Dataset:
    """The rows of every task's output file, in task order (the input order)."""
    from mathcode_pile.runner import load_parquet_files

    return load_parquet_files(sorted(folder.glob("*.parquet")))


def _stats_of(root: Path, plan: list[tuple[str, list[Any], int, int | None]], stage_name: str) -> StageStats:
    """The stage's counters from the logs of the step that ran it (dedup: the MinHash filter)."""
    for name, steps, _, _ in plan:
        if any(str(step).endswith(f"stage:{stage_name}") for step in steps):
            logging_dir = root / "logs" / name
            if stage_name != DEDUP:
                return stage_stats(logging_dir, stage_name)
            counters, seconds = step_counters(logging_dir, f"stage:{DEDUP}")
            dropped = int(counters["dropped"])
            return StageStats(
                stage=DEDUP,
                rows_in=int(counters["total"]),
                rows_kept=int(counters["forwarded"]),
                dropped=Counter({"near_duplicate": dropped} if dropped else {}),
                seconds=seconds,
                # the card says which MinHash ran; datatrove's filter does not tell a cluster's sources apart
                extra=Counter({DATATROVE_MINHASH_COUNTER: 1}),
            )
    raise KeyError(stage_name)


def _dropped_writer(root: Path, stage_name: str) -> Any:
    """Exclusion writer of one stage: its dropped rows with their reason, one file per task."""
    from datatrove.pipeline.writers import ParquetWriter

    from mathcode_pile.scale.documents import write_near_duplicate, write_row

    adapter = write_near_duplicate if stage_name == DEDUP else write_row
    return ParquetWriter(str(root / "dropped" / stage_name), output_filename="${rank}.parquet", adapter=adapter)


def _segment_output(root: Path, stage_name: str, index: int) -> Path:
    return root / f"{index:02d}_{stage_name}"


def _plan(
    configs: Any, stage_classes: list[type], root: Path, work_dir: str, output_dir: str, llm_config: Any
) -> tuple[list[tuple[str, list[Any], int, int | None]], Path]:
    """(step name, datatrove pipeline, tasks, workers) in run order, and the folder of the last step's rows."""
    from datatrove.pipeline.dedup.minhash import (
        MinhashDedupBuckets,
        MinhashDedupCluster,
        MinhashDedupFilter,
    )
    from datatrove.utils.stats import Stats

    from mathcode_pile.scale.stage_step import StageStep

    executor_config: ExecutorConfig = configs.stage_configs[ExecutorConfig]
    tasks = executor_config.tasks
    plan: list[tuple[str, list[Any], int, int | None]] = []
    current_input = root / INPUT_DIR
    segment: list[Any] = []
    segment_names: list[str] = []
    filter_step: Any = None

    def close_segment(index: int) -> None:
        nonlocal current_input, segment, segment_names, filter_step
        if not segment and filter_step is None:
            return
        output = _segment_output(root, segment_names[-1], index)
        steps = [_reader(current_input)] + ([filter_step] if filter_step is not None else []) + segment
        plan.append((output.name, [*steps, _writer(output)], tasks, None))
        current_input, segment, segment_names, filter_step = output, [], [], None

    for index, stage_class in enumerate(stage_classes, start=1):
        if stage_class.name == DEDUP:
            close_segment(index - 1)
            dedup_config = configs.stage_configs[stage_class.config_class]
            minhash = minhash_config(dedup_config)
            dedup_dir = root / f"{index:02d}_minhash"
            signatures = signature_step(str(dedup_dir / "signatures"), minhash)
            plan.append((f"{index:02d}_minhash_signatures", [_reader(current_input), signatures], tasks, None))
            plan.append((f"{index:02d}_minhash_buckets",
                         [MinhashDedupBuckets(str(dedup_dir / "signatures"), str(dedup_dir / "buckets"),
                                              config=minhash)], minhash.num_buckets, None))  # fmt: skip
            plan.append((f"{index:02d}_minhash_clusters",
                         [MinhashDedupCluster(str(dedup_dir / "buckets"), str(dedup_dir / "remove_ids"),
                                              config=minhash)], 1, 1))  # fmt: skip
            filter_step = MinhashDedupFilter(
                str(dedup_dir / "remove_ids"), exclusion_writer=_dropped_writer(root, DEDUP)
            )
            filter_step.name = f"stage:{DEDUP}"
            filter_step.stats = Stats(str(filter_step))  # counters filed under the stage's name
            segment_names.append(stage_class.name)
            continue
        segment.append(
            StageStep(
                stage_class.name,
                configs.stage_configs[stage_class.config_class],
                work_dir,
                configs.pipeline.seed,
                output_dir,
                llm_config=llm_config,
                exclusion_writer=_dropped_writer(root, stage_class.name) if configs.pipeline.keep_dropped else None,
            )
        )
        segment_names.append(stage_class.name)
    close_segment(len(stage_classes))
    return plan, current_input
