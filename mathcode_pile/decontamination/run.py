"""Decontaminate a file of documents: keep the clean rows, write them out, and report every removal.

This is what ``mathcode-pile decontaminate`` runs. Input is JSON lines (``.jsonl``, ``.jsonl.gz``), a JSON list or
Parquet (one document per row); the output format follows the output file's suffix. The JSON report lists, per
benchmark, how many documents were removed, and for every removed document the test item it contained.

A row that cannot be checked (not JSON, not an object, no text field, invalid Unicode) is never guessed at and never
written to the clean output: it is listed under ``errors`` in the report with its line and reason, and the command
exits 1; ``--strict`` stops at the first one and writes nothing (:mod:`mathcode_pile.file_commands`).
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
from mathcode_pile.file_commands import (
    AtomicRowWriter,
    InputRow,
    RowErrors,
    check_paths,
    chunked,
    read_rows,
    write_text_atomic,
)

logger = logging.getLogger(__name__)

CHUNK_ROWS = 512

#: A readable input row and its fields.
Document = tuple[InputRow, dict[str, Any]]


@dataclass
class DecontaminationReport:
    """What a run did: counts per benchmark and the list of removed documents with their matching test items."""

    ngram_size: int
    benchmarks: dict[str, dict[str, int]]
    input_docs: int = 0
    input_bytes: int = 0
    removed: list[dict[str, Any]] = field(default_factory=list)
    #: rows that could not be checked (not written to the output; listed in the report with line and reason)
    row_errors: RowErrors = field(default_factory=RowErrors)
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
            "error_rows": len(self.row_errors),
            "input_megabytes": round(self.input_bytes / 1e6, 3),
            "seconds": round(self.seconds, 3),
            "benchmarks": benchmarks,
            "removed": self.removed,
            "errors": self.row_errors.report(),
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


def _documents(path: Path, input_format: str, text_field: str, errors: RowErrors) -> Iterator[Document]:
    """The rows of ``path`` that hold a document; each other row becomes a row error (with ``strict``: stops here)."""
    for row in read_rows(path, input_format):
        record = row.record or {}
        problem = row.problem
        if problem is None and record.get(text_field) is None:
            problem = f"missing field '{text_field}'"
        elif problem is None and not isinstance(record[text_field], str):
            problem = f"field '{text_field}' must be text, got {type(record[text_field]).__name__}"
        if problem is None:
            yield row, record
        else:
            errors.add(row, problem)


_WORKER_INDEX: NgramIndex | None = None


def _init_worker(index: NgramIndex) -> None:
    global _WORKER_INDEX
    _WORKER_INDEX = index


def _find_all(texts: list[str]) -> list[Match | None]:
    assert _WORKER_INDEX is not None
    return _WORKER_INDEX.find_batch(texts)


def output_paths(output_path: str | Path, report_path: str | Path | None = None) -> tuple[Path, Path]:
    """The clean-rows file and its report (default ``<output>.report.json``)."""
    output_path = Path(output_path)
    return output_path, Path(report_path) if report_path else output_path.with_name(output_path.name + ".report.json")


def decontaminate_file(
    input_path: str | Path,
    output_path: str | Path,
    index: NgramIndex,
    *,
    text_field: str = "text",
    id_field: str = "id",
    report_path: str | Path | None = None,
    num_proc: int = 1,
    strict: bool = False,
    overwrite: bool = False,
) -> DecontaminationReport:
    """Copy the rows of ``input_path`` that contain no test item to ``output_path``; write and return the report.

    Rows that cannot be checked are in ``report.row_errors`` (``strict``: the first raises). Output and report are
    written through temporary files: a failure or interrupt leaves neither half-written.
    """
    input_path = Path(input_path)
    output_path, report_path = output_paths(output_path, report_path)
    input_format, output_format = check_paths(input_path, [output_path, report_path], overwrite=overwrite)
    report = DecontaminationReport(index.ngram_size, index.summary(), row_errors=RowErrors(strict))
    started = time.perf_counter()
    schema_hint = None
    if input_format == ".parquet":
        import pyarrow.parquet as pq

        schema_hint = pq.read_schema(input_path)
    executor = ProcessPoolExecutor(num_proc, initializer=_init_worker, initargs=(index,)) if num_proc > 1 else None
    try:
        with AtomicRowWriter(output_path, output_format, schema=schema_hint, stream_parquet=True) as writer:
            row_chunks = chunked(_documents(input_path, input_format, text_field, report.row_errors), CHUNK_ROWS)
            if executor is None:
                _init_worker(index)
                results = ((chunk, _find_all([r[text_field] for _, r in chunk])) for chunk in row_chunks)
            else:
                pending = (
                    (chunk, executor.submit(_find_all, [r[text_field] for _, r in chunk])) for chunk in row_chunks
                )
                results = _resolve_in_order(pending, lookahead=2 * num_proc)
            for chunk, matches in results:
                kept = []
                for (row, record), match in zip(chunk, matches, strict=True):
                    report.input_docs += 1
                    report.input_bytes += len(record[text_field].encode("utf-8"))
                    if match is None:
                        kept.append(record)
                    else:
                        doc_id = record.get(id_field)
                        name = str(doc_id) if doc_id is not None else row.where
                        report.removed.append({"doc_id": name, **match.to_dict()})
                writer.write(kept)
            report.seconds = time.perf_counter() - started
            # written last before the output is moved into place: a failure before this point leaves neither
            write_text_atomic(report_path, json.dumps(report.to_dict(), indent=2, ensure_ascii=False) + "\n")
    finally:
        if executor is not None:
            executor.shutdown(cancel_futures=True)
    logger.info(
        "decontaminated %s: %d in, %d removed %s, %d bad row(s); report %s",
        input_path,
        report.input_docs,
        len(report.removed),
        report.removed_per_benchmark,
        len(report.row_errors),
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
