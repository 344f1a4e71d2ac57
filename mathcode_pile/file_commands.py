"""The rules every file-level command follows (``mathcode-eval grade``, ``mathcode-pile verify``, ``decontaminate``).

Each reads rows from one file and writes rows to another, and each must treat a user's file the same way:

- **A bad row costs only itself.** Every readable row is processed; a row that cannot be (not UTF-8, not JSON, not
  an object, a lone surrogate, a missing field, a value the command refuses) becomes a *row error*: an output row
  holding the fields that could be read plus an ``error`` field, logged with file and line, counted, named in a
  summary line, and the command exits 1 (:data:`EXIT_ROW_ERRORS`). ``--strict`` stops at the first one instead
  (exit 2, nothing written).
- **Locations are what an editor shows**: ``line N`` is the file line of a JSON-lines row (blank lines count, a BOM
  does not shift anything); a JSON list or Parquet file has ``row N``, counted from 1.
- **Nothing is left half-written.** Output goes to a temporary file in the target folder and is renamed over the
  target only when complete; any failure or interrupt removes it. An existing output is replaced only with
  ``--overwrite``, and never when it is the input.
- **Formats follow the suffix**, and an unknown suffix is refused before any work (``out.csv`` is not silently
  written as JSON lines).
"""

from __future__ import annotations

import argparse
import gzip
import json
import logging
import math
import os
import re
import tempfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Any, TypeVar

from mathcode_pile.surrogates import repair_value, replace_lone_surrogates

logger = logging.getLogger(__name__)

EXIT_OK = 0
#: Every good row was written; some rows were bad and are marked with ``error``.
EXIT_ROW_ERRORS = 1
#: Nothing was written: a usage or file-level error, or ``--strict`` stopped at a bad row.
EXIT_FAILED = 2

ROW_FORMATS = (".jsonl", ".json", ".parquet")
#: Inputs may also be gzip-compressed JSON lines.
INPUT_FORMATS = (*ROW_FORMATS, ".jsonl.gz")
#: Row errors named one by one in the log; the rest are counted (every one is in the output).
LOGGED_ERRORS = 20
#: Characters of a row error's message kept.
MESSAGE_CHARS = 500
#: A ``\ud800``..``\udfff`` escape: the only way a valid UTF-8 line can decode to a string with a lone surrogate.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
_BOM = b"\xef\xbb\xbf"
T = TypeVar("T")


class FileCommandError(ValueError):
    """A problem with a whole file or with the command line; the message names the file and what to do."""


# -- command-line options ----------------------------------------------------------------------------------------


def finite_non_negative(text: str) -> float:
    """argparse type: a tolerance (``inf``, ``nan`` and negative values would quietly change what matches)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text!r}")
    return value


def finite_positive(text: str) -> float:
    """argparse type: a time limit in seconds."""
    value = finite_non_negative(text)
    if value == 0:
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text!r}")
    return value


def positive_int(text: str) -> int:
    """argparse type: a count of workers, megabytes, tokens."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {text!r}")
    return value


