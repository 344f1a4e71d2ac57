"""Read corpus sources (local files or Hub datasets) into one schema: ``id``, ``text``, ``source``, ``metadata``.

MathCode-Pile draws on four kinds of input, all read here:

- math web text (OpenWebMath, ``open-web-math/open-web-math``) and synthetic math text (the paper's Maths-College and
  Education-College-Students sets), as Hub ids streamed with ``datasets`` or as local JSON lines / Parquet;
- textbooks given as plain text or markdown files (one document per file);
- code: Python files (one document per file) and Jupyter notebooks (markdown cells as text, code cells as fenced
  ``python`` blocks, so the code filter can still read their imports), or StarCoderData-like Hub datasets.

Bad input never disappears silently: malformed JSON lines, broken notebooks, non-UTF-8 bytes, rows without the text
field, empty and oversized documents are skipped and counted per reason (and logged with file and line), so the load
step reports in / kept / dropped like every other stage. ``metadata`` (a JSON string) records where each document
came from plus its source's ``kind`` and mixture ``weight``, which later stages (code filter, classifier, mixture)
read.
"""

from __future__ import annotations

import glob
import hashlib
import json
import logging
import re
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
LOCAL_FORMATS = ("jsonl", "json", "parquet", "text", "markdown", "python", "notebook")
#: What a source holds; stages select rows by it (the code filter looks at ``code`` only, the classifier at web
#: and math web text). ``web`` is general web text from which the classifier recalls math.
SOURCE_KINDS = ("math_text", "web", "synthetic_math", "textbook", "code", "math_code", "other")
#: A source name is also the name of its component's dataset configuration and data folder in the finished corpus.
COMPONENT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
#: Skip reasons raised before a record exists: they count as input rows that were read but could not be parsed.
UNPARSED_SKIPS = ("non_utf8", "malformed_json", "not_an_object", "malformed_notebook")
_SUFFIX_FORMATS = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "json",
    ".parquet": "parquet",
    ".md": "markdown",
    ".markdown": "markdown",
    ".py": "python",
    ".ipynb": "notebook",
}


@dataclass
class SourceSpec(ValidatedConfig):
    """One corpus source. ``path`` (file, folder or glob) or ``hub_id`` (streamed), not both.

    ``text_template`` builds the text from several fields (``"{question}\\n{rationale}"``); otherwise ``text_field``
    names the column holding it. File formats follow the suffix unless ``format`` forces one: ``.jsonl``, ``.json``
    (a list of objects), ``.parquet``, ``.md`` (markdown), ``.py`` (Python), ``.ipynb`` (notebook), anything else text.
    """

    name: str
    path: str | None = None
    hub_id: str | None = None
    hub_config: str | None = None
    hub_data_dir: str | None = None
    hub_revision: str | None = None
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
        if not COMPONENT_NAME.fullmatch(self.name) or self.name == "default":
            raise RecipeError(
                f"source name {self.name!r} also names its dataset configuration: use letters, digits, '_', '.' or "
                "'-' (and not 'default')"
            )
        if (self.path is None) == (self.hub_id is None):
            raise RecipeError(f"source '{self.name}': give exactly one of 'path' or 'hub_id'")
        if self.format is not None and self.format not in LOCAL_FORMATS:
            raise RecipeError(f"source '{self.name}': format must be one of {LOCAL_FORMATS}, got '{self.format}'")
        if self.kind not in SOURCE_KINDS:
            raise RecipeError(f"source '{self.name}': kind must be one of {SOURCE_KINDS}, got '{self.kind}'")
        if self.path is not None and not self.files():
            raise RecipeError(f"source '{self.name}': no file matches path '{self.path}'")
        if self.weight < 0:
            raise RecipeError(f"source '{self.name}': weight must be >= 0")
        if self.max_docs is not None and self.max_docs < 0:
            raise RecipeError(f"source '{self.name}': max_docs must be >= 0")
        if self.max_chars < 1:
            raise RecipeError(f"source '{self.name}': max_chars must be >= 1")

    def files(self) -> list[Path]:
        assert self.path is not None
        path = Path(self.path)
        if path.is_dir():
            return sorted(p for p in path.rglob("*") if p.is_file() and not _is_hidden(p.relative_to(path)))
        # glob.glob, unlike Path.glob, takes absolute patterns as well as relative ones
        return sorted(Path(p) for p in glob.glob(self.path, recursive=True) if Path(p).is_file())  # noqa: PTH207

    def file_format(self, path: Path) -> str:
        if self.format:
            return self.format
        return _SUFFIX_FORMATS.get(path.suffix.lower(), "text")

    def content_fingerprint(self) -> str:
        """Identity of this source's content: spec plus file sizes and mtimes (local) or the Hub id."""
        parts: list[Any] = [sorted(self.__dict__.items())]
        if self.path is not None:
            for path in self.files():
                stat = path.stat()
                parts.append((str(path), stat.st_size, stat.st_mtime_ns))
        return hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()[:16]


