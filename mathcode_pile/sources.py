"""Read corpus sources (local files or Hub datasets) into one schema: ``id``, ``text``, ``source``, ``metadata``.

Bad input never disappears silently: malformed JSON lines, non-UTF-8 bytes, rows without the text field, empty and
oversized documents are skipped and counted per reason (and logged with file and line), so the load step reports
in / kept / dropped like every other stage.
"""

from __future__ import annotations

import glob
import hashlib
import json
import logging
import shutil
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from datasets import Dataset, Features, Value

from mathcode_pile.config import RecipeError, ValidatedConfig
from mathcode_pile.stats import StageStats

logger = logging.getLogger(__name__)

DOCUMENT_FEATURES = Features(
    {"id": Value("string"), "text": Value("string"), "source": Value("string"), "metadata": Value("string")}
)
LOCAL_FORMATS = ("jsonl", "json", "parquet", "text")


@dataclass
class SourceSpec(ValidatedConfig):
    """One corpus source. ``path`` (file, folder or glob) or ``hub_id`` (streamed), not both.

    ``text_template`` builds the text from several fields (``"{question}\\n{rationale}"``); otherwise ``text_field``
    names the column holding it.
    """

    name: str
    path: str | None = None
    hub_id: str | None = None
    hub_config: str | None = None
    split: str = "train"
    format: str | None = None
    text_field: str = "text"
    text_template: str | None = None
    id_field: str | None = None
    kind: str = "math_text"
    weight: float = 1.0
    max_docs: int | None = None
    max_chars: int = 1_000_000
    metadata_fields: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__post_init__()
        if (self.path is None) == (self.hub_id is None):
            raise RecipeError(f"source '{self.name}': give exactly one of 'path' or 'hub_id'")
        if self.format is not None and self.format not in LOCAL_FORMATS:
            raise RecipeError(f"source '{self.name}': format must be one of {LOCAL_FORMATS}, got '{self.format}'")
        if self.path is not None and not self.files():
            raise RecipeError(f"source '{self.name}': no file matches path '{self.path}'")
        if self.weight < 0:
            raise RecipeError(f"source '{self.name}': weight must be >= 0")

    def files(self) -> list[Path]:
        assert self.path is not None
        path = Path(self.path)
        if path.is_dir():
            return sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
        return sorted(Path(p) for p in glob.glob(self.path, recursive=True) if Path(p).is_file())

    def file_format(self, path: Path) -> str:
        if self.format:
            return self.format
        suffix = path.suffix.lower()
        if suffix in (".jsonl", ".ndjson"):
            return "jsonl"
        if suffix == ".json":
            return "json"
        if suffix == ".parquet":
            return "parquet"
        return "text"

    def content_fingerprint(self) -> str:
        """Identity of this source's content: spec plus file sizes and mtimes (local) or the Hub id."""
        parts: list[Any] = [sorted(self.__dict__.items())]
        if self.path is not None:
            for path in self.files():
                stat = path.stat()
                parts.append((str(path), stat.st_size, stat.st_mtime_ns))
        return hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()[:16]


def parse_sources(raw: list[dict[str, Any]], recipe: str = "recipe") -> list[SourceSpec]:
    specs = []
    names = set()
    for index, item in enumerate(raw):
        if not isinstance(item, dict):
            raise RecipeError(f"{recipe}: sources[{index}] must be a mapping, got {item!r}")
        try:
            spec = SourceSpec(**item)
        except TypeError as exc:
            raise RecipeError(f"{recipe}: sources[{index}]: {exc}") from exc
        except RecipeError as exc:
            raise RecipeError(f"{recipe}: sources[{index}]: {exc}") from exc
        if spec.name in names:
            raise RecipeError(f"{recipe}: two sources are named '{spec.name}'")
        names.add(spec.name)
        specs.append(spec)
    return specs


class _Skip(Exception):
    def __init__(self, reason: str) -> None:
        self.reason = reason


