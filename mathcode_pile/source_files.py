"""Local corpus files: which files a source names, and their records, with every bad row or file a counted skip.

Which files: a file, a folder (every file under it) or a glob (``data/**/*.jsonl``). Folders are walked without
following symlinked folders (a ``parent -> ..`` link would otherwise loop, a ``dot -> .`` link read everything many
times), dot-files and dot-folders are left out, and a file reached twice (a symlink to another file of the source) is
read once. Each file keeps its path relative to the source root (the folder, the glob's fixed prefix, or a file's own
folder), from which document ids are made: two ``data.jsonl`` in different sub-folders get different ids.

Records: JSON lines (``.jsonl``, ``.ndjson``), a JSON list (``.json``), Parquet, and whole files (text, markdown,
Python, notebooks); any of the text formats may be gzip-compressed (``.jsonl.gz``). A UTF-8 byte-order mark is read as
such, not as part of the first row. Whatever a file holds, reading it never raises: a line that is not UTF-8, not
JSON, nested too deeply or holding an integer too long to read, a notebook of the wrong shape, a malformed ``.json``
file, a truncated Parquet or gzip file are each counted under a reason and logged with the file and line or row, and
the next line or file is read. Rows read from a file before it turned out truncated are kept.
"""

from __future__ import annotations

import fnmatch
import gzip
import json
import logging
import os
import re
import zlib
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

logger = logging.getLogger("mathcode_pile.sources")

#: Skip reasons raised before a record exists: they count as input rows that were read but could not be parsed.
UNPARSED_SKIPS = (
    "non_utf8",
    "malformed_json",
    "json_too_deep",
    "json_number_too_long",
    "not_an_object",
    "malformed_notebook",
    "unreadable_file",
)
SUFFIX_FORMATS = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "json",
    ".parquet": "parquet",
    ".md": "markdown",
    ".markdown": "markdown",
    ".py": "python",
    ".ipynb": "notebook",
}
WHOLE_FILE_FORMATS = ("text", "markdown", "python", "notebook")
_MAGIC = re.compile(r"[*?\[]")
_BOM = "\ufeff"
#: Errors a damaged gzip or Parquet file raises part-way through.
_DAMAGED_FILE_ERRORS = (OSError, EOFError, zlib.error, ValueError)


class SourceFile:
    """One file of a source: where it is and its path relative to the source root (used in document ids)."""

    __slots__ = ("path", "relative")

    def __init__(self, path: Path, relative: str) -> None:
        self.path = path
        self.relative = relative

    def __repr__(self) -> str:
        return f"SourceFile({str(self.path)!r}, {self.relative!r})"


def _is_hidden(name: str) -> bool:
    """Dot-files and dot-folders (``.ipynb_checkpoints``, ``.git``) are not corpus files."""
    return name.startswith(".")


def _matches(names: tuple[str, ...], patterns: tuple[str, ...]) -> bool:
    """Glob match of path parts, where a ``**`` part stands for any number of folders (none included)."""
    if not patterns:
        return not names
    if patterns[0] == "**":
        return any(_matches(names[skip:], patterns[1:]) for skip in range(len(names) + 1))
    return bool(names) and fnmatch.fnmatchcase(names[0], patterns[0]) and _matches(names[1:], patterns[1:])


def _walk(root: Path, patterns: tuple[str, ...]) -> Iterator[tuple[Path, tuple[str, ...]]]:
    """Files under ``root`` (symlinked folders not entered, hidden entries skipped) whose relative parts match."""
    fixed_depth = None if "**" in patterns else len(patterns)
    for folder, dirnames, filenames in os.walk(root, followlinks=False):
        relative_folder = Path(folder).relative_to(root).parts
        dirnames[:] = sorted(name for name in dirnames if not _is_hidden(name))
        if fixed_depth is not None and len(relative_folder) + 1 >= fixed_depth:
            dirnames[:] = []  # no deeper file can match a pattern without '**'
        for name in sorted(filenames):
            parts = (*relative_folder, name)
            if not _is_hidden(name) and _matches(parts, patterns):
                yield Path(folder) / name, parts


