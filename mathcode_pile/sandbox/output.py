"""Capping and cleaning of captured output: head + tail with a marker, ANSI escape codes removed."""

from __future__ import annotations

import re
from pathlib import Path

ANSI_ESCAPE = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[@-Z\\-_])")


def strip_ansi(text: str) -> str:
    """Remove terminal colour and cursor sequences (tracebacks from some libraries carry them)."""
    return ANSI_ESCAPE.sub("", text)


def cap_text(text: str, max_chars: int) -> tuple[str, bool]:
    """Keep the first and last halves of ``max_chars``; a marker says how much was cut. Returns (text, truncated)."""
    if len(text) <= max_chars:
        return text, False
    head = max_chars // 2
    tail = max_chars - head
    cut = len(text) - head - tail
    return f"{text[:head]}\n... [{cut} characters cut] ...\n{text[-tail:]}", True


def read_capped(path: str, max_chars: int) -> tuple[str, bool]:
    """Read a captured-output file without loading more than head + tail of it (it may be megabytes long)."""
    try:
        size = Path(path).stat().st_size
    except OSError:
        return "", False
    # 4 bytes per character at most in UTF-8: read enough bytes for max_chars characters at each end
    budget = 4 * max_chars
    with Path(path).open("rb") as handle:
        if size <= 2 * budget:
            text = handle.read().decode("utf-8", errors="replace")
            text, truncated = cap_text(strip_ansi(text), max_chars)
            return text, truncated
        head_bytes = handle.read(budget)
        handle.seek(size - budget)
        tail_bytes = handle.read(budget)
    head = strip_ansi(head_bytes.decode("utf-8", errors="replace"))[: max_chars // 2]
    tail = strip_ansi(tail_bytes.decode("utf-8", errors="replace"))[-(max_chars - max_chars // 2) :]
    return f"{head}\n... [about {size - len(head) - len(tail)} bytes cut] ...\n{tail}", True
