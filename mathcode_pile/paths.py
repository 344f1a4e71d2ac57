"""Locations the project reads from: the repository root, the bundled samples and the bundled benchmark test sets.

Everything here lives inside the package, so a clone (or an installed wheel) works wherever it is placed: nothing is
looked up beside the checkout or in an environment variable.
"""

from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_ROOT = PACKAGE_DIR.parent
SAMPLES_DIR = PACKAGE_DIR / "data" / "samples"
#: The benchmark test sets shipped with the project (``<name>_test.jsonl.gz``, original field names; sources and
#: licences in the folder's README). Evaluation and decontamination read them by default; Hub ids are the scale path.
BENCHMARKS_DIR = PACKAGE_DIR / "data" / "benchmarks"
#: Suffixes a JSON Lines test set may carry, tried in this order.
JSONL_SUFFIXES = (".jsonl", ".jsonl.gz")


def benchmarks_dir() -> Path:
    """The folder of the bundled benchmark test sets (see :data:`BENCHMARKS_DIR`)."""
    return BENCHMARKS_DIR


def benchmark_file(folder: Path, stem: str) -> Path:
    """``folder/<stem>.jsonl`` or ``folder/<stem>.jsonl.gz``, whichever exists (plain first), else the plain name.

    ``stem`` is the file name without its suffix, e.g. ``gsm8k_test``. A user's folder of plain ``.jsonl`` files and
    the bundled compressed sets are read the same way.
    """
    for suffix in JSONL_SUFFIXES:
        candidate = folder / f"{stem}{suffix}"
        if candidate.is_file():
            return candidate
    return folder / f"{stem}{JSONL_SUFFIXES[0]}"
