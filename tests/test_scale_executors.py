"""The build past one machine: the demo's pre-translation stages under datasets, local and Ray give the same rows;
Slurm job scripts; clear errors; a task that keeps failing stops the build with its rank and log."""

from __future__ import annotations

import itertools
import json
import math
import os
import stat
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from datasets import load_dataset

from mathcode_pile.config import RecipeError
from mathcode_pile.pipeline import build_pile, parse_build_configs

pytestmark = pytest.mark.slow

DEMO = "recipes/mathcode_pile/demo.yaml"
PRE_TRANSLATION = ["--stages", "code_math_filter", "math_classify", "dedup", "decontaminate", "mixture"]


def build(output: Path, *overrides: str) -> Path:
    configs = parse_build_configs(
        DEMO, [*PRE_TRANSLATION, "--output_dir", str(output), "--token_count_tokenizer", "none", *overrides]
    )
    return build_pile(configs)


def rows_by_id(folder: Path) -> list[dict]:
    rows = load_dataset(str(folder), split="train").to_list()
    cleaned = [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()} for r in rows]
    return sorted(cleaned, key=lambda row: row["id"])


def stats_without_time(folder: Path) -> list[dict]:
    stats = json.loads((folder / "stats.json").read_text())
    return [{k: v for k, v in s.items() if k not in ("seconds", "extra")} for s in stats]


@pytest.fixture(scope="module")
def one_machine(tmp_path_factory: pytest.TempPathFactory, repo_root: Path) -> Path:
    os.chdir(repo_root)
    return build(tmp_path_factory.mktemp("datasets") / "out", "--executor", "datasets")


@pytest.fixture(scope="module")
def ray_cluster():
    import ray

    ray.init(num_cpus=2, include_dashboard=False)
    yield
    ray.shutdown()


def test_local_executor_keeps_the_same_rows_as_one_machine(one_machine: Path, tmp_path: Path) -> None:
    local = build(tmp_path / "local", "--executor", "local", "--tasks", "3", "--workers", "2")
    assert load_dataset(str(local), split="train").features == load_dataset(str(one_machine), split="train").features
    expected = rows_by_id(one_machine)
    assert expected and rows_by_id(local) == expected
    assert stats_without_time(local) == stats_without_time(one_machine)
    # the dropped rows went to the exclusion writers with their reasons
    reasons = {
        reason
        for path in Path(f"{local}_work").glob("scale/*/dropped/*/*.parquet")
        for reason in pq.read_table(path).column("_drop_reason").to_pylist()
    }
    assert reasons == {"no_math_import", "not_math", "near_duplicate", "contaminated_gsm8k"}
    card = (local / "README.md").read_text()
    assert "datatrove's multi-stage MinHash" in card and "(datasketch)" not in card
    assert "MinHash LSH (datasketch)" in (one_machine / "README.md").read_text()


def test_ray_executor_keeps_the_same_rows_as_one_machine(one_machine: Path, tmp_path: Path, ray_cluster) -> None:
    on_ray = build(tmp_path / "ray", "--executor", "ray", "--tasks", "3")
    assert rows_by_id(on_ray) == rows_by_id(one_machine)
    assert stats_without_time(on_ray) == stats_without_time(one_machine)


def test_a_task_failing_every_time_stops_the_build_with_its_rank_and_log(one_machine: Path, tmp_path: Path) -> None:
    output = tmp_path / "local"
    build(output, "--executor", "local", "--tasks", "3", "--workers", "1")
    (root,) = (Path(f"{output}_work") / "scale").iterdir()
    (root / "00_input" / "00001.parquet").write_bytes(b"not parquet")  # task 1's input is now unreadable
    for marker in (root / "logs" / "02_math_classify" / "completions").iterdir():
        marker.unlink()
    with pytest.raises(RecipeError, match=r"task 1 failed 3 time\(s\).*task_00001\.log") as error:
        build(output, "--executor", "local", "--tasks", "3", "--workers", "1")
    log = Path(str(error.value).rsplit("see its log ", 1)[1])
    assert log.is_file() and "00001.parquet" in log.read_text()
    # task 0 completed on the first attempt and was skipped by the retries; task 1 never completed
    completed = {p.name for p in (root / "logs" / "02_math_classify" / "completions").iterdir()}
    assert "00000" in completed and "00001" not in completed
    assert "Parquet magic bytes not found" in log.read_text()  # the cause, in the task's own log


