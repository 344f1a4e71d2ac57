"""Helpers for tests that run ``mathcode-pile build`` on small recipes and files written into ``tmp_path``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mathcode_pile.cli import main

#: A recipe without LLM stages and without a tokenizer: a build takes about a second.
BASE_RECIPE = "token_count_tokenizer: none\noutput_dir: out\n"


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def write_recipe(folder: Path, sources: str | None = None, stages: str = "[]", extra: str = "") -> Path:
    """``folder/r.yaml``: one source ``s`` over ``a.jsonl`` (three documents, written here) unless ``sources`` (the
    YAML lines of the ``sources:`` list) says otherwise."""
    if sources is None:
        write_jsonl(folder / "a.jsonl", [{"text": f"document number {i} about algebra and numbers"} for i in range(3)])
        sources = "  - name: s\n    path: a.jsonl\n"
    recipe = folder / "r.yaml"
    recipe.write_text(f"{BASE_RECIPE}sources:\n{sources}stages: {stages}\n{extra}", encoding="utf-8")
    return recipe


def run_build(capsys: pytest.CaptureFixture[str], *arguments: str) -> tuple[int, str]:
    """``mathcode-pile build --config r.yaml ARGS`` in the current folder: its exit code and what it printed."""
    code = main(["build", "--config", "r.yaml", *arguments])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def output_rows(folder: Path) -> list[dict[str, Any]]:
    files = sorted((folder / "data").rglob("*.parquet"))
    assert files, f"no Parquet file in {folder / 'data'}"
    return pa.concat_tables([pq.read_table(path) for path in files]).to_pylist()


def load_stats(folder: Path) -> dict[str, Any]:
    """The ``load_sources`` entry of a build's ``stats.json``."""
    return json.loads((folder / "stats.json").read_text(encoding="utf-8"))[0]
