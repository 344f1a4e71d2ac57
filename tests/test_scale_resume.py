"""A local datatrove task killed with kill -9 mid-way: the rerun runs only that task, pays no request twice, and the
rows equal an uninterrupted run's, a Ray run's and the one-machine build's given the same answers."""

from __future__ import annotations

import json
import math
import shutil
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import pytest
from datasets import load_dataset

from tests.build_helpers import kill_when
from tests.fault_proxy import FaultProxy

pytestmark = pytest.mark.slow

DOCS = 6  # 3 tasks of 2 documents


def write_recipe(tmp_path: Path) -> Path:
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        f"""dataset_name: Test Pile
output_dir: {tmp_path / "out"}
sources:
  - name: aqua_rat
    path: mathcode_pile/data/samples/aqua_rat.jsonl
    text_template: "{{question}}\\n\\n{{rationale}}"
    max_docs: {DOCS}
stages: [translate, parse_computations]
translate_max_new_tokens: 48
llm_max_concurrency: 2
llm_model: smollm2-test
token_count_tokenizer: none
executor: local
tasks: 3
workers: 1
""",
        encoding="utf-8",
    )
    return recipe


def command(recipe: Path, endpoint: str, output: Path, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "mathcode_pile.cli", "build", "--config", str(recipe),
        "--endpoint", endpoint, "--output", str(output), *extra,
    ]  # fmt: skip


def rows_by_id(folder: Path) -> list[dict]:
    rows = load_dataset(str(folder), split="train").to_list()
    cleaned = [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()} for r in rows]
    return sorted(cleaned, key=lambda row: row["id"])


def test_killed_task_is_rerun_alone_and_pays_nothing_twice(
    embedded_server, tmp_path: Path, repo_root: Path, monkeypatch
) -> None:
    monkeypatch.chdir(repo_root)
    recipe = write_recipe(tmp_path)
    resumed = tmp_path / "resumed"
    work = Path(f"{resumed}_work")
    with FaultProxy(embedded_server.url) as proxy:

        def task_1_mid_way() -> bool:
            completions = list(work.glob("scale/*/logs/02_parse_computations/completions/00000"))
            return bool(completions) and sum(proxy.completed_bodies.values()) >= 3  # task 1 has one answer of two

        kill_when(command(recipe, proxy.url, resumed), task_1_mid_way)
        paid_before_kill = set(proxy.completed_bodies)
        (root,) = (work / "scale").iterdir()
        logs = root / "logs" / "02_parse_computations" / "logs"
        task_0_log = (logs / "task_00000.log").read_text()
        assert not (root / "logs" / "02_parse_computations" / "completions" / "00001").exists()

        subprocess.run(command(recipe, proxy.url, resumed), check=True, capture_output=True)
        assert all(proxy.completed_bodies[body] == 1 for body in paid_before_kill)  # 0 requests repaid
        assert sum(proxy.completed_bodies.values()) == len(proxy.completed_bodies) == DOCS
        assert (logs / "task_00000.log").read_text() == task_0_log  # the complete task was skipped
        assert "Launching pipeline for rank=1" in (logs / "task_00001.log").read_text()

        # an uninterrupted local run with the same answers (the per-task caches) writes the same rows
        reference = tmp_path / "reference"
        (Path(f"{reference}_work")).mkdir()
        shutil.copytree(work / "llm_cache", Path(f"{reference}_work") / "llm_cache")
        subprocess.run(command(recipe, proxy.url, reference, "--overwrite"), check=True, capture_output=True)
        # so does a local Ray cluster's run, its tasks reading the same per-task caches
        on_ray = tmp_path / "ray"
        Path(f"{on_ray}_work").mkdir()
        shutil.copytree(work / "llm_cache", Path(f"{on_ray}_work") / "llm_cache")
        extra_ray = ("--overwrite", "--executor", "ray", "--ray_num_cpus", "2")
        subprocess.run(command(recipe, proxy.url, on_ray, *extra_ray), check=True, capture_output=True)
        # the one-machine build, given the tasks' answers merged into one cache, writes the same rows too
        merged = tmp_path / "answers.sqlite"
        with closing(sqlite3.connect(merged)) as target:
            target.execute("CREATE TABLE responses (key TEXT PRIMARY KEY, response TEXT NOT NULL)")
            for cache in sorted((work / "llm_cache").glob("task-*.sqlite")):
                with closing(sqlite3.connect(cache)) as source:
                    target.executemany("INSERT OR IGNORE INTO responses VALUES (?, ?)",
                                       source.execute("SELECT key, response FROM responses"))  # fmt: skip
            target.commit()
        one_machine = tmp_path / "one_machine"
        extra = ("--executor", "datasets", "--llm_cache_path", str(merged))
        subprocess.run(command(recipe, proxy.url, one_machine, *extra), check=True, capture_output=True)
        assert sum(proxy.completed_bodies.values()) == DOCS  # both were answered from the caches alone

    expected = rows_by_id(resumed)
    assert len(expected) == DOCS
    assert rows_by_id(reference) == expected
    assert rows_by_id(one_machine) == expected
    assert rows_by_id(on_ray) == expected
    stats = {s["stage"]: s for s in json.loads((resumed / "stats.json").read_text())}
    assert stats["translate"]["rows_in"] == DOCS