def _is_hidden(relative: Path) -> bool:
    """Dot-files and anything inside dot-folders (``.ipynb_checkpoints``, ``.git``) are not corpus files."""
    return any(part.startswith(".") for part in relative.parts)


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


class _SkipError(Exception):
    def __init__(self, reason: str) -> None:
        self.reason = reason


def notebook_to_text(raw: str) -> str:
    """Text of a Jupyter notebook: markdown cells as they are, code cells as fenced ``python`` blocks.

    Outputs are left out (they are execution noise, often huge). Raises ``ValueError`` on anything that is not an
    nbformat 4 notebook, so the caller can count it as a broken file.
    """
    notebook = json.loads(raw)
    if not isinstance(notebook, dict) or not isinstance(notebook.get("cells"), list):
        raise ValueError("no 'cells' list (not an nbformat 4 notebook)")
    parts = []
    for cell in notebook["cells"]:
        if not isinstance(cell, dict):
            raise ValueError("a cell is not an object")
        source = cell.get("source", "")
        body = "".join(source) if isinstance(source, list) else str(source)
        if not body.strip():
            continue
        if cell.get("cell_type") == "code":
            parts.append(f"```python\n{body.rstrip()}\n```")
        elif cell.get("cell_type") == "markdown":
            parts.append(body.strip())
    return "\n\n".join(parts)


def _read_utf8(path: Path, counts: Counter[str]) -> str | None:
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        counts["non_utf8"] += 1
        logger.warning("%s: not valid UTF-8 (byte %d), skipped", path, exc.start)
        return None


def _whole_file_record(spec: SourceSpec, path: Path, fmt: str, counts: Counter[str]) -> dict[str, Any] | None:
    """One record for a file that is one document (text, markdown, Python, notebook), or ``None`` when unreadable."""
    text = _read_utf8(path, counts)
    if text is None:
        return None
    if fmt == "notebook":
        try:
            text = notebook_to_text(text)
        except (json.JSONDecodeError, ValueError) as exc:
            counts["malformed_notebook"] += 1
            logger.warning("%s: not a readable Jupyter notebook (%s), skipped", path, exc)
            return None
    record: dict[str, Any] = {spec.text_field: text, "_file": path.name, "format": fmt}
    if fmt in ("python", "notebook"):
        record["language"] = "python"
    return record


def _iter_jsonl(path: Path, counts: Counter[str]) -> Iterator[tuple[str, dict[str, Any]]]:
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


