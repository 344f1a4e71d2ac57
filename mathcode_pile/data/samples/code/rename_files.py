"""Rename every .txt file in a folder to lower case (no mathematics here)."""

import os
import sys
from pathlib import Path


def lower_case_names(folder):
    for path in Path(folder).glob("*.txt"):
        target = path.with_name(path.name.lower())
        if target != path:
            os.rename(path, target)


if __name__ == "__main__":
    lower_case_names(sys.argv[1] if len(sys.argv) > 1 else ".")