def _iter_local_records(spec: SourceSpec, counts: Counter[str]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield ``(location, record)``; bad lines are counted and logged with file and line number."""
    for path in spec.files():
        fmt = spec.file_format(path)
        if fmt == "parquet":
            import pyarrow.parquet as pq

            for row_index, record in enumerate(pq.read_table(path).to_pylist()):
                yield f"{path}:{row_index}", record
        elif fmt == "text":
            try:
                text = path.read_bytes().decode("utf-8")
            except UnicodeDecodeError:
                counts["non_utf8"] += 1
                logger.warning("%s: not valid UTF-8, skipped", path)
                continue
            yield str(path), {spec.text_field: text, "_file": path.name}
        elif fmt == "json":
            try:
                records = json.loads(path.read_bytes().decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise ValueError(f"{path}: not a valid UTF-8 JSON array: {exc}") from exc
            if not isinstance(records, list):
                raise ValueError(f"{path}: a .json source must hold a list of objects")
            for row_index, record in enumerate(records):
                yield f"{path}:{row_index}", record
        else:
            with path.open("rb") as handle:
                for line_number, raw_line in enumerate(handle, start=1):
                    if not raw_line.strip():
                        continue
                    try:
                        record = json.loads(raw_line.decode("utf-8"))
                    except UnicodeDecodeError:
                        counts["non_utf8"] += 1
                        logger.warning("%s:%d: not valid UTF-8, skipped", path, line_number)
                        continue
                    except json.JSONDecodeError as exc:
                        counts["malformed_json"] += 1
                        logger.warning("%s:%d: malformed JSON (%s), skipped", path, line_number, exc.msg)
                        continue
                    if not isinstance(record, dict):
                        counts["not_an_object"] += 1
                        logger.warning("%s:%d: JSON value is not an object, skipped", path, line_number)
                        continue
                    yield f"{path}:{line_number}", record


def _iter_hub_records(spec: SourceSpec) -> Iterator[tuple[str, dict[str, Any]]]:
    from datasets import load_dataset

    stream = load_dataset(spec.hub_id, spec.hub_config, split=spec.split, streaming=True)
    for row_index, record in enumerate(stream):
        yield f"{spec.hub_id}:{spec.split}:{row_index}", record


def _record_text(spec: SourceSpec, record: dict[str, Any]) -> str:
    if spec.text_template is not None:
        try:
            return spec.text_template.format(**record)
        except KeyError as exc:
            raise _Skip("missing_text_field") from exc
    value = record.get(spec.text_field)
    if value is None:
        raise _Skip("missing_text_field")
    if not isinstance(value, str):
        raise _Skip("text_not_a_string")
    return value


def iter_documents(spec: SourceSpec, counts: Counter[str]) -> Iterator[dict[str, str]]:
    """Documents of one source in the common schema; ``counts`` receives ``read`` and one entry per skip reason."""
    records = _iter_local_records(spec, counts) if spec.path is not None else _iter_hub_records(spec)
    kept = 0
    for location, record in records:
        if spec.max_docs is not None and kept >= spec.max_docs:
            break
        counts["read"] += 1
        try:
            text = _record_text(spec, record)
            if not text.strip():
                raise _Skip("empty_text")
            if len(text) > spec.max_chars:
                raise _Skip("too_long")
        except _Skip as skip:
            counts[skip.reason] += 1
            logger.warning("%s: skipped (%s)", location, skip.reason)
            continue
        raw_id = record.get(spec.id_field) if spec.id_field else None
        doc_id = f"{spec.name}/{raw_id}" if raw_id is not None else f"{spec.name}/{location.rsplit('/', 1)[-1]}"
        metadata = {key: record.get(key) for key in spec.metadata_fields if key in record}
        metadata["location"] = location
        kept += 1
        yield {
            "id": doc_id,
            "text": text,
            "source": spec.name,
            "metadata": json.dumps(metadata, ensure_ascii=False, default=str),
        }


def _generate(specs: list[SourceSpec], counts_path: str) -> Iterator[dict[str, str]]:
    totals: dict[str, dict[str, int]] = {}
    for spec in specs:
        counts: Counter[str] = Counter()
        yield from iter_documents(spec, counts)
        totals[spec.name] = dict(counts)
    Path(counts_path).write_text(json.dumps(totals), encoding="utf-8")


def _load_stats(per_source: dict[str, dict[str, int]], dataset: Dataset) -> StageStats:
    stats = StageStats(stage="load_sources", rows_kept=len(dataset))
    for counts in per_source.values():
        counts = Counter(counts)
        read = counts.pop("read", 0)
        # rows that failed before they could be read as records are counted as input too
        stats.rows_in += read + sum(counts[k] for k in ("non_utf8", "malformed_json", "not_an_object"))
        stats.dropped.update(+counts)
    for name, n in sorted(Counter(dataset["source"]).items()):
        stats.extra[f"docs_{name}"] = n
    return stats


def load_sources(specs: list[SourceSpec], stage_dir: Path) -> tuple[Dataset, StageStats, str]:
    """Read every source into one dataset; returns it, its load stats and a content fingerprint.

    The result is cached under ``stage_dir`` keyed by the sources' fingerprint; ``_SUCCESS.json`` is written last, so
    an interrupted load is redone from scratch rather than half-reused.
    """
    fingerprint = hashlib.sha256("|".join(s.content_fingerprint() for s in specs).encode()).hexdigest()[:16]
    success_path = stage_dir / "_SUCCESS.json"
    cache_dir = stage_dir / "hf_cache"
    finished = success_path.exists() and json.loads(success_path.read_text())["fingerprint"] == fingerprint
    if not finished and stage_dir.exists():
        shutil.rmtree(stage_dir)
    stage_dir.mkdir(parents=True, exist_ok=True)
    counts_path = stage_dir / "source_counts.json"
    dataset = Dataset.from_generator(
        _generate,
        gen_kwargs={"specs": specs, "counts_path": str(counts_path)},
        features=DOCUMENT_FEATURES,
        cache_dir=str(cache_dir),
        fingerprint=fingerprint,
    )
    if finished:
        stats = StageStats.from_dict(json.loads(success_path.read_text())["stats"])
    else:
        stats = _load_stats(json.loads(counts_path.read_text(encoding="utf-8")), dataset)
        success_path.write_text(json.dumps({"fingerprint": fingerprint, "stats": stats.to_dict()}, indent=2))
    return dataset, stats, fingerprint
