"""Load benchmark test items from local files or the Hub, one :class:`TestItem` per question (and solution).

A benchmark reference is either a path (a ``.jsonl`` / ``.jsonl.gz`` / ``.json`` / ``.parquet`` file, or a folder
of them: one benchmark per file, named after the file without ``_test``) or a Hub dataset id, optionally with a
config and split: ``openai/gsm8k:main`` or ``EleutherAI/hendrycks_math:algebra:test`` (the split defaults to
``test``). The question text is read from the first field present among :data:`QUESTION_FIELDS`; a benchmark file
whose rows have none of them is an error that names the file and row, because silently indexing nothing would let
contamination through.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mathcode_pile.jsonl import iter_jsonl

logger = logging.getLogger(__name__)

#: Fields that hold the test question, in order of preference (original field names of the common sets).
QUESTION_FIELDS = ("question", "problem", "Question", "Problem", "query", "input", "prompt")
#: Fields that hold a worked solution (indexed only when solutions are asked for).
SOLUTION_FIELDS = ("solution", "cot", "rationale", "Rationale", "explanation")
ID_FIELDS = ("id", "idx", "unique_id", "ID", "question_id")
BENCHMARK_SUFFIXES = (".jsonl.gz", ".jsonl", ".json", ".parquet")


class BenchmarkError(ValueError):
    """A benchmark reference or file that cannot be indexed; the message names the file (and row)."""


@dataclass(frozen=True)
class TestItem:
    """One text that must not occur in training data, with where it came from."""

    __test__ = False  # not a pytest test class despite the name

    benchmark: str
    test_id: str
    text: str
    part: str = "question"


def benchmark_name(path: Path) -> str:
    """``gsm8k_test.jsonl`` (or ``gsm8k_test.jsonl.gz``) -> ``gsm8k``."""
    stem = path.name
    for suffix in BENCHMARK_SUFFIXES:
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    return stem.removesuffix("_test").removesuffix("-test")


def _question_text(record: dict[str, Any]) -> str | None:
    # SVAMP on the Hub splits the problem into a body and a question sentence
    if isinstance(record.get("Body"), str) and isinstance(record.get("Question"), str):
        return f"{record['Body']} {record['Question']}"
    for key in QUESTION_FIELDS:
        value = record.get(key)
        if isinstance(value, str) and value.strip():
            return value
    return None


def items_from_records(
    records: Iterable[tuple[str, dict[str, Any]]], benchmark: str, include_solutions: bool
) -> Iterator[TestItem]:
    """Test items of one benchmark from ``(location, record)`` pairs; a record without a question is an error."""
    for row_index, (location, record) in enumerate(records):
        question = _question_text(record)
        if question is None:
            raise BenchmarkError(
                f"{location}: benchmark row has none of the question fields {QUESTION_FIELDS}; "
                f"fields present: {sorted(record)}"
            )
        raw_id = next((record[k] for k in ID_FIELDS if record.get(k) not in (None, "")), None)
        test_id = str(raw_id) if raw_id is not None else f"{benchmark}-{row_index}"
        yield TestItem(benchmark, test_id, question)
        if include_solutions:
            for key in SOLUTION_FIELDS:
                value = record.get(key)
                if isinstance(value, str) and value.strip():
                    yield TestItem(benchmark, test_id, value, part="solution")
                    break


def _file_records(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        for row_index, record in enumerate(pq.read_table(path).to_pylist()):
            yield f"{path}:{row_index}", record
        return
    if suffix == ".json":
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise BenchmarkError(f"{path}: not valid UTF-8 ({exc})") from exc
        try:
            rows = json.loads(text)
        except json.JSONDecodeError as exc:
            raise BenchmarkError(f"{path}: invalid JSON: {exc}") from exc
        if not isinstance(rows, list):
            raise BenchmarkError(f"{path}: a .json benchmark must hold a list of objects")
        for row_index, record in enumerate(rows):
            if not isinstance(record, dict):
                raise BenchmarkError(f"{path}: item {row_index} is not an object")
            yield f"{path}:{row_index}", record
        return
    for line_number, record in iter_jsonl(path, BenchmarkError, where="{path}:{line}", invalid="malformed JSON"):
        yield f"{path}:{line_number}", record


def _hub_records(reference: str) -> tuple[str, Iterator[tuple[str, dict[str, Any]]]]:
    from datasets import load_dataset

    hub_id, _, rest = reference.partition(":")
    config, _, split = rest.partition(":")
    split = split or "test"
    try:
        dataset = load_dataset(hub_id, config or None, split=split)
    except Exception as exc:  # datasets raises many types (offline, missing config, gated): name the reference
        raise BenchmarkError(f"cannot load benchmark '{reference}' from the Hub: {type(exc).__name__}: {exc}") from exc
    name = hub_id.rsplit("/", 1)[-1] + (f"_{config}" if config else "")
    return name, ((f"{reference}:{i}", record) for i, record in enumerate(dataset))


def resolve_benchmark_files(reference: str) -> list[Path]:
    """The benchmark files a local reference names (a file, or every benchmark file in a folder)."""
    path = Path(reference)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and p.name.lower().endswith(BENCHMARK_SUFFIXES))
        if not files:
            raise BenchmarkError(f"{path}: folder holds no benchmark file ({', '.join(BENCHMARK_SUFFIXES)})")
        return files
    if path.is_file():
        return [path]
    return []


def looks_like_hub_id(reference: str) -> bool:
    """``owner/name`` with an optional ``:config[:split]``, and not an existing local path."""
    head = reference.partition(":")[0]
    return head.count("/") == 1 and not head.startswith((".", "/")) and not Path(reference).exists()


def load_test_items(references: Iterable[str], include_solutions: bool = False) -> list[TestItem]:
    """Every test item of every referenced benchmark (paths or Hub ids), in a stable order."""
    items: list[TestItem] = []
    for reference in references:
        files = resolve_benchmark_files(reference)
        if files:
            for path in files:
                before = len(items)
                items.extend(items_from_records(_file_records(path), benchmark_name(path), include_solutions))
                logger.info("benchmark %s: %d test item(s) from %s", benchmark_name(path), len(items) - before, path)
        elif looks_like_hub_id(reference):
            name, records = _hub_records(reference)
            items.extend(items_from_records(records, name, include_solutions))
        else:
            raise BenchmarkError(f"benchmark '{reference}' is neither an existing path nor a Hub id (owner/name)")
    return items
