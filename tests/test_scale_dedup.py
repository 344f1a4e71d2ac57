"""Both dedup paths find the same clusters: datasketch's sequential index on one machine and datatrove's multi-stage
MinHash under the local executor remove the same planted near-duplicates and keep the same first copies."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from datasets import load_dataset

from mathcode_pile.classifier.data import read_labeled, sample_training_sources
from mathcode_pile.pipeline import build_pile, parse_build_configs

pytestmark = pytest.mark.slow


def planted_corpus(path: Path) -> set[str]:
    """Distinct bundled documents plus near copies (one word changed, or a sentence added); returns the copies' ids."""
    examples, _ = read_labeled(*sample_training_sources())
    texts: list[str] = []
    for example in examples:
        if len(example.text.split()) >= 80 and example.text not in texts and len(texts) < 24:
            texts.append(example.text)
    assert len(texts) >= 12
    rows, copies = [], set()
    for index, text in enumerate(texts):
        rows.append({"id": f"doc-{index}", "text": text})
        if index % 3 == 0:
            words = text.split()
            words[len(words) // 2] = "changed"
            edited = " ".join(words) if index % 2 else text + " One more sentence at the end."
            rows.append({"id": f"copy-{index}", "text": edited})
            copies.add(f"copy-{index}")
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return copies


def test_both_dedup_paths_remove_the_same_planted_copies(tmp_path: Path) -> None:
    copies = planted_corpus(tmp_path / "docs.jsonl")
    recipe = tmp_path / "recipe.yaml"
    source = {"name": "web", "path": str(tmp_path / "docs.jsonl"), "kind": "web", "id_field": "id"}
    recipe.write_text(json.dumps({"sources": [source], "stages": ["dedup"], "token_count_tokenizer": "none"}))
    kept = {}
    for executor in ("datasets", "local"):
        output = tmp_path / executor
        overrides = ["--output_dir", str(output), "--executor", executor, "--tasks", "3", "--workers", "2"]
        build_pile(parse_build_configs(recipe, overrides))
        kept[executor] = set(load_dataset(str(output), split="train")["id"])
    total = len((tmp_path / "docs.jsonl").read_text().splitlines())
    assert kept["datasets"] == kept["local"]
    assert kept["local"] == {f"web/doc-{i}" for i in range(total - len(copies))}  # every copy removed, no original
    (root,) = (tmp_path / "local_work" / "scale").iterdir()
    dropped = {
        i for p in (root / "dropped" / "dedup").glob("*.parquet") for i in pq.read_table(p).column("id").to_pylist()
    }
    assert dropped == {f"web/{copy}" for copy in copies}
