"""The stage framework: counters, drop reasons, resumable shards, fingerprints, num_proc."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from datasets import Dataset

from mathcode_pile.config import ValidatedConfig
from mathcode_pile.runner import StageResult, run_stage
from mathcode_pile.stages.base import DROP_COLUMN, Batch, Stage, StageContext


@dataclass
class LengthFilterConfig(ValidatedConfig):
    min_chars: int = field(default=3, metadata={"help": "shorter texts are dropped"})


CALLS: Counter[str] = Counter()


class LengthFilterStage(Stage):
    """Drops short texts, upper-cases the rest; counts its calls so tests can see what was recomputed."""

    name = "length_filter"
    config_class = LengthFilterConfig
    batch_size = 4

    def process_batch(self, batch: Batch) -> Batch:
        CALLS["batches"] += 1
        reasons = [None if len(t) >= self.config.min_chars else "too_short" for t in batch["text"]]
        return {**batch, "text": [t.upper() for t in batch["text"]], DROP_COLUMN: reasons}


def make_dataset(n: int = 20) -> Dataset:
    return Dataset.from_dict({"id": [str(i) for i in range(n)], "text": ["x" * (i % 6) for i in range(n)]})


def run(tmp_path: Path, dataset: Dataset, min_chars: int = 3, num_proc: int = 1, shard_rows: int = 6):
    stage = LengthFilterStage(LengthFilterConfig(min_chars=min_chars), StageContext(tmp_path, num_proc=num_proc))
    return run_stage(stage, dataset, "input-fp", tmp_path / "stage", shard_rows=shard_rows)


def test_counts_kept_and_dropped_by_reason(tmp_path: Path) -> None:
    result = run(tmp_path, make_dataset())
    expected_kept = sum(1 for i in range(20) if i % 6 >= 3)
    assert result.stats.rows_in == 20
    assert result.stats.rows_kept == expected_kept == len(result.dataset)
    assert result.stats.dropped == Counter({"too_short": 20 - expected_kept})
    assert DROP_COLUMN not in result.dataset.column_names
    assert all(t.isupper() for t in result.dataset["text"])
    dropped_files = sorted((tmp_path / "stage").glob("*.dropped.parquet"))
    assert sum(len(Dataset.from_parquet(str(f))) for f in dropped_files) == 20 - expected_kept
    summary = json.loads((tmp_path / "stage" / "_SUCCESS.json").read_text())
    assert summary["rows_dropped"] == 20 - expected_kept


def test_rerun_skips_finished_shards_and_gives_the_same_rows(tmp_path: Path) -> None:
    first = run(tmp_path, make_dataset())
    CALLS.clear()
    second = run(tmp_path, make_dataset())
    assert CALLS["batches"] == 0
    assert second.dataset.to_list() == first.dataset.to_list()
    assert {**second.stats.to_dict(), "seconds": 0} == {**first.stats.to_dict(), "seconds": 0}


def test_missing_marker_recomputes_only_that_shard(tmp_path: Path) -> None:
    first = run(tmp_path, make_dataset())
    (tmp_path / "stage" / "shard-00002.done.json").unlink()
    CALLS.clear()
    second = run(tmp_path, make_dataset())
    assert CALLS["batches"] == 2  # shard 2 holds 6 rows = 2 batches of 4
    assert second.dataset.to_list() == first.dataset.to_list()


def test_config_change_invalidates_previous_shards(tmp_path: Path) -> None:
    run(tmp_path, make_dataset(), min_chars=3)
    CALLS.clear()
    changed = run(tmp_path, make_dataset(), min_chars=5)
    assert CALLS["batches"] > 0
    assert changed.stats.rows_kept == sum(1 for i in range(20) if i % 6 >= 5)


def test_version_bump_changes_the_fingerprint(tmp_path: Path) -> None:
    stage = LengthFilterStage(LengthFilterConfig(), StageContext(tmp_path))
    before = stage.fingerprint("x")

    class Bumped(LengthFilterStage):
        version = "2"

    assert Bumped(LengthFilterConfig(), StageContext(tmp_path)).fingerprint("x") != before
    assert stage.fingerprint("y") != before


def test_num_proc_gives_the_same_output(tmp_path: Path) -> None:
    single = run(tmp_path / "one", make_dataset(40), num_proc=1, shard_rows=40)
    double = run(tmp_path / "two", make_dataset(40), num_proc=2, shard_rows=40)
    assert double.dataset.to_list() == single.dataset.to_list()


def test_empty_input_produces_empty_output(tmp_path: Path) -> None:
    result = run(tmp_path, make_dataset(0))
    assert len(result.dataset) == 0 and result.stats.rows_in == 0


def test_wrong_config_type_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="needs a LengthFilterConfig"):
        LengthFilterStage(object(), StageContext(tmp_path))


class LateDropStage(LengthFilterStage):
    """Keeps every row of the first batch and drops in a later one (the column type must survive that)."""

    name = "late_drop"
    batch_size = 2

    def process_batch(self, batch: Batch) -> Batch:
        reasons = [None if int(i) < 4 else "late" for i in batch["id"]]
        return {**batch, DROP_COLUMN: reasons}


def test_a_drop_after_an_all_kept_first_batch_is_recorded(tmp_path: Path) -> None:
    stage = LateDropStage(LengthFilterConfig(), StageContext(tmp_path))
    result = run_stage(stage, make_dataset(8), "fp", tmp_path / "late", shard_rows=8)
    assert result.dataset["id"] == ["0", "1", "2", "3"]
    assert result.stats.dropped == Counter({"late": 4})


#: Ids the flaky stage below fails on (an endpoint that gave up on them this time).
UNREACHABLE: set[str] = set()


class FlakyEndpointStage(Stage):
    """Drops the rows in ``UNREACHABLE`` as ``endpoint_gave_up`` (worth retrying) and short texts as ``too_short``."""

    name = "flaky_endpoint"
    config_class = LengthFilterConfig
    batch_size = 4
    retry_drop_reasons = frozenset({"endpoint_gave_up"})

    def process_batch(self, batch: Batch) -> Batch:
        CALLS["batches"] += 1
        reasons = [
            "endpoint_gave_up" if i in UNREACHABLE else None if len(t) >= self.config.min_chars else "too_short"
            for i, t in zip(batch["id"], batch["text"], strict=True)
        ]
        return {**batch, DROP_COLUMN: reasons}


def test_shards_with_retryable_drops_run_again_and_change_the_output_fingerprint(tmp_path: Path) -> None:
    def run_flaky() -> StageResult:
        stage = FlakyEndpointStage(LengthFilterConfig(), StageContext(tmp_path))
        return run_stage(stage, make_dataset(), "input-fp", tmp_path / "stage", shard_rows=6)

    UNREACHABLE.update({"4", "15"})  # shards 0 and 2 of four
    first = run_flaky()
    assert first.stats.dropped["endpoint_gave_up"] == 2
    assert (tmp_path / "stage" / "shard-00002.dropped.parquet").exists()

    UNREACHABLE.clear()
    CALLS.clear()
    second = run_flaky()
    assert CALLS["batches"] == 4  # shards 0 and 2 again (2 batches each); shards 1 and 3 reused
    assert "endpoint_gave_up" not in second.stats.dropped
    assert {"4", "15"} <= set(second.dataset["id"])
    assert second.stats.rows_kept == first.stats.rows_kept + 2
    # the stages after this one see new rows, so they must not reuse what they cut from the first output
    assert second.fingerprint != first.fingerprint
    dropped_again = Dataset.from_parquet(str(tmp_path / "stage" / "shard-00002.dropped.parquet"))
    assert "15" not in dropped_again["id"]

    CALLS.clear()
    third = run_flaky()
    assert CALLS["batches"] == 0 and third.fingerprint == second.fingerprint


class TaggingStage(Stage):
    """Drops short texts and records the text length in ``metadata``: ``text`` and ``id`` are never rewritten."""

    name = "tagging"
    config_class = LengthFilterConfig
    batch_size = 4

    def process_batch(self, batch: Batch) -> Batch:
        reasons = [None if len(t) >= self.config.min_chars else "too_short" for t in batch["text"]]
        metadata = [json.dumps({"chars": len(t)}) for t in batch["text"]]
        return {**batch, "metadata": metadata, "score": [len(t) / 10 for t in batch["text"]], DROP_COLUMN: reasons}


class DeclaredTaggingStage(TaggingStage):
    rewrites_columns = frozenset({"metadata"})


@pytest.mark.parametrize("num_proc", [1, 2])
def test_columns_a_stage_does_not_rewrite_pass_through_unchanged(tmp_path: Path, num_proc: int) -> None:
    dataset = make_dataset(20).add_column("metadata", ["{}"] * 20)
    results = []
    for stage_class in (TaggingStage, DeclaredTaggingStage):
        stage = stage_class(LengthFilterConfig(), StageContext(tmp_path, num_proc=num_proc))
        results.append(run_stage(stage, dataset, "fp", tmp_path / stage_class.__name__, shard_rows=10))
    copied, passed = results
    assert passed.dataset.column_names == copied.dataset.column_names == ["id", "text", "metadata", "score"]
    assert passed.dataset.to_list() == copied.dataset.to_list()
    assert passed.stats.dropped == copied.stats.dropped
    kept_ids = [str(i) for i in range(20) if i % 6 >= 3]
    assert passed.dataset["id"] == kept_ids and json.loads(passed.dataset["metadata"][0]) == {"chars": 3}
    assert not list((tmp_path / "DeclaredTaggingStage").glob("*.scratch")), "scratch folders are removed"