def find_source_files(path: str) -> list[SourceFile]:
    """The files ``path`` (a file, folder or glob) names, in a stable order, each real file once."""
    given = Path(path)
    if given.is_file():
        candidates: list[tuple[Path, tuple[str, ...]]] = [(given, (given.name,))]
    elif given.is_dir():
        candidates = list(_walk(given, ("**", "*")))
    else:
        parts = given.parts
        fixed = 0
        while fixed < len(parts) and not _MAGIC.search(parts[fixed]):
            fixed += 1
        root = Path(*parts[:fixed]) if fixed else Path()
        candidates = list(_walk(root, tuple(parts[fixed:]))) if fixed < len(parts) and root.is_dir() else []
    files: list[SourceFile] = []
    seen: set[Path] = set()
    for candidate, relative in sorted(candidates, key=lambda item: item[1]):
        if not candidate.is_file():  # a broken symlink
            continue
        real = candidate.resolve()
        if real in seen:
            logger.info("%s: the same file as one read already, read once", candidate)
            continue
        seen.add(real)
        files.append(SourceFile(candidate, "/".join(relative)))
    return files


def file_format(path: Path, forced: str | None = None) -> str:
    """The format a file is read as: ``forced`` if given, else its suffix (a ``.gz`` suffix looks one further)."""
    if forced:
        return forced
    suffixes = [suffix.lower() for suffix in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes.pop()
    return SUFFIX_FORMATS.get(suffixes[-1], "text") if suffixes else "text"


def _open_binary(path: Path) -> IO[bytes]:
    if path.suffix.lower() == ".gz":
        return gzip.open(path, "rb")  # type: ignore[return-value]
    return path.open("rb")


def _skip(counts: Counter[str], reason: str, where: str, detail: str) -> None:
    counts[reason] += 1
    logger.warning("%s: %s, skipped", where, detail)


def parse_json_value(raw: str) -> tuple[Any, str | None, str]:
    """``(value, None, "")`` or ``(None, skip reason, detail)`` for one JSON text; never raises."""
    try:
        return json.loads(raw), None, ""
    except json.JSONDecodeError as exc:
        return None, "malformed_json", f"malformed JSON ({exc.msg})"
    except RecursionError:
        return None, "json_too_deep", "JSON nested too deeply to read"
    except ValueError as exc:  # an integer past Python's int-to-str digit limit
        return None, "json_number_too_long", f"JSON number too long to read ({exc})"


def _iter_jsonl(path: Path, counts: Counter[str]) -> Iterator[tuple[int, dict[str, Any]]]:
    line_number = 0
    try:
        with _open_binary(path) as handle:
            for line_number, raw_line in enumerate(handle, start=1):
                if not raw_line.strip():
                    continue
                where = f"{path}:{line_number}"
                try:
                    line = raw_line.decode("utf-8")
                except UnicodeDecodeError as exc:
                    _skip(counts, "non_utf8", where, f"not valid UTF-8 (byte {exc.start})")
                    continue
                if line_number == 1:
                    line = line.removeprefix(_BOM)
                record, reason, detail = parse_json_value(line)
                if reason is not None:
                    _skip(counts, reason, where, detail)
                    continue
                if not isinstance(record, dict):
                    _skip(counts, "not_an_object", where, "JSON value is not an object")
                    continue
                yield line_number, record
    except _DAMAGED_FILE_ERRORS as exc:
        _skip(counts, "unreadable_file", path_after(path, line_number, "line"), f"damaged file ({exc})")


def path_after(path: Path, position: int, unit: str) -> str:
    """``file (after line N)``: where reading a damaged file stopped."""
    return f"{path} (after {unit} {position})" if position else str(path)


def _read_text(path: Path, counts: Counter[str]) -> str | None:
    """The whole file as text (BOM removed), or None when it is damaged or not UTF-8 (counted)."""
    try:
        with _open_binary(path) as handle:
            data = handle.read()
    except _DAMAGED_FILE_ERRORS as exc:
        _skip(counts, "unreadable_file", str(path), f"damaged file ({exc})")
        return None
    try:
        return data.decode("utf-8").removeprefix(_BOM)
    except UnicodeDecodeError as exc:
        _skip(counts, "non_utf8", str(path), f"not valid UTF-8 (byte {exc.start})")
        return None


def notebook_to_text(raw: str) -> str:
    """Text of a Jupyter notebook: markdown cells as they are, code cells as fenced ``python`` blocks.

    Outputs are left out (they are execution noise, often huge). Raises ``ValueError`` on anything that is not an
    nbformat 4 notebook (a cell whose ``source`` is neither a string nor a list of strings included), so the caller
    can count it as a broken file.
    """
    notebook, reason, detail = parse_json_value(raw)
    if reason is not None:
        raise ValueError(detail)
    if not isinstance(notebook, dict) or not isinstance(notebook.get("cells"), list):
        raise ValueError("no 'cells' list (not an nbformat 4 notebook)")
    parts = []
    for number, cell in enumerate(notebook["cells"]):
        if not isinstance(cell, dict):
            raise ValueError(f"cell {number} is not an object")
        source = cell.get("source", "")
        if isinstance(source, list) and all(isinstance(line, str) for line in source):
            body = "".join(source)
        elif isinstance(source, str):
            body = source
        else:
            raise ValueError(f"cell {number}: 'source' is neither a string nor a list of strings")
        if not body.strip():
            continue
        if cell.get("cell_type") == "code":
            parts.append(f"```python\n{body.rstrip()}\n```")
        elif cell.get("cell_type") == "markdown":
            parts.append(body.strip())
    return "\n\n".join(parts)


def _whole_file_record(path: Path, fmt: str, text_field: str, counts: Counter[str]) -> dict[str, Any] | None:
    """One record for a file that is one document (text, markdown, Python, notebook), or None when unreadable."""
    text = _read_text(path, counts)
    if text is None:
        return None
    if fmt == "notebook":
        try:
            text = notebook_to_text(text)
        except ValueError as exc:
            _skip(counts, "malformed_notebook", str(path), f"not a readable Jupyter notebook ({exc})")
            return None
    record: dict[str, Any] = {text_field: text, "_file": path.name, "format": fmt}
    if fmt in ("python", "notebook"):
        record["language"] = "python"
    return record


def _iter_json_list(path: Path, counts: Counter[str]) -> Iterator[tuple[int, dict[str, Any]]]:
    text = _read_text(path, counts)
    if text is None:
        return
    records, reason, detail = parse_json_value(text)
    if reason is not None:
        _skip(counts, reason, str(path), detail)
        return
    if not isinstance(records, list):
        _skip(counts, "malformed_json", str(path), "a .json source must hold a list of objects")
        return
    for row_index, record in enumerate(records):
        if not isinstance(record, dict):
            _skip(counts, "not_an_object", f"{path}:{row_index}", "item is not an object")
            continue
        yield row_index, record


def _iter_parquet(path: Path, counts: Counter[str]) -> Iterator[tuple[int, dict[str, Any]]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    row_index = 0
    try:
        for batch in pq.ParquetFile(path).iter_batches(batch_size=1024):
            for record in batch.to_pylist():
                yield row_index, record
                row_index += 1
    except (*_DAMAGED_FILE_ERRORS, pa.ArrowException) as exc:
        _skip(counts, "unreadable_file", path_after(path, row_index, "row"), f"damaged Parquet file ({exc})")


def iter_file_records(
    path: Path, fmt: str, text_field: str, counts: Counter[str]
) -> Iterator[tuple[int | None, dict[str, Any]]]:
    """``(row, record)`` of one file (row: line number, item or row index, None for a whole-file document)."""
    if fmt == "parquet":
        yield from _iter_parquet(path, counts)
    elif fmt in WHOLE_FILE_FORMATS:
        record = _whole_file_record(path, fmt, text_field, counts)
        if record is not None:
            yield None, record
    elif fmt == "json":
        yield from _iter_json_list(path, counts)
    else:
        yield from _iter_jsonl(path, counts)
