"""Read JSON Lines files one object per line, with errors that name the file and the line.

The benchmark loaders, the grader and the ``verify`` command all read JSON Lines the same way: blank lines are
skipped, every other line must be a JSON object, and a bad line stops reading with an error that says where it is.
Each caller raises its own exception type (so its CLI reports it as a user error) and may spell the location its
own way (``file: line 3`` or ``file:3``); the checks themselves live here once.
"""

from __future__ import annotations

import gzip
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

#: ``file: line 3``, the default spelling of a line's location; ``"{path}:{line}"`` gives ``file:3``.
LINE_WORD = "{path}: line {line}"


def iter_jsonl(
    path: Path,
    error: type[Exception] = ValueError,
    *,
    where: str = LINE_WORD,
    invalid: str = "invalid JSON",
) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line_number, object)`` for each non-blank line of ``path``, read lazily (line numbers start at 1).

    A line that is not JSON raises ``error("<where>: <invalid>: <reason>")``, one that holds something other than an
    object raises ``error("<where>: expected a JSON object, got <type>")``; ``where`` is formatted with ``path`` and
    ``line``. A file that is not UTF-8 raises ``error("<path>: not valid UTF-8 (...)")``. A ``.gz`` file is read
    through gzip (the bundled benchmark sets are shipped compressed); a damaged one raises ``error`` naming the file.
    """
    with open_text(path) as handle:
        try:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                location = where.format(path=path, line=number)
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise error(f"{location}: {invalid}: {exc.msg}") from exc
                if not isinstance(row, dict):
                    raise error(f"{location}: expected a JSON object, got {type(row).__name__}")
                yield number, row
        except UnicodeDecodeError as exc:
            raise error(f"{path}: not valid UTF-8 ({exc})") from exc
        except (OSError, EOFError) as exc:  # gzip: bad magic number, truncated stream, CRC mismatch
            raise error(f"{path}: cannot be read as gzip ({type(exc).__name__}: {exc})") from exc


def open_text(path: Path) -> io.TextIOBase:
    """``path`` opened as UTF-8 text, through gzip when its name ends in ``.gz``."""
    if path.suffix.lower() == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8")
    return path.open(encoding="utf-8")


def read_jsonl(
    path: Path, error: type[Exception] = ValueError, *, where: str = LINE_WORD, invalid: str = "invalid JSON"
) -> list[dict[str, Any]]:
    """Every object of a JSON Lines file, in order; errors as in :func:`iter_jsonl`."""
    return [row for _, row in iter_jsonl(path, error, where=where, invalid=invalid)]
