"""End to end: sources → LLM stage on the real server → Parquet + card → ``load_dataset``; resume after kill -9."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import pytest
from datasets import load_dataset

from mathcode_pile.card import validate_dataset_card
from mathcode_pile.pipeline import build_pile, parse_build_configs
from tests.build_helpers import kill_build_after_shard
from tests.fault_proxy import FaultProxy

pytestmark = pytest.mark.slow

SAMPLE = "mathcode_pile/data/samples/aqua_rat.jsonl"


def write_recipe(tmp_path: Path, docs: int, shard_rows: int) -> Path:
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        f"""dataset_name: Test Pile
output_dir: {tmp_path / "out"}
shard_rows: {shard_rows}
sources:
  - name: aqua_rat
    path: {SAMPLE}
    text_template: "{{question}}\\n\\n{{rationale}}"
    max_docs: {docs}
stages: [translate]
translate_max_new_tokens: 48
llm_max_concurrency: 2
llm_model: smollm2-test
""",
        encoding="utf-8",
    )
    return recipe


def test_build_writes_a_loadable_dataset_and_a_rerun_pays_nothing(
    embedded_server, tmp_path: Path, repo_root: Path, monkeypatch
) -> None:
    monkeypatch.chdir(repo_root)
    recipe = write_recipe(tmp_path, docs=4, shard_rows=2)
    with FaultProxy(embedded_server.url) as proxy:
        output = build_pile(parse_build_configs(recipe, ["--llm_endpoint", proxy.url]))
        assert proxy.counts["forwarded"] == 4

        dataset = load_dataset(str(output), split="train")
        assert len(dataset) == 4
        assert set(dataset.column_names) == {"id", "text", "source", "metadata", "translation_response"}
        assert dataset["source"] == ["aqua_rat"] * 4
        assert all(dataset["translation_response"])

        card_text = (output / "README.md").read_text()
        validate_dataset_card(card_text, output)
        assert "| translate | 4 | 4 | 0 |" in card_text
        stats = json.loads((output / "stats.json").read_text())
        assert [s["stage"] for s in stats] == ["load_sources", "translate"]
        assert stats[1]["extra"]["llm_requests"] == 4

        # forget the finished shards: the stage runs again but every answer comes from the request cache
        for marker in (tmp_path / "out_work" / "01_translate").glob("*.done.json"):
            marker.unlink()
        build_pile(parse_build_configs(recipe, ["--llm_endpoint", proxy.url]))
        assert proxy.counts["forwarded"] == 4
    rerun_stats = json.loads((output / "stats.json").read_text())
    assert rerun_stats[1]["extra"].get("llm_requests", 0) == 0
    assert rerun_stats[1]["extra"]["llm_cache_hits"] == 4
    assert load_dataset(str(output), split="train")["translation_response"] == dataset["translation_response"]


def build_command(recipe: Path, endpoint: str, output: Path) -> list[str]:
    return [
        sys.executable, "-m", "mathcode_pile.cli", "build", "--config", str(recipe),
        "--endpoint", endpoint, "--output", str(output),
    ]  # fmt: skip


def test_kill_minus_9_then_rerun_gives_byte_identical_output(
    embedded_server, tmp_path: Path, repo_root: Path, monkeypatch
) -> None:
    """A killed and resumed build writes the same bytes as one uninterrupted build given the same LLM answers.

    The uninterrupted build reads the resumed build's request cache, so both see identical answers: llama.cpp reuses
    the KV cache of the previous prompt's common prefix, which makes greedy output depend on the order in which
    concurrent requests reach the server. What is compared is therefore the pipeline (shards, resume, ordering,
    Parquet writing), not the model's arithmetic.
    """
    monkeypatch.chdir(repo_root)
    recipe = write_recipe(tmp_path, docs=8, shard_rows=2)
    resumed = tmp_path / "resumed"
    resumed_work = Path(f"{resumed}_work")
    with FaultProxy(embedded_server.url) as proxy:
        kill_build_after_shard(build_command(recipe, proxy.url, resumed), resumed_work / "01_translate", shard=1)
        paid_before_kill = set(proxy.completed_bodies)
        assert paid_before_kill and not (resumed / "data").exists()

        subprocess.run(build_command(recipe, proxy.url, resumed), check=True, capture_output=True)
        # every request answered before the kill came from the cache afterwards: none was paid twice
        assert all(proxy.completed_bodies[body] == 1 for body in paid_before_kill)
        assert sum(proxy.completed_bodies.values()) == len(proxy.completed_bodies) == 8

        reference = tmp_path / "reference"
        shared_answers = tmp_path / "answers.sqlite"
        # SQLite's backup API copies the WAL's committed pages too, which a plain file copy could miss
        source = closing(sqlite3.connect(resumed_work / "llm_cache.sqlite"))
        with source as answers, closing(sqlite3.connect(shared_answers)) as target:
            answers.backup(target)
        command = [*build_command(recipe, proxy.url, reference), "--llm_cache_path", str(shared_answers)]
        subprocess.run(command, check=True, capture_output=True)
        assert sum(proxy.completed_bodies.values()) == 8  # the uninterrupted build was answered from the cache alone

    reference_files = sorted(str(p.relative_to(reference / "data")) for p in (reference / "data").rglob("*.parquet"))
    assert reference_files == sorted(
        str(p.relative_to(resumed / "data")) for p in (resumed / "data").rglob("*.parquet")
    )
    assert reference_files
    for name in reference_files:
        assert (reference / "data" / name).read_bytes() == (resumed / "data" / name).read_bytes()
    assert len(load_dataset(str(resumed), split="train")) == 8  # no document lost or doubled
