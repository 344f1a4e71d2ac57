"""``run_info.json``: what a training run started from and trained on, written beside the model it saved.

The model card says this in prose for people; this file says it for programs. ``mathcode-eval compare`` reads it to
name each evaluated model by its base model, its training data and, for the ablation recipes
(``recipes/<Model>/ablations/<stage>_<name>.yaml``), the ablation it reproduces, so a table of several runs says what
was trained on what. Every trainer writes it once the model is saved.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

RUN_INFO_FILE = "run_info.json"
#: File-name prefixes of the ablation recipes, by the trainer stage they belong to.
ABLATION_PREFIXES = ("cpt_", "sft_")


def recipe_from_argv(argv: Sequence[str]) -> str | None:
    """The ``--config`` recipe of a command line, if any."""
    arguments = list(argv)
    if "--config" in arguments and arguments.index("--config") + 1 < len(arguments):
        return arguments[arguments.index("--config") + 1]
    return None


def ablation_name(recipe: str | None) -> str | None:
    """``code_only`` for ``recipes/Llama-3-8B/ablations/cpt_code_only.yaml``; None for any other recipe."""
    if recipe is None:
        return None
    path = Path(recipe)
    if path.parent.name != "ablations":
        return None
    for prefix in ABLATION_PREFIXES:
        if path.stem.startswith(prefix):
            return path.stem.removeprefix(prefix)
    return path.stem


def dataset_label(name: str | None, config: str | None = None) -> str:
    """How a ``load_dataset`` target is named in tables: ``path`` or ``path:config``."""
    return f"{name}:{config}" if config else str(name)


def write_run_info(
    output_dir: Path,
    *,
    trainer: str,
    base_model: str,
    training_data: Sequence[str],
    argv: Sequence[str] = (),
    settings: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``<output_dir>/run_info.json``; ``settings`` holds the choices that tell runs of one trainer apart."""
    recipe = recipe_from_argv(argv)
    info = {
        "trainer": trainer,
        "base_model": base_model,
        "training_data": list(training_data),
        "recipe": recipe,
        "ablation": ablation_name(recipe),
        "settings": dict(settings or {}),
    }
    path = Path(output_dir) / RUN_INFO_FILE
    path.write_text(json.dumps(info, indent=2, default=str) + "\n", encoding="utf-8")
    return path


def read_run_info(folder: Path) -> dict[str, Any] | None:
    """The run information saved in ``folder``, or None when it holds none (or none that can be read)."""
    path = Path(folder) / RUN_INFO_FILE
    if not path.is_file():
        return None
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        return None
    return info if isinstance(info, dict) else None