def add_file_command_options(parser: argparse.ArgumentParser) -> None:
    """``--strict`` and ``--overwrite``, spelled and explained the same way for every file command."""
    parser.add_argument(
        "--strict",
        action="store_true",
        help="stop at the first bad row (exit 2, nothing written) instead of marking it with an 'error' field",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace the output file if it exists")


# -- paths and formats -------------------------------------------------------------------------------------------


def row_format(path: Path, formats: tuple[str, ...], role: str) -> str:
    """The format of ``path`` by its suffix (``.jsonl``, ``.jsonl.gz``, ``.json``, ``.parquet``) or a refusal."""
    name = path.name.lower()
    for suffix in sorted(formats, key=len, reverse=True):
        if name.endswith(suffix):
            return suffix
    given = "".join(path.suffixes[-2:]) or "no suffix"
    raise FileCommandError(f"{path}: unsupported {role} format '{given}' (use one of: {', '.join(formats)})")


def check_paths(
    input_path: Path,
    outputs: list[Path],
    *,
    overwrite: bool,
    input_formats: tuple[str, ...] = INPUT_FORMATS,
    output_formats: tuple[str, ...] = ROW_FORMATS,
) -> tuple[str, str]:
    """Refuse, before any work, what would fail late or destroy a file; returns the input and output formats.

    ``outputs[0]`` is the row file (its suffix picks the format); any others (a report) get the same checks.
    """
    if not input_path.exists():
        raise FileCommandError(f"input file not found: {input_path}")
    if not input_path.is_file():
        raise FileCommandError(f"{input_path}: the input is not a file")
    input_format = row_format(input_path, input_formats, "input")
    output_format = row_format(outputs[0], output_formats, "output")
    for output in outputs:
        if output.is_dir():
            raise FileCommandError(f"{output}: the output is a folder; give a file name")
        if output.exists() and output.resolve() == input_path.resolve():
            raise FileCommandError(f"{output}: the output would replace the input; choose another output file")
        if output.exists() and not overwrite:
            raise FileCommandError(f"{output} exists; pass --overwrite to replace it")
    return input_format, output_format


# -- reading -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class InputRow:
    """One row of an input file as read: its place, the object (when there is one) and what is wrong with it."""

    path: Path
    number: int  # file line (JSON lines) or 1-based row (JSON list, Parquet)
    by_line: bool
    record: dict[str, Any] | None = None  # the fields read; None when the line is not a JSON object
    problem: str | None = None  # why the row cannot be used as it is, or None

    @property
    def label(self) -> str:
        """``line 3`` or ``row 3``: the place inside an output row's ``error``."""
        return f"{'line' if self.by_line else 'row'} {self.number}"

    @property
    def where(self) -> str:
        """``data.jsonl:3`` or ``data.parquet: row 3``: the place in a log line."""
        return f"{self.path}:{self.number}" if self.by_line else f"{self.path}: {self.label}"


def read_rows(path: Path, input_format: str) -> Iterator[InputRow]:
    """Every row of ``path`` in order, lazily; rows that cannot be used come with their ``problem``.

    A JSON list that does not parse or a Parquet file that cannot be opened is a :class:`FileCommandError` (no row can
    be told from another); a file that breaks off part-way (truncated gzip or Parquet) ends with one row whose problem
    says so, after every row that could be read.
    """
    if input_format == ".json":
        yield from _json_list_rows(path)
    elif input_format == ".parquet":
        yield from _parquet_rows(path)
    else:
        yield from _json_lines_rows(path, compressed=input_format.endswith(".gz"))


def _object_row(path: Path, number: int, by_line: bool, value: Any, may_hold_surrogates: bool = True) -> InputRow:
    if not isinstance(value, dict):
        return InputRow(path, number, by_line, problem=f"expected a JSON object, got {_json_type(value)}")
    if may_hold_surrogates:
        value, field_name = repair_value(value)
        if field_name is not None:
            problem = f"field '{field_name}' holds a lone surrogate (invalid Unicode; shown here as U+FFFD)"
            return InputRow(path, number, by_line, value, problem)
    return InputRow(path, number, by_line, value)


def _json_type(value: Any) -> str:
    names = {list: "array", str: "string", bool: "boolean", type(None): "null", int: "number", float: "number"}
    return names.get(type(value), type(value).__name__)


def _json_lines_rows(path: Path, compressed: bool) -> Iterator[InputRow]:
    number = 0
    try:
        with gzip.open(path, "rb") if compressed else path.open("rb") as handle:
            for number, raw in enumerate(handle, start=1):
                if number == 1 and raw.startswith(_BOM):
                    raw = raw[len(_BOM) :]
                if raw.strip():
                    yield _json_line_row(path, number, raw)
    except (OSError, EOFError, zlib.error) as exc:  # gzip: not gzip, truncated stream, bad CRC
        problem = f"the rest of the file cannot be read ({type(exc).__name__}: {exc})"
        yield InputRow(path, number + 1, True, problem=problem)


def _json_line_row(path: Path, number: int, raw: bytes) -> InputRow:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        problem = f"not valid UTF-8 (byte 0x{raw[exc.start]:02x} at column {exc.start + 1})"
        return InputRow(path, number, True, problem=problem)
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        return InputRow(path, number, True, problem=f"invalid JSON: {exc.msg} (column {exc.colno})")
    except RecursionError:
        return InputRow(path, number, True, problem="invalid JSON: nested too deeply to read")
    except ValueError as exc:  # an integer past Python's digit limit for conversion
        return InputRow(path, number, True, problem=f"invalid JSON: {exc}")
    return _object_row(path, number, True, value, bool(_SURROGATE_ESCAPE.search(raw)))


def _json_list_rows(path: Path) -> Iterator[InputRow]:
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise FileCommandError(f"{path}: not valid UTF-8 (byte offset {exc.start})") from exc
    try:
        payload = json.loads(text)
    except json.JSONDecodeError as exc:
        raise FileCommandError(f"{path}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from exc
    except RecursionError as exc:
        raise FileCommandError(f"{path}: invalid JSON: nested too deeply to read") from exc
    except ValueError as exc:
        raise FileCommandError(f"{path}: invalid JSON: {exc}") from exc
    if not isinstance(payload, list):
        raise FileCommandError(f"{path}: a .json input must hold a list of objects, got {_json_type(payload)}")
    for number, value in enumerate(payload, start=1):
        yield _object_row(path, number, False, value)


def _parquet_rows(path: Path) -> Iterator[InputRow]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as exc:
        raise FileCommandError(f"{path}: cannot be read as Parquet ({exc})") from exc
    number = 0
    try:
        for batch in parquet.iter_batches(batch_size=1024):
            for record in batch.to_pylist():
                number += 1
                yield _object_row(path, number, False, record, may_hold_surrogates=False)
    except (pa.ArrowException, OSError, UnicodeDecodeError) as exc:
        yield InputRow(path, number + 1, False, problem=f"the rest of the file cannot be read ({exc})")


# -- row errors, strict mode and the summary ---------------------------------------------------------------------


@dataclass
class RowErrors:
    """The bad rows of one run: each is logged with its place, counted and kept for the summary and the output."""

    strict: bool = False
    entries: list[tuple[InputRow, str]] = field(default_factory=list)

    def add(self, row: InputRow, message: str) -> dict[str, Any]:
        """Record that ``row`` is bad; returns its output row (the fields read plus ``error``).

        With ``strict`` this raises :class:`FileCommandError` instead: the command stops and writes nothing.
        """
        if len(message) > MESSAGE_CHARS:  # a checker may quote the whole offending value
            message = message[: MESSAGE_CHARS - 1] + "…"
        if self.strict:
            raise FileCommandError(f"{row.where}: {message} (--strict: stopped at the first bad row, nothing written)")
        self.entries.append((row, message))
        if len(self.entries) <= LOGGED_ERRORS:
            logger.warning("%s: %s", row.where, message)
        elif len(self.entries) == LOGGED_ERRORS + 1:
            logger.warning("more bad rows follow; each is marked in the output and counted in the summary")
        return {**(row.record or {}), "error": f"{row.label}: {message}"}

    def __len__(self) -> int:
        return len(self.entries)

    def report(self) -> list[dict[str, Any]]:
        """Every row error as ``{"where": "line 3", "error": ...}`` (for a JSON report)."""
        return [{"where": row.label, "error": message} for row, message in self.entries]

    def summary(self, rows: int) -> str | None:
        """``2 of 10 row(s) had errors ...`` naming the first, or None when every row was fine."""
        if not self.entries:
            return None
        first_row, first_message = min(self.entries, key=lambda entry: entry[0].number)
        return f"{len(self.entries)} of {rows} row(s) had errors (first: {first_row.where}: {first_message})"

    @property
    def exit_code(self) -> int:
        return EXIT_ROW_ERRORS if self.entries else EXIT_OK


#: What a command makes of one readable row: ``(output row, None)``, or ``(None, why the row failed)``.
Outcome = tuple[dict[str, Any] | None, str | None]


def chunked(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """``items`` in lists of ``size`` (the last may be shorter), read lazily."""
    chunk: list[T] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def map_rows(
    rows: Iterable[InputRow],
    process: Callable[[list[InputRow]], list[Outcome]],
    errors: RowErrors,
    *,
    chunk_rows: int,
    check: Callable[[dict[str, Any]], str | None] | None = None,
) -> Iterator[list[dict[str, Any]]]:
    """One output row per input row, in order, a chunk at a time: what ``process`` made of each good row, and a row
    error (fields read plus ``error``) for each bad one.

    ``check`` names what is wrong with a readable row before any work (a missing field); ``process`` gets the rows
    that passed, a chunk at once (so it may batch or parallelize), and answers one :data:`Outcome` per row. Rows are
    judged in file order, so ``--strict`` stops at the first bad row of the file, with at most one chunk done past it.
    """
    for chunk in chunked(rows, chunk_rows):
        problems = [row.problem or (check(row.record or {}) if check else None) for row in chunk]
        outcomes = iter(process([row for row, problem in zip(chunk, problems, strict=True) if problem is None]))
        out: list[dict[str, Any]] = []
        for row, problem in zip(chunk, problems, strict=True):
            result = None
            if problem is None:
                result, problem = next(outcomes)
            out.append(result if result is not None else errors.add(row, problem or "not processed"))
        yield out


# -- writing -----------------------------------------------------------------------------------------------------


class AtomicRowWriter:
    """Rows written to a temporary file beside ``path`` and renamed over it by :meth:`commit`.

    Use it as a context manager: leaving the block normally commits, any exception (an interrupt too) removes the
    temporary file, so the target is either complete or as it was. The temporary file is created at once, so an
    output folder that cannot be written is reported before any work. JSON lines and JSON lists are streamed.
    Parquet rows are kept until :meth:`commit`, which takes the columns of all rows (a row without a field gets null
    there), unless ``schema`` gives the columns or ``stream_parquet`` lets the first rows written fix them (rows of
    one shape, such as the kept documents of a file: no need to hold them all in memory).
    """

    def __init__(self, path: Path, output_format: str, schema: Any = None, *, stream_parquet: bool = False) -> None:
        self.path = path
        self.format = output_format
        self.schema = schema
        self.tmp, self._handle = _temporary_beside(path)
        self._parquet: Any = None
        self._pending: list[dict[str, Any]] = []
        self._stream = stream_parquet
        self._closing = False
        self._rows = 0

    def write(self, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        if self.format == ".parquet":
            self._write_parquet(rows)
        else:
            assert self._handle is not None
            for row in rows:
                if self.format == ".json":  # a JSON list, streamed: "[" before the first row, "," between rows
                    self._handle.write((b"[\n" if self._rows == 0 else b",\n") + _json_bytes(row))
                else:
                    self._handle.write(_json_bytes(row) + b"\n")
                self._rows += 1

    def _write_parquet(self, rows: list[dict[str, Any]]) -> None:
        import pyarrow.parquet as pq

        if self.schema is None and not self._stream and not self._closing:
            self._pending.extend(rows)  # the columns of all rows are known only at the end
            return
        table = self._table(rows)
        if self._parquet is None:
            assert self._handle is not None
            self._handle.close()
            self._handle = None
            self.schema = _nulls_as_text(table.schema)
            table = table.cast(self.schema)
            self._parquet = pq.ParquetWriter(self.tmp, table.schema)
        self._parquet.write_table(table)
        self._rows += len(rows)

    def _table(self, rows: list[dict[str, Any]]) -> Any:
        import pyarrow as pa

        known = list(self.schema.names) if self.schema is not None else []
        names = list(dict.fromkeys([*known, *(key for row in rows for key in row)]))
        arrays = []
        for name in names:
            if self.schema is not None and name not in self.schema.names:
                raise FileCommandError(
                    f"{self.path}: field '{name}' appears after the first rows were written without it; Parquet "
                    "needs the same columns in every row: write .jsonl or .json instead"
                )
            column_type = self.schema.field(name).type if self.schema is not None else None
            try:
                arrays.append(pa.array([row.get(name) for row in rows], type=column_type))
            except (pa.ArrowException, OverflowError, TypeError) as exc:
                raise FileCommandError(
                    f"{self.path}: column '{name}' cannot be written as Parquet ({exc}); its values differ in type "
                    "between rows: write .jsonl or .json instead"
                ) from exc
        return pa.Table.from_arrays(arrays, names=names)

    def commit(self) -> None:
        """Finish the file and move it into place."""
        self._closing = True
        if self._pending:
            self._write_parquet(self._pending)
        if self.format == ".parquet" and self._parquet is None:
            import pyarrow as pa

            self._write_parquet_empty(pa)
        if self._parquet is not None:
            self._parquet.close()
        if self._handle is not None:
            if self.format == ".json":
                self._handle.write(b"\n]\n" if self._rows else b"[]\n")
            self._handle.close()
        self.tmp.replace(self.path)

    def _write_parquet_empty(self, pa: Any) -> None:
        import pyarrow.parquet as pq

        assert self._handle is not None
        self._handle.close()
        self._handle = None
        schema = self.schema if self.schema is not None else pa.schema([])
        pq.write_table(schema.empty_table(), self.tmp)

    def discard(self) -> None:
        """Remove the temporary file; the target stays as it was."""
        try:
            if self._parquet is not None:
                self._parquet.close()
            if self._handle is not None:
                self._handle.close()
        finally:
            self.tmp.unlink(missing_ok=True)

    def __enter__(self) -> AtomicRowWriter:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        if kind is None:
            try:
                self.commit()
            except BaseException:
                self.discard()
                raise
        else:
            self.discard()


def _nulls_as_text(schema: Any) -> Any:
    """``schema`` with columns that were null throughout the first rows typed as text, so later values fit."""
    import pyarrow as pa

    return pa.schema([field.with_type(pa.string()) if pa.types.is_null(field.type) else field for field in schema])


def _json_bytes(row: dict[str, Any]) -> bytes:
    text = json.dumps(row, ensure_ascii=False, default=str)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate produced by the command itself: stored repaired, never a crash
        return replace_lone_surrogates(text).encode("utf-8")


def write_text_atomic(path: Path, text: str) -> None:
    """``text`` to ``path`` through a temporary file beside it (a report must not be left half-written either)."""
    tmp, handle = _temporary_beside(path)
    try:
        with handle:
            handle.write(replace_lone_surrogates(text).encode("utf-8"))
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _temporary_beside(path: Path) -> tuple[Path, IO[bytes]]:
    """A new hidden file in ``path``'s folder (same file system, so the final rename is atomic), opened for writing.

    It gets the permissions a plain ``open`` would give (``mkstemp`` makes it private to the owner).
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise FileCommandError(f"{path}: cannot write in {path.parent} ({exc.strerror or exc})") from exc
    umask = os.umask(0)
    os.umask(umask)
    os.fchmod(descriptor, 0o666 & ~umask)
    return Path(name), os.fdopen(descriptor, "wb")
