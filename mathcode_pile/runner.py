"""Run one stage over a dataset in resumable work shards.

Each stage writes ``<stage_dir>/shard-NNNNN.parquet`` (kept rows), optionally ``shard-NNNNN.dropped.parquet``, and
last a ``shard-NNNNN.done.json`` marker holding the shard's counters and the stage fingerprint. A rerun skips every
shard whose marker carries the current fingerprint, so ``kill -9`` loses at most the shard in progress (and an LLM
stage re-reads that shard's finished requests from the request cache). The fingerprint covers the input, the stage's
name, version and config, so changing any of them recomputes instead of reusing stale rows. A shard whose rows were
dropped for a reason the stage marks as worth retrying (``Stage.retry_drop_reasons``: an LLM endpoint that gave up)
is recomputed on the next run instead of reused. Since a retry can change which rows such a stage keeps, its output
fingerprint also covers the ids of the kept rows, so the stages after it recompute rather than reuse shards cut from
the earlier output.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import shutil
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from datasets import Dataset, concatenate_datasets

from mathcode_pile.stages.base import DROP_COLUMN, Stage
from mathcode_pile.stats import StageStats

logger = logging.getLogger(__name__)

FINGERPRINT_FILE = "fingerprint.txt"
SUCCESS_FILE = "_SUCCESS.json"


@dataclass
class StageResult:
    dataset: Dataset
    stats: StageStats
    fingerprint: str


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def write_parquet(dataset: Dataset, path: Path) -> None:
    """Write ``dataset`` (features kept in the schema metadata) atomically: a reader never sees a partial file."""
    tmp = path.with_name(path.name + ".tmp")
    pq.write_table(dataset.with_format("arrow")[:], tmp)
    tmp.replace(path)


def load_parquet_files(files: list[Path]) -> Dataset:
    """Concatenate shard files, in order, into one dataset."""
    if not files:
        return Dataset.from_dict({})
    tables = [pq.read_table(f) for f in files]
    non_empty = [t for t in tables if t.num_rows] or tables[:1]
    return Dataset(pa.concat_tables(non_empty, promote_options="default"))


def _kept_ids_digest(ids: list[Any]) -> str:
    """A short hash of which rows a shard kept (for output fingerprints of stages that retry drops)."""
    return hashlib.sha256(json.dumps(ids, default=str).encode("utf-8")).hexdigest()[:16]


def _shard_bounds(num_rows: int, shard_rows: int) -> list[tuple[int, int]]:
    num_shards = max(1, math.ceil(num_rows / shard_rows))
    return [(i * shard_rows, min(num_rows, (i + 1) * shard_rows)) for i in range(num_shards)]


KEPT = ""


def _normalize_drop_column(batch: dict[str, list[Any]]) -> dict[str, list[Any]]:
    """Store "kept" as an empty string rather than ``None``.

    ``datasets`` fixes a column's Arrow type from the first batch it writes: a first batch that drops nothing would
    make the column all-null, and a later batch with a reason would then fail to write.
    """
    if DROP_COLUMN in batch:
        batch[DROP_COLUMN] = [KEPT if reason is None else str(reason) for reason in batch[DROP_COLUMN]]
    return batch


def _make_map_function(stage: Stage, passed_through: frozenset[str] = frozenset()) -> Any:
    """The stage's batch function as ``Dataset.map`` calls it; ``passed_through`` columns are left out of its output
    (the runner re-attaches them from the input without copying)."""

    def finish(output: dict[str, list[Any]]) -> dict[str, list[Any]]:
        for name in passed_through:
            output.pop(name, None)
        return _normalize_drop_column(output)

    if stage.is_async:

        async def apply_async(batch: dict[str, list[Any]]) -> dict[str, list[Any]]:
            return finish(await stage.aprocess_batch(batch))

        return apply_async

    def apply(batch: dict[str, list[Any]]) -> dict[str, list[Any]]:
        return finish(stage.process_batch(batch))

    return apply


def _passed_through_columns(stage: Stage, column_names: list[str]) -> frozenset[str]:
    """Input columns the stage declares it never rewrites (``Stage.rewrites_columns``)."""
    if stage.rewrites_columns is None:
        return frozenset()
    return frozenset(name for name in column_names if name not in stage.rewrites_columns)


def _attach_passed_through(part: Dataset, mapped: Dataset, passed_through: frozenset[str]) -> Dataset:
    """The stage's output plus the untouched input columns, in the order a full rewrite would have given."""
    if not passed_through:
        return mapped
    joined = concatenate_datasets([part.select_columns(sorted(passed_through)), mapped], axis=1)
    order = [name for name in part.column_names if name in joined.column_names]
    order += [name for name in mapped.column_names if name not in part.column_names]
    return joined.select_columns(order)


def _split_kept_dropped(mapped: Dataset) -> tuple[Dataset, Dataset | None, Counter[str]]:
    if DROP_COLUMN not in mapped.column_names:
        return mapped, None, Counter()
    reasons = mapped.with_format("arrow")[DROP_COLUMN].to_pylist()
    kept_idx = [i for i, reason in enumerate(reasons) if reason == KEPT]
    dropped_idx = [i for i, reason in enumerate(reasons) if reason != KEPT]
    dropped_counts = Counter(reason for reason in reasons if reason != KEPT)
    kept = mapped.select(kept_idx).remove_columns(DROP_COLUMN)
    dropped = mapped.select(dropped_idx) if dropped_idx else None
    return kept, dropped, dropped_counts