def _iter_local_records(spec: SourceSpec, counts: Counter[str]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield ``(location, record)``; bad lines and files are counted and logged with file and line number."""
    for path in spec.files():
        fmt = spec.file_format(path)
        if fmt == "parquet":
            import pyarrow.parquet as pq

            row_index = 0
            for batch in pq.ParquetFile(path).iter_batches(batch_size=1024):
                for record in batch.to_pylist():
                    yield f"{path}:{row_index}", record
                    row_index += 1
        elif fmt in ("text", "markdown", "python", "notebook"):
            record = _whole_file_record(spec, path, fmt, counts)
            if record is not None:
                yield str(path), record
        elif fmt == "json":
            try:
                records = json.loads(path.read_bytes().decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise ValueError(f"{path}: not a valid UTF-8 JSON array: {exc}") from exc
            if not isinstance(records, list):
                raise ValueError(f"{path}: a .json source must hold a list of objects")
            for row_index, record in enumerate(records):
                if not isinstance(record, dict):
                    counts["not_an_object"] += 1
                    logger.warning("%s: item %d is not an object, skipped", path, row_index)
                    continue
                yield f"{path}:{row_index}", record
        else:
            yield from _iter_jsonl(path, counts)


def _iter_hub_records(spec: SourceSpec) -> Iterator[tuple[str, dict[str, Any]]]:
    """Stream a Hub dataset (nothing is downloaded up front; ``max_docs`` stops the stream early)."""
    from datasets import load_dataset

    stream = load_dataset(
        spec.hub_id,
        spec.hub_config,
        data_dir=spec.hub_data_dir,
        revision=spec.hub_revision,
        split=spec.split,
        streaming=True,
    )
    for row_index, record in enumerate(stream):
        yield f"{spec.hub_id}:{spec.split}:{row_index}", record


def _record_text(spec: SourceSpec, record: dict[str, Any]) -> str:
    if spec.text_template is not None:
        try:
            return spec.text_template.format(**record)
        except KeyError as exc:
            raise _SkipError("missing_text_field") from exc
    value = record.get(spec.text_field)
    if value is None:
        raise _SkipError("missing_text_field")
    if not isinstance(value, str):
        raise _SkipError("text_not_a_string")
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
                raise _SkipError("empty_text")
            if len(text) > spec.max_chars:
                raise _SkipError("too_long")
        except _SkipError as skip:
            counts[skip.reason] += 1
            logger.warning("%s: skipped (%s)", location, skip.reason)
            continue
        raw_id = record.get(spec.id_field) if spec.id_field else None
        doc_id = f"{spec.name}/{raw_id}" if raw_id is not None else f"{spec.name}/{location.rsplit('/', 1)[-1]}"
        # ``kind`` first: stages read it on every row through the fast path of :func:`document_kind`
        metadata: dict[str, Any] = {"kind": spec.kind, "weight": spec.weight}
        metadata.update({key: record.get(key) for key in spec.metadata_fields if key in record})
        metadata["location"] = location
        for key in ("format", "language"):
            if key in record and key not in metadata:
                metadata[key] = record[key]
        kept += 1
        yield {
            "id": doc_id,
            "text": text,
            "source": spec.name,
            "metadata": json.dumps(metadata, ensure_ascii=False, default=str),
        }


def document_metadata(raw: str | None) -> dict[str, Any]:
    """The ``metadata`` column parsed back into a dict (``{}`` for empty or non-JSON values)."""
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


_LEADING_KIND = re.compile(r'^\{"kind": "([^"\\]*)"')


def document_kind(raw: str | None) -> str | None:
    """The source kind in a ``metadata`` value, read without parsing the JSON when it leads (as written here)."""
    match = _LEADING_KIND.match(raw or "")
    if match:
        return match.group(1)
    kind = document_metadata(raw).get("kind")
    return kind if isinstance(kind, str) else None


def _generate(specs: list[SourceSpec], counts_dir: str) -> Iterator[dict[str, str]]:
    # ``datasets`` may split the ``specs`` list over several generator calls: one counts file per source
    for spec in specs:
        counts: Counter[str] = Counter()
        yield from iter_documents(spec, counts)
        _counts_file(counts_dir, spec.name).write_text(json.dumps(dict(counts)), encoding="utf-8")


def _counts_file(counts_dir: str | Path, source_name: str) -> Path:
    """Where one source's load counters go (named by a hash: source names may hold any character)."""
    return Path(counts_dir) / f"{hashlib.sha1(source_name.encode('utf-8')).hexdigest()[:16]}.json"


def _load_stats(per_source: dict[str, dict[str, int]], dataset: Dataset) -> StageStats:
    stats = StageStats(stage="load_sources", rows_kept=len(dataset))
    for counts in per_source.values():
        counts = Counter(counts)
        read = counts.pop("read", 0)
        # rows that failed before they could be read as records are counted as input too
        stats.rows_in += read + sum(counts[k] for k in UNPARSED_SKIPS)
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
    counts_dir = stage_dir / "source_counts"
    counts_dir.mkdir(exist_ok=True)
    dataset = Dataset.from_generator(
        _generate,
        gen_kwargs={"specs": specs, "counts_dir": str(counts_dir)},
        features=DOCUMENT_FEATURES,
        cache_dir=str(cache_dir),
        fingerprint=fingerprint,
    )
    if finished:
        stats = StageStats.from_dict(json.loads(success_path.read_text())["stats"])
    else:
        per_source = {
            spec.name: json.loads(_counts_file(counts_dir, spec.name).read_text(encoding="utf-8")) for spec in specs
        }
        stats = _load_stats(per_source, dataset)
        success_path.write_text(json.dumps({"fingerprint": fingerprint, "stats": stats.to_dict()}, indent=2))
    return dataset, stats, fingerprint
