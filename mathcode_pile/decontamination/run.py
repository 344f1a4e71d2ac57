"""Decontaminate a file of documents: keep the clean rows, write them out, and report every removal.

This is what ``mathcode-pile decontaminate`` runs. Input is JSON lines or Parquet (one document per row); the output
format follows the output file's suffix. The JSON report lists, per benchmark, how many documents were removed, and
for every removed document the test item it contained. Rows that cannot be read (malformed JSON, no text field) stop
the run with an error naming the file and line: a decontamination step must not guess.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mathcode_pile.decontamination.benchmarks import load_test_items
from mathcode_pile.decontamination.index import Match, NgramIndex

logger = logging.getLogger(__name__)

CHUNK_ROWS = 512


class DecontaminationInputError(ValueError):
    """An input row that cannot be checked; the message names the file and line (or row)."""


@dataclass
class DecontaminationReport:
    """What a run did: counts per benchmark and the list of removed documents with their matching test items."""

    ngram_size: int
    benchmarks: dict[str, dict[str, int]]
    input_docs: int = 0
    input_bytes: int = 0
    removed: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def removed_per_benchmark(self) -> dict[str, int]:
        return dict(sorted(Counter(entry["benchmark"] for entry in self.removed).items()))

    def to_dict(self) -> dict[str, Any]:
        benchmarks = {
            name: {**counts, "removed_docs": self.removed_per_benchmark.get(name, 0)}
            for name, counts in self.benchmarks.items()
        }
        return {
            "ngram_size": self.ngram_size,
            "input_docs": self.input_docs,
            "kept_docs": self.input_docs - len(self.removed),
            "removed_docs": len(self.removed),
            "input_megabytes": round(self.input_bytes / 1e6, 3),
            "seconds": round(self.seconds, 3),
            "benchmarks": benchmarks,
            "removed": self.removed,
        }


def build_index(
    references: Sequence[str], ngram_size: int = 13, min_item_tokens: int = 8, include_solutions: bool = False
) -> NgramIndex:
    """The index of every test item of every referenced benchmark (local paths or Hub ids)."""
    started = time.perf_counter()
    index = NgramIndex.build(load_test_items(references, include_solutions), ngram_size, min_item_tokens)
    logger.info(
        "decontamination index: %d test item(s) from %d benchmark(s), %d windows, built in %.1fs",
        len(index.items),
        len(index.items_per_benchmark),
        len(index),
        time.perf_counter() - started,
    )
    return index


def _read_rows(path: Path, text_field: str) -> Iterator[tuple[str, dict[str, Any]]]:
    if path.suffix.lower() == ".parquet":
        import pyarrow.parquet as pq

        row_index = 0
        for batch in pq.ParquetFile(path).iter_batches(batch_size=CHUNK_ROWS):
            for record in batch.to_pylist():
                location = f"{path}: row {row_index}"
                row_index += 1
                if not isinstance(record.get(text_field), str):
                    raise DecontaminationInputError(f"{location}: no string field '{text_field}'")
                yield location, record
        return
    with path.open("rb") as handle:
        for line_number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            location = f"{path}:{line_number}"
            try:
                record = json.loads(raw.decode("utf-8"))
            except UnicodeDecodeError as exc:
                raise DecontaminationInputError(f"{location}: not valid UTF-8") from exc
            except json.JSONDecodeError as exc:
                raise DecontaminationInputError(f"{location}: malformed JSON ({exc.msg})") from exc
            if not isinstance(record, dict):
                raise DecontaminationInputError(f"{location}: JSON value is not an object")
            if not isinstance(record.get(text_field), str):
                raise DecontaminationInputError(f"{location}: no string field '{text_field}'")
            yield location, record


def _chunks(rows: Iterator[tuple[str, dict[str, Any]]]) -> Iterator[list[tuple[str, dict[str, Any]]]]:
    chunk: list[tuple[str, dict[str, Any]]] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) >= CHUNK_ROWS:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


_WORKER_INDEX: NgramIndex | None = None


def _init_worker(index: NgramIndex) -> None:
    global _WORKER_INDEX
    _WORKER_INDEX = index


def _find_all(texts: list[str]) -> list[Match | None]:
    assert _WORKER_INDEX is not None
    return _WORKER_INDEX.find_batch(texts)


class _RowWriter:
    """Writes kept rows as JSON lines or Parquet (chosen by the output suffix), atomically on close."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.tmp = path.with_name(path.name + ".tmp")
        self.parquet = path.suffix.lower() == ".parquet"
        self._handle = None if self.parquet else self.tmp.open("w", encoding="utf-8")
        self._writer: Any = None

    def write(self, records: list[dict[str, Any]]) -> None:
        if not records:
            return
        if not self.parquet:
            assert self._handle is not None
            self._handle.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
            return
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.Table.from_pylist(records)
        if self._writer is None:
            self._writer = pq.ParquetWriter(self.tmp, table.schema)
        self._writer.write_table(table.cast(self._writer.schema))

    def close(self, schema_hint: Any = None) -> None:
        if self._handle is not None:
            self._handle.close()
        elif self._writer is None:
            import pyarrow as pa
            import pyarrow.parquet as pq

            pq.write_table(schema_hint.empty_table() if schema_hint is not None else pa.table({}), self.tmp)
        else:
            self._writer.close()
        self.tmp.replace(self.path)


