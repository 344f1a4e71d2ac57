"""Length-prefixed JSON frames over pipes: how the parent, the workers and the sandboxed children talk.

JSON, not pickle: a frame that came from (or passed near) untrusted code is parsed, never executed. Frames have a size
cap so a misbehaving peer cannot make the reader allocate without bound.
"""

from __future__ import annotations

import json
import os
import select
import struct
import time
from typing import Any

HEADER = struct.Struct(">I")
MAX_FRAME_BYTES = 64 * 1024 * 1024


class ProtocolError(RuntimeError):
    """The peer closed the pipe, sent a malformed frame, or did not answer in time."""


class FrameTimeoutError(ProtocolError):
    pass


def send_frame(fd: int, message: dict[str, Any], deadline: float | None = None) -> None:
    """Write one frame; with a ``deadline`` (``time.monotonic()``) the descriptor must be non-blocking, and a reader
    that stops reading raises :class:`FrameTimeoutError` instead of blocking the writer for ever."""
    data = json.dumps(message, ensure_ascii=False).encode("utf-8")
    payload = HEADER.pack(len(data)) + data
    view = memoryview(payload)
    while view:
        if deadline is not None:
            wait = deadline - time.monotonic()
            _, ready, _ = select.select([], [fd], [], max(0.0, wait))
            if not ready:
                raise FrameTimeoutError("the reader did not take the frame before the deadline")
        try:
            written = os.write(fd, view)
        except BlockingIOError:
            continue
        view = view[written:]


def _read_exact(fd: int, size: int, deadline: float | None) -> bytes:
    chunks = []
    remaining = size
    while remaining:
        if deadline is not None:
            wait = deadline - time.monotonic()
            if wait <= 0:
                raise FrameTimeoutError("no complete answer before the deadline")
            ready, _, _ = select.select([fd], [], [], wait)
            if not ready:
                raise FrameTimeoutError("no complete answer before the deadline")
        chunk = os.read(fd, min(remaining, 1 << 20))
        if not chunk:
            raise ProtocolError("the other side closed the pipe")
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def recv_frame(fd: int, deadline: float | None = None, max_bytes: int = MAX_FRAME_BYTES) -> dict[str, Any]:
    """Read one frame; ``deadline`` is a ``time.monotonic()`` value (``None`` waits for ever)."""
    (size,) = HEADER.unpack(_read_exact(fd, HEADER.size, deadline))
    if size > max_bytes:
        raise ProtocolError(f"frame of {size} bytes exceeds the cap of {max_bytes}")
    try:
        message = json.loads(_read_exact(fd, size, deadline).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProtocolError(f"malformed frame: {exc}") from exc
    if not isinstance(message, dict):
        raise ProtocolError("a frame must hold a JSON object")
    return message