def apply_stage(stage: Stage, part: Dataset, scratch: Path, new_fingerprint: str, desc: str | None = None) -> Dataset:
    """The stage's function over ``part`` through ``Dataset.map``: every row, with its drop reason still attached.

    CPU-bound stages use ``stage.context.num_proc`` worker processes, which write their output to Arrow files under
    ``scratch`` that the parent maps (kept in memory, each worker would pickle its whole output back through a pipe,
    which costs more than most stages' work); the caller removes ``scratch`` once it has written the shard. Columns
    the stage does not rewrite are re-attached from ``part`` instead of being copied through the map.
    """
    if not len(part):
        return part
    num_proc = None if stage.is_async or stage.context.num_proc <= 1 else stage.context.num_proc
    workers = num_proc if num_proc and len(part) >= 2 * num_proc else None
    passed_through = _passed_through_columns(stage, part.column_names)
    mapped = part.map(
        _make_map_function(stage, passed_through),
        batched=True,
        batch_size=stage.batch_size,
        num_proc=workers,
        remove_columns=part.column_names,
        keep_in_memory=workers is None,
        cache_file_name=str(scratch / "mapped.arrow") if workers else None,
        load_from_cache_file=False,
        new_fingerprint=new_fingerprint,
        desc=desc,
    )
    return _attach_passed_through(part, mapped, passed_through)


def run_stage(
    stage: Stage,
    dataset: Dataset,
    input_fingerprint: str,
    stage_dir: Path,
    shard_rows: int = 1000,
    keep_dropped: bool = True,
) -> StageResult:
    """Apply ``stage`` to ``dataset`` shard by shard, resuming from finished shards; returns kept rows + stats."""
    fingerprint = stage.fingerprint(input_fingerprint)
    stage_dir.mkdir(parents=True, exist_ok=True)
    fingerprint_path = stage_dir / FINGERPRINT_FILE
    if fingerprint_path.exists() and fingerprint_path.read_text().strip() != fingerprint:
        logger.info("stage %s: input or config changed, discarding its previous shards", stage.name)
        shutil.rmtree(stage_dir)
        stage_dir.mkdir(parents=True)
    _atomic_write_text(fingerprint_path, fingerprint + "\n")

    bounds = _shard_bounds(len(dataset), shard_rows)
    stats = StageStats(stage=stage.name)
    kept_files: list[Path] = []
    resumed = 0
    kept_digests: list[str] = []
    for index, (start, end) in enumerate(bounds):
        kept_path = stage_dir / f"shard-{index:05d}.parquet"
        marker_path = stage_dir / f"shard-{index:05d}.done.json"
        if marker_path.exists():
            marker = json.loads(marker_path.read_text(encoding="utf-8"))
            retry = sorted(set(marker["stats"].get("dropped", {})) & stage.retry_drop_reasons)
            if retry:
                logger.info("stage %s: shard %d dropped rows for %s last time: running it again", stage.name, index,
                            ", ".join(retry))  # fmt: skip
            elif marker["fingerprint"] == fingerprint and kept_path.exists():
                stats = stats.merge(StageStats.from_dict(marker["stats"]))
                kept_files.append(kept_path)
                kept_digests.append(marker.get("kept_ids") or "")
                resumed += 1
                continue
        started = time.perf_counter()
        counters_before = Counter(stage.extra_counters())
        part = dataset.select(range(start, end))
        scratch = stage_dir / f"shard-{index:05d}.scratch"
        mapped = apply_stage(
            stage, part, scratch, f"{fingerprint}-{index:05d}", desc=f"{stage.name} [shard {index + 1}/{len(bounds)}]"
        )
        kept, dropped, dropped_counts = _split_kept_dropped(mapped)
        shard_stats = StageStats(
            stage=stage.name,
            rows_in=len(part),
            rows_kept=len(kept),
            dropped=dropped_counts,
            seconds=time.perf_counter() - started,
            extra=(stage.extra_counters() - counters_before) + stage.summarize(kept),
        )
        write_parquet(kept, kept_path)
        dropped_path = stage_dir / f"shard-{index:05d}.dropped.parquet"
        dropped_path.unlink(missing_ok=True)  # a retried shard may drop nothing now
        if keep_dropped and dropped is not None:
            write_parquet(dropped, dropped_path)
        digest = _kept_ids_digest(kept["id"]) if stage.retry_drop_reasons and "id" in kept.column_names else ""
        marker = {"fingerprint": fingerprint, "stats": shard_stats.to_dict(), "kept_ids": digest}
        _atomic_write_text(marker_path, json.dumps(marker, indent=2) + "\n")
        stats = stats.merge(shard_stats)
        kept_files.append(kept_path)
        kept_digests.append(digest)
        shutil.rmtree(scratch, ignore_errors=True)  # everything it held is in the Parquet files now
    if resumed:
        logger.info("stage %s: resumed %d of %d shard(s) from %s", stage.name, resumed, len(bounds), stage_dir)
    _atomic_write_text(stage_dir / SUCCESS_FILE, json.dumps(stats.to_dict(), indent=2) + "\n")
    logger.info(
        "stage %s: %d in, %d kept, %d dropped %s (%s)",
        stage.name,
        stats.rows_in,
        stats.rows_kept,
        stats.rows_dropped,
        dict(stats.dropped),
        stage_dir,
    )
    output_fingerprint = fingerprint
    if stage.retry_drop_reasons:
        output_fingerprint = _kept_ids_digest([fingerprint, *kept_digests])
    return StageResult(load_parquet_files(kept_files), stats, output_fingerprint)
