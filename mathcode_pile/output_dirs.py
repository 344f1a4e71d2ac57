"""The one rule for every folder a MathCode command writes into: never destroy what this project did not write.

Builds replace parts of their output folder (``data/``, ``plots/``, ``README.md``), evaluations rewrite their result
files and training writes checkpoints, so pointing one of them at the wrong folder would delete a user's files. Every
command therefore claims its output folders through :func:`claim_output_dir` before its first step:

- an empty or root-like path is refused whatever the flags say: ``""``, the file-system root, the home folder, the
  current folder or one above it, the checkout this package runs from, any folder that holds a ``.git`` entry;
- a path that exists as a file, or that cannot be created or written, is refused;
- an existing folder that holds files but no marker of ours (:data:`MARKER_NAME`) is refused, with a message naming
  it and the ``--overwrite`` flag; with that flag it is taken over;
- otherwise the folder is created if needed and the marker written, so the next run of the same command resumes or
  overwrites it as before.

The marker is a dot-file: uploads leave it out (:func:`mathcode_pile.hub.list_upload_files`).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from mathcode_pile.config import RecipeError
from mathcode_pile.paths import REPO_ROOT

#: Written into each folder a MathCode command claims; its presence means "ours: safe to resume or overwrite".
MARKER_NAME = ".mathcode_output"
#: The flag (and recipe key) that lets a command take over an existing folder it did not write.
OVERWRITE_FLAG = "--overwrite"


class OutputDirError(RecipeError):
    """An output folder that must not be written; the message names the folder, the key and what to do."""


@dataclass
class OverwriteOption:
    """Config mixin: the ``overwrite`` key (``--overwrite``) of every command that claims an output folder."""

    overwrite: bool = field(
        default=False,
        metadata={"help": "Take over an existing output folder that this project did not write (what the command "
                  "writes there is replaced; other files stay). Root-like folders are refused regardless."},
    )  # fmt: skip


def _protected_reason(resolved: Path) -> str | None:
    """Why ``resolved`` can never be an output folder, or None."""
    cwd = Path.cwd().resolve()
    home = Path.home().resolve()
    if resolved == Path(resolved.anchor):
        return "the file-system root"
    if cwd.is_relative_to(resolved):
        return "the current folder" if resolved == cwd else "a folder above the current folder"
    if home.is_relative_to(resolved):
        return "the home folder" if resolved == home else "a folder that contains the home folder"
    checkout = REPO_ROOT.resolve()
    if checkout.is_relative_to(resolved):
        return "the MathCode checkout itself" if resolved == checkout else "a folder above the MathCode checkout"
    if (resolved / ".git").exists():
        return "a git repository (it holds .git)"
    return None


def _is_ours(folder: Path) -> bool:
    return (folder / MARKER_NAME).is_file()


def _nearest_existing(path: Path) -> Path:
    for candidate in (path, *path.parents):
        if candidate.exists() or candidate.is_symlink():
            return candidate
    return Path(path.anchor)


def check_output_dir(path: str | Path | None, key: str, where: str, overwrite: bool = False) -> Path:
    """Refuse ``path`` as an output folder unless it is safe to write (see the module docstring); no side effects.

    ``key`` is the recipe key or flag that named it and ``where`` the recipe (or "command line"), so the error says
    where to fix it. Returns the path as given (relative paths stay relative).
    """
    raw = "" if path is None else str(path)
    fix = f"Set {key} to a folder of its own, e.g. {key} outputs/my_run"
    if not raw.strip():
        raise OutputDirError(f"{where}: {key} is empty; it would write into the current folder. {fix}")
    if raw.startswith("~"):
        raise OutputDirError(f"{where}: {key} {raw!r} starts with '~', which is not expanded; write the folder out")
    folder = Path(raw)
    resolved = folder.resolve()
    reason = _protected_reason(resolved)
    if reason is not None:
        raise OutputDirError(f"{where}: {key} {raw!r} is {reason}; it can never be an output folder. {fix}")
    if resolved.exists() and not resolved.is_dir():
        raise OutputDirError(f"{where}: {key} {raw!r} is a file, not a folder. {fix}")
    if resolved.is_dir():
        if not _is_ours(resolved):
            entries = sorted(p.name for p in resolved.iterdir())
            if entries and not overwrite:
                shown = ", ".join(entries[:5]) + (", ..." if len(entries) > 5 else "")
                raise OutputDirError(
                    f"{where}: {key} {raw!r} already exists and was not written by MathCode (no {MARKER_NAME} "
                    f"marker; it holds {shown}). Choose a new folder, or pass {OVERWRITE_FLAG} to let this command "
                    "replace what it writes there"
                )
        if not os.access(resolved, os.W_OK | os.X_OK):
            raise OutputDirError(f"{where}: {key} {raw!r} is not writable. {fix}")
        return folder
    existing = _nearest_existing(resolved)
    if not existing.is_dir():
        raise OutputDirError(f"{where}: {key} {raw!r} cannot be created: {existing} is a file. {fix}")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise OutputDirError(f"{where}: {key} {raw!r} cannot be created: {existing} is not writable. {fix}")
    return folder


def claim_output_dir(
    path: str | Path | None, key: str, where: str, overwrite: bool = False, command: str = "mathcode"
) -> Path:
    """:func:`check_output_dir`, then create the folder and write the marker; returns the folder.

    Claiming a folder that is already ours only refreshes nothing: the marker stays as the first run wrote it.
    """
    folder = check_output_dir(path, key, where, overwrite)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        marker = folder / MARKER_NAME
        if not marker.is_file():
            marker.write_text(json.dumps({"written_by": command}) + "\n", encoding="utf-8")
    except OSError as error:
        raise OutputDirError(f"{where}: {key} {str(path)!r} cannot be written ({error.strerror or error})") from error
    return folder


def check_separate_dirs(output_dir: str | Path, work_dir: str | Path, where: str) -> None:
    """The work folder must not be the output folder or inside it (it would be uploaded and deleted with it)."""
    output, work = Path(output_dir).resolve(), Path(work_dir).resolve()
    if work == output or work.is_relative_to(output):
        raise OutputDirError(f"{where}: work_dir {str(work_dir)!r} is inside output_dir {str(output_dir)!r}; "
                             "leave work_dir unset (default <output_dir>_work) or put it elsewhere")  # fmt: skip