def test_unknown_executor_names_the_choices() -> None:
    with pytest.raises(RecipeError, match="executor 'spark' is unknown; use one of datasets, local, ray, slurm"):
        parse_build_configs(DEMO, ["--executor", "spark"])


def test_slurm_without_sbatch_says_what_to_do(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(RecipeError, match="'sbatch' is not on PATH"):
        build(tmp_path / "out", "--executor", "slurm")


def test_missing_datatrove_names_the_extra(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "datatrove", None)  # what `import datatrove` meets when it is not installed
    expected = r"needs datatrove, which is not installed .*pip install 'mathcode\[scale\]'"
    with pytest.raises(RecipeError, match=expected):
        build(tmp_path / "out", "--executor", "local")


RECORDING_SBATCH = """#!/bin/sh
# records each submission: its arguments and the job script, and answers like sbatch does
n=$(ls "$SBATCH_RECORD" | grep -c '\\.args$')
n=$((n + 1))
echo "$@" > "$SBATCH_RECORD/$n.args"
for last; do :; done
cp "$last" "$SBATCH_RECORD/$n.slurm"
echo "Submitted batch job $((1000 + n))"
"""


def test_slurm_job_scripts_for_512_tasks(tmp_path: Path, monkeypatch) -> None:
    bin_dir, record = tmp_path / "bin", tmp_path / "record"
    bin_dir.mkdir()
    record.mkdir()
    sbatch = bin_dir / "sbatch"
    sbatch.write_text(RECORDING_SBATCH)
    sbatch.chmod(sbatch.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("SBATCH_RECORD", str(record))
    env_line = "source /opt/mathcode/.venv/bin/activate"
    build(tmp_path / "out", "--executor", "slurm", "--tasks", "512", "--slurm_partition", "cpu",
          "--slurm_env_command", env_line, "--slurm_time", "02:00:00")  # fmt: skip
    jobs = []
    for number in range(1, len(list(record.glob("*.args"))) + 1):
        script = (record / f"{number}.slurm").read_text()
        args = (record / f"{number}.args").read_text().split()
        name = next(line.split("=", 1)[1] for line in script.splitlines() if line.startswith("#SBATCH --job-name="))
        jobs.append({"id": str(1000 + number), "name": name, "script": script, "args": args})
    steps = [job for job in jobs if "launch_pickled_pipeline" in job["script"]]
    names = [job["name"] for job in steps]
    assert names == [
        "mathcode_02_math_classify", "mathcode_03_minhash_signatures", "mathcode_03_minhash_buckets",
        "mathcode_03_minhash_clusters", "mathcode_05_mixture",
    ]  # fmt: skip
    by_name = {job["name"]: job for job in steps}

    def array(job: dict) -> str:
        return next(line for line in job["script"].splitlines() if line.startswith("#SBATCH --array="))

    def dependency(job: dict) -> str | None:
        return next((a.split("=", 1)[1] for a in job["args"] if a.startswith("--dependency=")), None)

    assert array(by_name["mathcode_02_math_classify"]) == "#SBATCH --array=0-511"
    assert array(by_name["mathcode_03_minhash_signatures"]) == "#SBATCH --array=0-511"
    assert array(by_name["mathcode_03_minhash_clusters"]) == "#SBATCH --array=0-0%1"
    assert array(by_name["mathcode_05_mixture"]) == "#SBATCH --array=0-511"
    # each MinHash step waits for the one before it to succeed
    for before, after in itertools.pairwise(names):
        assert dependency(by_name[after]) == f"afterok:{by_name[before]['id']}"
    assert dependency(by_name["mathcode_02_math_classify"]) is None
    for job in steps:
        assert env_line in job["script"]
        assert "#SBATCH --partition=cpu" in job["script"]
        assert "#SBATCH --time=02:00:00" in job["script"]
