"""Locations the project reads from: the repository root, bundled samples and the shared benchmark sets."""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_ROOT = PACKAGE_DIR.parent
SAMPLES_DIR = PACKAGE_DIR / "data" / "samples"


def shared_dir() -> Path:
    """Folder holding ``benchmarks/`` and ``samples/`` test sets: ``MATHCODE_SHARED`` or ``<repo>/../shared``."""
    return Path(os.environ.get("MATHCODE_SHARED", REPO_ROOT.parent / "shared"))


def benchmarks_dir() -> Path:
    path = shared_dir() / "benchmarks"
    if not path.is_dir():
        raise FileNotFoundError(
            f"benchmark test sets not found at {path}; set MATHCODE_SHARED to the folder that holds benchmarks/"
        )
    return path
