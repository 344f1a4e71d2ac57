"""Read corpus sources (local files or Hub datasets) into one schema: ``id``, ``text``, ``source``, ``metadata``.

MathCode-Pile draws on four kinds of input, all read here:

- math web text (OpenWebMath, ``open-web-math/open-web-math``) and synthetic math text (the paper's Maths-College and
  Education-College-Students sets), as Hub ids streamed with ``datasets`` or as local JSON lines / Parquet;
- textbooks given as plain text or markdown files (one document per file);
- code: Python files (one document per file) and Jupyter notebooks (markdown cells as text, code cells as fenced
  ``python`` blocks, so the code filter can still read their imports), or StarCoderData-like Hub datasets.

Bad input never disappears silently and never stops the load: what :mod:`mathcode_pile.source_files` cannot read
(malformed or damaged files and lines), rows without the text field, with a template that does not fit, empty,
oversized, holding text Arrow cannot store (lone surrogates) or repeating an id already loaded (``duplicate_id``) are
skipped and counted per reason, and logged with file and line, so the load step reports in / kept / dropped like
every other stage; a load that keeps nothing stops with the per-source table. Ids are unique by construction: the
source name plus the file's path relative to the source root plus the line or row (or the ``id_field`` value,
checked). A Hub dataset that cannot be read stops the build with its name (:class:`SourceError`).

``metadata`` (a JSON string) records where each document came from plus its source's ``kind`` and mixture
``weight``, which later stages (code filter, classifier, mixture) read.
"""

from __future__ import annotations

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
from mathcode_pile.source_files import (
    UNPARSED_SKIPS,
    SourceFile,
    file_format,
    find_source_files,
    iter_file_records,
    notebook_to_text,  # noqa: F401  (part of this module's interface)
)
from mathcode_pile.stats import StageStats
from mathcode_pile.surrogates import has_lone_surrogate

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
        if self.path is not None and not self.path.strip():
            raise RecipeError(f"source '{self.name}': 'path' is empty; give a file, a folder or a glob")
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
        return [source_file.path for source_file in self.source_files()]

    def source_files(self) -> list[SourceFile]:
        """The files of a local source, each once, with their paths relative to the source root (for ids)."""
        assert self.path is not None
        return find_source_files(self.path)

    def file_format(self, path: Path) -> str:
        return file_format(path, self.format)

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


class _SkipError(Exception):
    def __init__(self, reason: str) -> None:
        self.reason = reason


class SourceError(RecipeError):
    """A source that cannot be read at all (an unreachable Hub dataset) or a load that kept no document."""


