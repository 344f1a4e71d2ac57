"""A registered stage as a datatrove ``PipelineStep``: the thin adapter the executors run.

Each task builds the stage from its config (the same class ``Dataset.map`` calls on one machine), feeds it column
batches cut from its documents, forwards the kept rows and hands the dropped ones, with their ``_drop_reason``, to an
exclusion writer. Counters go through datatrove's stats (``rows_in``, ``rows_kept``, ``dropped/<reason>``,
``extra/<name>``); :mod:`mathcode_pile.scale.stats` turns them back into :class:`~mathcode_pile.stats.StageStats`.
An LLM stage gets a client and a request cache of its own per task (``<work_dir>/llm_cache/task-NNNNN.sqlite``), so
a task rerun after a kill reads back every answer it already paid for.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from datatrove.data import Document, DocumentsPipeline
from datatrove.pipeline.base import PipelineStep
from datatrove.pipeline.writers.disk_base import DiskWriter

from mathcode_pile.scale.documents import batch_rows, documents_to_batch, row_to_document
from mathcode_pile.stages.base import DROP_COLUMN, Stage, StageContext
from mathcode_pile.stages.registry import get_stage_class

#: Batches an LLM stage has in flight at once inside one task (each batch sends up to llm_max_concurrency requests).
ASYNC_BATCHES_IN_FLIGHT = 8
#: Rows per batch for stages that would take a whole shard at once on one machine (dedup, mixture).
MAX_BATCH_ROWS = 10_000


def task_cache_path(work_dir: str | Path, rank: int) -> Path:
    return Path(work_dir) / "llm_cache" / f"task-{rank:05d}.sqlite"


class StageStep(PipelineStep):
    """Runs stage ``stage_name`` over a task's documents; dropped rows go to ``exclusion_writer``."""

    type = "🧮 - STAGE"

    def __init__(
        self,
        stage_name: str,
        config: Any,
        work_dir: str,
        seed: int,
        output_dir: str,
        llm_config: Any = None,
        exclusion_writer: DiskWriter | None = None,
    ) -> None:
        self.name = f"stage:{stage_name}"  # before the base class names the stats after it
        super().__init__()
        self.stage_name = stage_name
        self.config = config
        self.work_dir = work_dir
        self.seed = seed
        self.output_dir = output_dir
        self.llm_config = llm_config
        self.exclusion_writer = exclusion_writer

    def _batches(self, data: DocumentsPipeline, size: int) -> Iterator[list[Document]]:
        batch: list[Document] = []
        for document in data:
            batch.append(document)
            if len(batch) >= size:
                yield batch
                batch = []
        if batch:
            yield batch

    def _count(self, stage: Stage, before: Counter[str], kept_batches: list[dict[str, list[Any]]]) -> None:
        for name, value in (stage.extra_counters() - before).items():
            self.stat_update(f"extra/{name}", value=value)
        for kept in kept_batches:
            if type(stage).summarize is not Stage.summarize and kept.get("id"):
                from datasets import Dataset

                for name, value in stage.summarize(Dataset.from_dict(kept)).items():
                    self.stat_update(f"extra/{name}", value=value)

    def _emit(self, output: dict[str, list[Any]], writer: Any, rank: int) -> Iterator[Document]:
        kept: dict[str, list[Any]] = {name: [] for name in output if name != DROP_COLUMN}
        for row, reason in batch_rows(output):
            if reason is None:
                for name, value in row.items():
                    kept[name].append(value)
                self.stat_update("rows_kept")
                yield row_to_document(row)
                continue
            self.stat_update(f"dropped/{reason}")
            if writer is not None:
                writer.write(row_to_document({**row, DROP_COLUMN: reason}), rank)
        self._kept_batches.append(kept)

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        stage_class = get_stage_class(self.stage_name)
        llm, cache = None, None
        if stage_class.is_async:
            from mathcode_pile.llm.cache import RequestCache
            from mathcode_pile.llm.client import LLMClient

            cache_path = task_cache_path(self.work_dir, rank)
            cache_path.parent.mkdir(parents=True, exist_ok=True)
            cache = RequestCache(cache_path)
            llm = LLMClient(self.llm_config, cache)
        context = StageContext(
            work_dir=Path(self.work_dir), llm=llm, num_proc=1, seed=self.seed, extras={"output_dir": self.output_dir}
        )
        stage: Stage = stage_class(self.config, context)
        size = min(stage.batch_size, MAX_BATCH_ROWS)
        before = Counter(stage.extra_counters())
        self._kept_batches: list[dict[str, list[Any]]] = []
        writer = self.exclusion_writer
        try:
            if writer is not None:
                writer.__enter__()
            if stage.is_async:
                yield from self._run_async(stage, data, size, writer, rank)
            else:
                for documents in self._batches(data, size):
                    self.stat_update("rows_in", value=len(documents))
                    with self.track_time(unit="batch"):
                        output = stage.process_batch(documents_to_batch(documents))
                    yield from self._emit(output, writer, rank)
            self._count(stage, before, self._kept_batches)
        finally:
            if writer is not None:
                writer.__exit__(None, None, None)
            if llm is not None:
                llm.close()
            if cache is not None:
                cache.close()

    def _run_async(
        self, stage: Stage, data: DocumentsPipeline, size: int, writer: Any, rank: int
    ) -> Iterator[Document]:
        loop = asyncio.new_event_loop()
        try:
            group: list[list[Document]] = []
            batches = self._batches(data, size)
            while True:
                group = [b for _, b in zip(range(ASYNC_BATCHES_IN_FLIGHT), batches, strict=False)]
                if not group:
                    break
                for documents in group:
                    self.stat_update("rows_in", value=len(documents))

                async def apply(chunk: list[list[Document]] = group) -> list[dict[str, list[Any]]]:
                    return await asyncio.gather(*(stage.aprocess_batch(documents_to_batch(d)) for d in chunk))

                for output in loop.run_until_complete(apply()):
                    yield from self._emit(output, writer, rank)
        finally:
            # as asyncio.run does: the async generators tied to the loop (the LLM client's HTTP session) end first
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()
