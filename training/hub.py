"""Publishing a trained model: stage the exact upload folder, then hand it to ``mathcode_pile.hub.push_folder_to_hub``.

The output folder also holds checkpoints and logs that do not belong on the Hub, so the files that do (weights,
config, tokenizer, card, plots, training metrics) are linked into ``<output_dir>/hub_upload``. A dry run, or any
run with ``HF_HUB_OFFLINE`` set, stops after staging: that folder is then exactly what would have been uploaded.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

from mathcode_pile.hub import push_folder_to_hub

logger = logging.getLogger(__name__)

UPLOAD_DIR_NAME = "hub_upload"
#: Sub-folders of the output folder that are uploaded with the model (the card links them).
UPLOADED_SUBFOLDERS = ("plots",)


def _link_or_copy(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)
    except OSError:  # another file system, or links not allowed
        shutil.copy2(source, target)


def stage_upload_folder(output_dir: Path) -> Path:
    """Rebuild ``<output_dir>/hub_upload`` from the top-level files of ``output_dir`` and its plots."""
    staging = output_dir / UPLOAD_DIR_NAME
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    for path in sorted(output_dir.iterdir()):
        if path.name.startswith("."):
            continue
        if path.is_file():
            _link_or_copy(path, staging / path.name)
        elif path.is_dir() and path.name in UPLOADED_SUBFOLDERS:
            for file in sorted(p for p in path.rglob("*") if p.is_file()):
                _link_or_copy(file, staging / file.relative_to(output_dir))
    if not (staging / "README.md").is_file():
        raise FileNotFoundError(f"{output_dir} has no README.md model card; it is rendered before upload")
    return staging


def hub_is_offline() -> bool:
    from huggingface_hub import is_offline_mode

    return is_offline_mode()


def publish_model(output_dir: Path, repo_id: str, private: bool = False, dry_run: bool = False) -> list[str]:
    """Stage and upload (or, dry or offline, only stage and list) the model folder; returns the uploaded paths."""
    staging = stage_upload_folder(output_dir)
    if not dry_run and hub_is_offline():
        logger.warning("HF_HUB_OFFLINE is set: dry run only; the upload folder is %s", staging)
        dry_run = True
    files = push_folder_to_hub(
        staging,
        repo_id,
        "model",
        private=private,
        dry_run=dry_run,
        commit_message="Upload model trained with MathCode",
    )
    if dry_run:
        logger.info("dry run: %d file(s) staged for %s in %s", len(files), repo_id, staging)
    return files