def _iter_local_records(spec: SourceSpec, counts: Counter[str]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """Yield ``(location, id suffix, record)``; bad lines and files are counted and logged with file and line."""
    for source_file in spec.source_files():
        path = source_file.path
        for row, record in iter_file_records(path, spec.file_format(path), spec.text_field, counts):
            if row is None:
                yield str(path), source_file.relative, record
            else:
                yield f"{path}:{row}", f"{source_file.relative}:{row}", record


def _iter_hub_records(spec: SourceSpec) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """Stream a Hub dataset (nothing is downloaded up front; ``max_docs`` stops the stream early).

    A dataset that cannot be opened or read is a :class:`SourceError`, not a skip: a corpus silently missing one of
    its components would be worse than a build that stops and says which one.
    """
    from datasets import load_dataset

    row_index = 0
    try:
        stream = load_dataset(
            spec.hub_id,
            spec.hub_config,
            data_dir=spec.hub_data_dir,
            revision=spec.hub_revision,
            split=spec.split,
            streaming=True,
        )
        for row_index, record in enumerate(stream):
            location = f"{spec.hub_id}:{spec.split}:{row_index}"
            yield location, location.rsplit("/", 1)[-1], record
    except Exception as error:
        raise SourceError(
            f"source '{spec.name}': Hub dataset '{spec.hub_id}' (split '{spec.split}') cannot be read at row "
            f"{row_index} ({type(error).__name__}: {str(error)[:300]}); check the id, its config and split, your "
            "network and token (hf auth login), or set HF_HUB_OFFLINE=0"
        ) from error


def iter_source_records(spec: SourceSpec, counts: Counter[str]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """``(location, id suffix, record)`` of a local or Hub source, before any text is taken from the record."""
    return _iter_local_records(spec, counts) if spec.path is not None else _iter_hub_records(spec)


def check_text_template(template: str) -> list[str]:
    """The field names a ``text_template`` reads; a ``ValueError`` says why the template is unusable.

    Only plain names are allowed (``{question}``, ``{answer!s:>10}``): ``{text.upper}`` would write a method's repr
    into every document and ``{0}`` or ``{rows[0]}`` read no field of the row at all.
    """
    import string

    names = []
    for _, name, _, _ in string.Formatter().parse(template):
        if name is None:
            continue
        if not name.isidentifier():
            raise ValueError(
                f"'{{{name}}}' is not a plain field name: a template may only name fields of the row, "
                "without positions, attributes or indexes"
            )
        names.append(name)
    if not names:
        raise ValueError("it names no field of the row; write e.g. '{question}\\n{answer}'")
    return names


def _record_text(spec: SourceSpec, record: dict[str, Any]) -> str:
    if spec.text_template is not None:
        try:
            return spec.text_template.format_map(record)
        except KeyError as exc:
            raise _SkipError("missing_text_field") from exc
        except (ValueError, TypeError, IndexError, AttributeError) as exc:
            raise _SkipError("template_error") from exc
    value = record.get(spec.text_field)
    if value is None:
        raise _SkipError("missing_text_field")
    if not isinstance(value, str):
        raise _SkipError("text_not_a_string")
    return value


def _encodable(*values: str) -> bool:
    """False when a value holds a lone surrogate (``"\\ud800"`` in JSON), which Arrow cannot store as UTF-8."""
    return not any(has_lone_surrogate(value) for value in values)


def _document(spec: SourceSpec, id_suffix: str, location: str, record: dict[str, Any]) -> dict[str, str]:
    """One row of the common schema; raises ``_SkipError`` for a row that cannot be one."""
    text = _record_text(spec, record)
    if not text.strip():
        raise _SkipError("empty_text")
    if len(text) > spec.max_chars:
        raise _SkipError("too_long")
    raw_id = record.get(spec.id_field) if spec.id_field else None
    doc_id = f"{spec.name}/{raw_id}" if raw_id is not None else f"{spec.name}/{id_suffix}"
    # ``kind`` first: stages read it on every row through the fast path of :func:`document_kind`
    metadata: dict[str, Any] = {"kind": spec.kind, "weight": spec.weight}
    metadata.update({key: record.get(key) for key in spec.metadata_fields if key in record})
    metadata["location"] = location
    for key in ("format", "language"):
        if key in record and key not in metadata:
            metadata[key] = record[key]
    try:
        metadata_text = json.dumps(metadata, ensure_ascii=False, default=str)
    except (ValueError, RecursionError) as exc:
        raise _SkipError("unserializable_metadata") from exc
    if not _encodable(text, doc_id, metadata_text):
        raise _SkipError("invalid_unicode")
    return {"id": doc_id, "text": text, "source": spec.name, "metadata": metadata_text}


def iter_documents(
    spec: SourceSpec, counts: Counter[str], seen_ids: set[str] | None = None
) -> Iterator[dict[str, str]]:
    """Documents of one source in the common schema; ``counts`` receives ``read`` and one entry per skip reason.

    An id already in ``seen_ids`` (shared across the sources of a load) is a ``duplicate_id`` skip."""
    records = iter_source_records(spec, counts)
    seen = set() if seen_ids is None else seen_ids
    kept = 0
    for location, id_suffix, record in records:
        if spec.max_docs is not None and kept >= spec.max_docs:
            break
        counts["read"] += 1
        try:
            document = _document(spec, id_suffix, location, record)
            if document["id"] in seen:
                raise _SkipError("duplicate_id")
        except _SkipError as skip:
            counts[skip.reason] += 1
            logger.warning("%s: skipped (%s)", location, skip.reason)
            continue
        seen.add(document["id"])
        kept += 1
        yield document


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
    seen_ids: set[str] = set()
    for spec in specs:
        counts: Counter[str] = Counter()
        for document in iter_documents(spec, counts, seen_ids):
            counts["kept"] += 1
            yield document
        _counts_file(counts_dir, spec.name).write_text(json.dumps(dict(counts)), encoding="utf-8")


def _counts_file(counts_dir: str | Path, source_name: str) -> Path:
    """Where one source's load counters go (named by a hash: source names may hold any character)."""
    return Path(counts_dir) / f"{hashlib.sha1(source_name.encode('utf-8')).hexdigest()[:16]}.json"


def _read_counts(counts_dir: Path, specs: list[SourceSpec]) -> dict[str, dict[str, int]] | None:
    """Every source's load counters, or None when a source did not finish."""
    paths = {spec.name: _counts_file(counts_dir, spec.name) for spec in specs}
    if not all(path.is_file() for path in paths.values()):
        return None
    return {name: json.loads(path.read_text(encoding="utf-8")) for name, path in paths.items()}


def _rows_in(counts: Counter[str]) -> int:
    # rows that failed before they could be read as records are counted as input too
    return counts["read"] + sum(counts[k] for k in UNPARSED_SKIPS)


def _skip_reasons(counts: Counter[str]) -> Counter[str]:
    return +Counter({reason: n for reason, n in counts.items() if reason not in ("read", "kept")})


def skip_table(per_source: dict[str, dict[str, int]]) -> str:
    """Rows in, kept and skipped by reason per source, as aligned plain-text lines (for logs and errors)."""
    lines = [("source", "rows", "kept", "skipped by reason")]
    for name, raw in per_source.items():
        counts = Counter(raw)
        reasons = ", ".join(f"{reason}: {n}" for reason, n in sorted(_skip_reasons(counts).items())) or "-"
        lines.append((name, str(_rows_in(counts)), str(counts["kept"]), reasons))
    widths = [max(len(line[column]) for line in lines) for column in range(3)]
    return "\n".join(
        "  " + "  ".join(cell.ljust(width) for cell, width in zip(line[:3], widths, strict=True)) + "  " + line[3]
        for line in lines
    )


def _load_stats(per_source: dict[str, dict[str, int]], dataset: Dataset) -> StageStats:
    stats = StageStats(stage="load_sources", rows_kept=len(dataset))
    for raw in per_source.values():
        counts = Counter(raw)
        stats.rows_in += _rows_in(counts)
        stats.dropped.update(_skip_reasons(counts))
    for name, n in sorted(Counter(dataset["source"]).items()):
        stats.extra[f"docs_{name}"] = n
    return stats


def _source_error_in(error: BaseException) -> SourceError | None:
    """The :class:`SourceError` behind ``error`` (``datasets`` wraps what a generator raises), if any."""
    current: BaseException | None = error
    while current is not None:
        if isinstance(current, SourceError):
            return current
        current = current.__cause__ or current.__context__
    return None


def _nothing_loaded(per_source: dict[str, dict[str, int]]) -> SourceError:
    return SourceError(
        "no document was loaded: every row of every source was skipped. Per source:\n"
        f"{skip_table(per_source)}\n"
        "The log names each skipped file and line; check the files, or the sources' text_field / text_template."
    )


def load_sources(specs: list[SourceSpec], stage_dir: Path) -> tuple[Dataset, StageStats, str]:
    """Read every source into one dataset; returns it, its load stats and a content fingerprint.

    The result is cached under ``stage_dir`` keyed by the sources' fingerprint; ``_SUCCESS.json`` is written last, so
    an interrupted load is redone from scratch rather than half-reused. A load that keeps no document at all raises
    :class:`SourceError` with the per-source skip table.
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
    try:
        dataset = Dataset.from_generator(
            _generate,
            gen_kwargs={"specs": specs, "counts_dir": str(counts_dir)},
            features=DOCUMENT_FEATURES,
            cache_dir=str(cache_dir),
            fingerprint=fingerprint,
        )
    except Exception as error:
        source_error = _source_error_in(error)
        if source_error is not None:
            raise source_error from error
        per_source = _read_counts(counts_dir, specs)
        if per_source is not None and not any(counts.get("kept") for counts in per_source.values()):
            raise _nothing_loaded(per_source) from error
        raise
    if finished:
        stats = StageStats.from_dict(json.loads(success_path.read_text())["stats"])
    else:
        per_source = _read_counts(counts_dir, specs) or {}
        if not len(dataset):
            raise _nothing_loaded(per_source)
        logger.info("rows per source:\n%s", skip_table(per_source))
        stats = _load_stats(per_source, dataset)
        success_path.write_text(json.dumps({"fingerprint": fingerprint, "stats": stats.to_dict()}, indent=2))
    return dataset, stats, fingerprint
