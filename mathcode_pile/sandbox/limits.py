"""Resource limits of one sandboxed run (a snippet, or one cell of a session)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

#: Modules imported once by every pre-warmed worker, so snippets that import them pay nothing.
DEFAULT_PRELOAD: tuple[str, ...] = (
    "math",
    "cmath",
    "fractions",
    "decimal",
    "statistics",
    "itertools",
    "functools",
    "collections",
    "random",
    "re",
    "json",
    "datetime",
    "numpy",
    "sympy",
    "scipy",
    "scipy.special",
)

#: Run once in each worker after the imports (our code, never a snippet's): the first call of many sympy functions
#: imports submodules and fills caches; done here, every forked child starts with that work already done.
DEFAULT_WARMUP = """
import sympy as sp
x = sp.Symbol("x")
sp.solve(x**2 - 3 * x + 2, x)
sp.simplify(sp.sqrt(8) + sp.Rational(1, 3))
sp.integrate(x**2 + 2 * x, (x, 0, 1))
sp.factorint(360)
sp.expand((x + 1) ** 3)
sp.nsimplify(0.75)
sp.latex(sp.sqrt(2) / 2)
str(sp.Matrix([[1, 2], [3, 4]]).det())
import numpy as np
float(np.mean(np.arange(4)))
"""


@dataclass(frozen=True)
class SandboxLimits:
    """Per-run limits. Defaults suit the short computations of MathCode-Pile and LCE code cells.

    ``memory_mb`` is a budget on top of the worker's address space after its imports (numpy and sympy alone map a few
    hundred MB), so it means "this much new memory", whatever was preloaded.
    """

    timeout_s: float = 10.0
    cpu_s: float | None = None
    memory_mb: int = 1024
    max_file_mb: float = 16.0
    max_processes: int = 16
    max_open_files: int = 256
    max_output_chars: int = 8192

    def __post_init__(self) -> None:
        if not self.timeout_s > 0:
            raise ValueError(f"timeout_s must be > 0, got {self.timeout_s}")
        if self.cpu_s is not None and not self.cpu_s > 0:
            raise ValueError(f"cpu_s must be > 0 or None, got {self.cpu_s}")
        for name in ("memory_mb", "max_processes", "max_open_files", "max_output_chars"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not self.max_file_mb > 0:
            raise ValueError(f"max_file_mb must be > 0, got {self.max_file_mb}")

    @property
    def cpu_seconds(self) -> int:
        """RLIMIT_CPU in whole seconds: ``cpu_s``, or a backstop one second past the wall timeout.

        Without an explicit ``cpu_s`` the wall timeout is the limit that applies; a CPU limit equal to it would race
        the wall timer on a busy loop and report whichever fired first, so the default stays strictly above it.
        """
        if self.cpu_s is not None:
            return max(1, math.ceil(self.cpu_s))
        return math.ceil(self.timeout_s) + 1

    @property
    def max_file_bytes(self) -> int:
        return int(self.max_file_mb * 1024 * 1024)

    def with_timeout(self, timeout_s: float | None) -> SandboxLimits:
        """The same limits with another wall timeout (``None`` keeps this one)."""
        if timeout_s is None or timeout_s == self.timeout_s:
            return self
        return SandboxLimits(**{**asdict(self), "timeout_s": timeout_s})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SandboxLimits:
        return cls(**data)
