"""What one sandboxed run returns, and the vocabulary of its outcomes."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

ExecStatus = Literal["ok", "error", "timeout", "memory_limit", "output_limit", "killed", "sandbox_error"]

#: Every status, in the order reports list them.
EXEC_STATUSES: tuple[str, ...] = ("ok", "error", "timeout", "memory_limit", "output_limit", "killed", "sandbox_error")


@dataclass(frozen=True)
class ExecResult:
    """Outcome of one snippet or cell.

    ``status`` is ``ok`` only for a run that finished without an exception and with exit code 0. ``reason`` says why
    anything else happened in words a log reader understands (``ZeroDivisionError: division by zero``, ``wall time
    limit of 5s exceeded``). ``stdout`` / ``stderr`` are capped to head + tail with a marker in between and have ANSI
    escape codes removed; ``truncated`` tells whether anything was cut.
    """

    status: ExecStatus
    stdout: str = ""
    stderr: str = ""
    exit_code: int | None = None
    reason: str = ""
    duration_s: float = 0.0
    truncated: bool = False

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ExecResult:
        return cls(**data)
