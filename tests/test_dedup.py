"""MinHash LSH dedup: near-duplicates across sources removed, one kept per cluster, resumable keep-first."""

from __future__ import annotations

import json
from pathlib import Path

from datasets import Dataset

from mathcode_pile.dedup import NearDuplicateIndex, deduplicate_texts, shingles
from mathcode_pile.paths import SAMPLES_DIR
from mathcode_pile.runner import run_stage
from mathcode_pile.sources import document_metadata
from mathcode_pile.stages.base import StageContext
from mathcode_pile.stages.dedup import SIGNATURES_DIR, DedupConfig, DedupStage


def aqua_documents(count: int) -> list[str]:
    lines = (SAMPLES_DIR / "aqua_rat.jsonl").read_text(encoding="utf-8").splitlines()[:count]
    return [f"{row['question']}\n\n{row['rationale']}" for row in map(json.loads, lines)]


def reworded(text: str) -> str:
    """A re-post: another header, upper-cased first line, extra spaces, a closing remark."""
    first, _, rest = text.partition("\n")
    return f"Reposted from a forum.\n{first.upper()}\n{rest.replace(' ', '  ')}\nThanks for reading!"


def test_shingles_use_normalized_words() -> None:
    assert shingles("A  b C d E f!", 5) == shingles("a b c d e f", 5) == {b"a b c d e", b"b c d e f"}
    assert shingles("one two", 5) == {b"one two"}
    assert shingles("$$ + $$", 5) == {b"$$ + $$"} and shingles("", 5) == set()


def test_near_duplicates_are_found_and_distinct_documents_kept() -> None:
    docs = aqua_documents(30)
    texts = [*docs, reworded(docs[3]), reworded(docs[17]), docs[5]]
    keys = [f"doc-{i}" for i in range(len(texts))]
    decisions = deduplicate_texts(keys, texts)
    dropped = {keys[i]: d.key for i, d in enumerate(decisions) if d is not None}
    assert dropped == {"doc-30": "doc-3", "doc-31": "doc-17", "doc-32": "doc-5"}
    assert all(decisions[i] is None for i in range(30))  # the originals: first of their cluster


def test_threshold_is_configurable() -> None:
    base = aqua_documents(1)[0]
    words = base.split()
    cut = len(words) * 7 // 10
    half_changed = " ".join(words[:cut] + [f"changed{i}" for i in range(len(words) - cut)])  # Jaccard about 0.5
    assert deduplicate_texts(["a", "b"], [base, half_changed], threshold=0.9)[1] is None
    assert deduplicate_texts(["a", "b"], [base, half_changed], threshold=0.3)[1] is not None


def test_a_key_already_indexed_is_kept_not_matched_with_itself() -> None:
    index = NearDuplicateIndex()
    (signature,) = index.signatures(["the same document, seen again after an interrupted run"])
    assert index.check_and_add("k", signature) is None
    assert index.check_and_add("k", signature) is None and len(index) == 1
    assert index.check_and_add("other", signature).key == "k"


def make_dataset(texts_by_source: list[tuple[str, str]]) -> Dataset:
    return Dataset.from_dict(
        {
            "id": [f"{source}/{i}" for i, (source, _) in enumerate(texts_by_source)],
            "text": [text for _, text in texts_by_source],
            "source": [source for source, _ in texts_by_source],
            "metadata": ["{}"] * len(texts_by_source),
        }
    )


def test_stage_removes_cross_source_duplicates_and_resumes_with_its_index(tmp_path: Path) -> None:
    docs = aqua_documents(12)
    rows = [("aqua", text) for text in docs[:8]] + [("web", reworded(docs[1])), ("web", docs[9])]
    rows += [("forum", reworded(docs[9])), ("forum", reworded(docs[6])), ("web", docs[10])]
    dataset = make_dataset(rows)
    context = StageContext(work_dir=tmp_path, num_proc=2)
    stage = DedupStage(DedupConfig(), context)
    assert stage.context.num_proc == 1  # keep-first is sequential whatever the build asks for
    result = run_stage(stage, dataset, "input-fp", tmp_path / "03_dedup", shard_rows=4)
    assert result.stats.dropped == {"near_duplicate": 3}
    assert result.stats.extra["cross_source_duplicates"] == 3
    kept_ids = result.dataset["id"]
    assert "web/8" not in kept_ids and "forum/10" not in kept_ids and "forum/11" not in kept_ids
    assert "web/9" in kept_ids  # first of its cluster, although its duplicate came from another source
    dropped = Dataset.from_parquet(str(sorted((tmp_path / "03_dedup").glob("*.dropped.parquet"))[-1]))
    assert {document_metadata(m)["duplicate_of"] for m in dropped["metadata"]} <= {"aqua/1", "web/9", "aqua/6"}

    # resume: the last shard is redone by a new stage object, whose index must still hold the earlier shards' rows
    for marker in sorted((tmp_path / "03_dedup").glob("*.done.json"))[-2:]:
        marker.unlink()
    resumed = run_stage(DedupStage(DedupConfig(), context), dataset, "input-fp", tmp_path / "03_dedup", shard_rows=4)
    assert resumed.dataset["id"] == kept_ids
    assert resumed.stats.to_dict()["dropped"] == {"near_duplicate": 3}

    # other settings: other fingerprint, old signatures removed
    loose = run_stage(
        DedupStage(DedupConfig(dedup_threshold=0.95, dedup_ngram_size=3), context), dataset, "input-fp",
        tmp_path / "03_dedup", shard_rows=4,
    )  # fmt: skip
    assert loose.stats.rows_dropped < 3
    assert len(list((tmp_path / SIGNATURES_DIR).iterdir())) == 1