def decontaminate_file(
    input_path: str | Path,
    output_path: str | Path,
    index: NgramIndex,
    *,
    text_field: str = "text",
    id_field: str = "id",
    report_path: str | Path | None = None,
    num_proc: int = 1,
) -> DecontaminationReport:
    """Copy the rows of ``input_path`` that contain no test item to ``output_path``; write and return the report."""
    input_path, output_path = Path(input_path), Path(output_path)
    if not input_path.is_file():
        raise DecontaminationInputError(f"input file not found: {input_path}")
    output_path.parent.mkdir(parents=True, exist_ok=True)
    report = DecontaminationReport(index.ngram_size, index.summary())
    started = time.perf_counter()
    writer = _RowWriter(output_path)
    schema_hint = None
    if input_path.suffix.lower() == ".parquet":
        import pyarrow.parquet as pq

        schema_hint = pq.read_schema(input_path)
    executor = ProcessPoolExecutor(num_proc, initializer=_init_worker, initargs=(index,)) if num_proc > 1 else None
    try:
        row_chunks = _chunks(_read_rows(input_path, text_field))
        if executor is None:
            _init_worker(index)
            results = ((chunk, _find_all([r[text_field] for _, r in chunk])) for chunk in row_chunks)
        else:
            pending = ((chunk, executor.submit(_find_all, [r[text_field] for _, r in chunk])) for chunk in row_chunks)
            results = _resolve_in_order(pending, lookahead=2 * num_proc)
        for chunk, matches in results:
            kept = []
            for (location, record), match in zip(chunk, matches, strict=True):
                report.input_docs += 1
                report.input_bytes += len(record[text_field].encode("utf-8"))
                if match is None:
                    kept.append(record)
                else:
                    doc_id = record.get(id_field)
                    name = str(doc_id) if doc_id is not None else location
                    report.removed.append({"doc_id": name, **match.to_dict()})
            writer.write(kept)
    finally:
        if executor is not None:
            executor.shutdown(cancel_futures=True)
    writer.close(schema_hint)
    report.seconds = time.perf_counter() - started
    report_path = Path(report_path) if report_path else output_path.with_name(output_path.name + ".report.json")
    report_path.write_text(json.dumps(report.to_dict(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    logger.info(
        "decontaminated %s: %d in, %d removed %s; report %s",
        input_path,
        report.input_docs,
        len(report.removed),
        report.removed_per_benchmark,
        report_path,
    )
    return report


def _resolve_in_order(pending: Iterator[tuple[Any, Any]], lookahead: int) -> Iterator[tuple[Any, Any]]:
    """Keep ``lookahead`` chunks in flight and yield their results in input order (memory stays bounded)."""
    window: list[tuple[Any, Any]] = []
    for item in pending:
        window.append(item)
        if len(window) >= lookahead:
            chunk, future = window.pop(0)
            yield chunk, future.result()
    for chunk, future in window:
        yield chunk, future.result()
