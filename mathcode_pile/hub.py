"""Publishing a built folder to the Hub: a thin layer over ``HfApi.upload_folder`` with retries on transient errors.

Rendering never happens here: the folder is complete (Parquet, card, stats, plots) before this is called, so a dry
run shows exactly what would be uploaded.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal

from tenacity import retry, retry_if_exception, stop_after_attempt, wait_random_exponential

from mathcode_pile.llm.client import is_transient
from mathcode_pile.output_dirs import MARKER_NAME

logger = logging.getLogger(__name__)


def list_upload_files(folder: Path) -> list[str]:
    """Every file of ``folder`` but the marker that says which command wrote it (a local fact, not the dataset's)."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file() and p.name != MARKER_NAME)


def push_folder_to_hub(
    folder: Path,
    repo_id: str,
    repo_type: Literal["dataset", "model"] = "dataset",
    private: bool = False,
    dry_run: bool = False,
    commit_message: str = "Upload with MathCode",
) -> list[str]:
    """Upload ``folder`` to ``repo_id``; with ``dry_run`` only list the files. Returns the uploaded paths."""
    files = list_upload_files(folder)
    if dry_run:
        logger.info(
            "dry run: would upload %d file(s) from %s to %s (%s): %s", len(files), folder, repo_id, repo_type, files
        )
        return files
    from huggingface_hub import HfApi

    api = HfApi()

    @retry(
        retry=retry_if_exception(is_transient),
        wait=wait_random_exponential(multiplier=1, max=60),
        stop=stop_after_attempt(5),
        reraise=True,
    )
    def _upload() -> None:
        api.create_repo(repo_id, repo_type=repo_type, private=private, exist_ok=True)
        api.upload_folder(
            folder_path=str(folder),
            repo_id=repo_id,
            repo_type=repo_type,
            commit_message=commit_message,
            ignore_patterns=[MARKER_NAME, f"**/{MARKER_NAME}"],
        )

    _upload()
    logger.info(
        "uploaded %d file(s) to https://huggingface.co/%s%s",
        len(files),
        "datasets/" if repo_type == "dataset" else "",
        repo_id,
    )
    return files
