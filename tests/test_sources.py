"""Sources into one schema (local JSONL / Parquet / text / markdown / Python / notebooks, Hub streaming), bad input
counted with its reason, and the AST-based code-with-math-packages filter."""

from __future__ import annotations

import json
import logging
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mathcode_pile.config import RecipeError
from mathcode_pile.sources import (
    DOCUMENT_FEATURES,
    SourceSpec,
    document_metadata,
    iter_documents,
    load_sources,
    notebook_to_text,
    parse_sources,
)
from mathcode_pile.stages.base import DROP_COLUMN, StageContext
from mathcode_pile.stages.code_filter import CodeFilterConfig, CodeMathFilterStage, document_imports, imported_packages

FIXTURES = Path(__file__).parent / "fixtures" / "basic_data"


def read_all(spec: SourceSpec) -> tuple[list[dict[str, str]], Counter[str]]:
    counts: Counter[str] = Counter()
    return list(iter_documents(spec, counts)), counts


def test_jsonl_bad_lines_are_counted_by_reason_and_logged_with_file_and_line(caplog) -> None:
    spec = SourceSpec(name="owm", path=str(FIXTURES / "owm_sample.jsonl"), metadata_fields=["url"])
    with caplog.at_level(logging.WARNING, logger="mathcode_pile.sources"):
        docs, counts = read_all(spec)
    assert [d["id"] for d in docs] == ["owm/owm_sample.jsonl:1", "owm/owm_sample.jsonl:2", "owm/owm_sample.jsonl:9"]
    assert counts == Counter(
        read=5, malformed_json=1, missing_text_field=1, empty_text=1, non_utf8=1, not_an_object=1
    ) - Counter(read=0)
    assert {d["source"] for d in docs} == {"owm"}
    metadata = json.loads(docs[0]["metadata"])
    assert metadata["url"] == "https://example.org/calculus/1"
    assert metadata["kind"] == "math_text" and metadata["weight"] == 1.0
    messages = "\n".join(r.getMessage() for r in caplog.records)
    assert "owm_sample.jsonl:3: malformed JSON" in messages
    assert "owm_sample.jsonl:6: not valid UTF-8" in messages
    assert "owm_sample.jsonl:4: skipped (missing_text_field)" in messages


def test_load_stats_count_every_input_row_once_across_several_sources(tmp_path: Path) -> None:
    specs = parse_sources(
        [
            {"name": "owm", "path": str(FIXTURES / "owm_sample.jsonl")},
            {"name": "synthetic", "path": str(FIXTURES / "synthetic_math.jsonl"), "text_template": "{completion}",
             "id_field": "id", "kind": "synthetic_math"},
            {"name": "textbook", "path": str(FIXTURES / "textbook"), "kind": "textbook"},
        ]
    )  # fmt: skip
    dataset, stats, fingerprint = load_sources(specs, tmp_path / "load")
    assert dataset.features == DOCUMENT_FEATURES
    assert Counter(dataset["source"]) == {"owm": 3, "synthetic": 3, "textbook": 2}
    assert stats.rows_in == 8 + 3 + 2  # every non-blank line or file, parsed or not
    assert stats.rows_kept == 8
    assert dict(stats.dropped) == {
        "malformed_json": 1, "missing_text_field": 1, "empty_text": 1, "non_utf8": 1, "not_an_object": 1
    }  # fmt: skip
    assert stats.rows_in == stats.rows_kept + stats.rows_dropped
    assert "synthetic/mc-2" in dataset["id"]
    again, again_stats, again_fingerprint = load_sources(specs, tmp_path / "load")
    assert again_fingerprint == fingerprint and again_stats.to_dict() == stats.to_dict()
    assert again["id"] == dataset["id"]


def test_a_ten_megabyte_document_is_a_counted_skip(tmp_path: Path) -> None:
    path = tmp_path / "big.jsonl"
    with path.open("w", encoding="utf-8") as handle:
        handle.write(json.dumps({"text": "x = 1. " * (10 * 1024 * 1024 // 7)}) + "\n")
        handle.write(json.dumps({"text": "A short document about 2 + 2 = 4."}) + "\n")
    docs, counts = read_all(SourceSpec(name="big", path=str(path)))
    assert len(docs) == 1 and docs[0]["text"].startswith("A short")
    assert counts["too_long"] == 1
    docs, counts = read_all(SourceSpec(name="big", path=str(path), max_chars=20 * 1024 * 1024))
    assert len(docs) == 2 and counts["too_long"] == 0


def test_parquet_rows_with_id_and_metadata_fields(tmp_path: Path) -> None:
    path = tmp_path / "synthetic.parquet"
    pq.write_table(
        pa.table(
            {"uid": ["a", "b", "c"], "content": ["First $1+1=2$.", None, "Third: $3^2 = 9$."], "grade": [1, 2, 3]}
        ),
        path,
    )
    spec = SourceSpec(name="college", path=str(path), text_field="content", id_field="uid",
                      metadata_fields=["grade"], kind="synthetic_math")  # fmt: skip
    docs, counts = read_all(spec)
    assert [d["id"] for d in docs] == ["college/a", "college/c"]
    assert counts["missing_text_field"] == 1
    assert document_metadata(docs[1]["metadata"])["grade"] == 3
    assert document_metadata(docs[1]["metadata"])["kind"] == "synthetic_math"


def test_textbook_folder_gives_one_document_per_file_and_ignores_hidden_files(tmp_path: Path) -> None:
    folder = tmp_path / "book"
    (folder / ".ipynb_checkpoints").mkdir(parents=True)
    (folder / ".ipynb_checkpoints" / "ch1-checkpoint.md").write_text("stale copy", encoding="utf-8")
    (folder / "ch1.md").write_text((FIXTURES / "textbook" / "ch1_limits.md").read_text(), encoding="utf-8")
    (folder / "ch2.txt").write_bytes(b"caf\xe9: not UTF-8")
    docs, counts = read_all(SourceSpec(name="book", path=str(folder), kind="textbook"))
    assert [d["id"] for d in docs] == ["book/ch1.md"]
    assert "\\frac{\\sin x}{x}" in docs[0]["text"]
    assert document_metadata(docs[0]["metadata"])["format"] == "markdown"
    assert counts["non_utf8"] == 1


def test_python_files_and_notebooks(tmp_path: Path) -> None:
    docs, counts = read_all(SourceSpec(name="code", path=str(FIXTURES / "code"), kind="code"))
    by_id = {d["id"]: d for d in docs}
    assert set(by_id) == {"code/mean_median.py", "code/roots_of_unity.ipynb", "code/word_count.py"}
    notebook = by_id["code/roots_of_unity.ipynb"]["text"]
    assert notebook.startswith("# Roots of unity")
    assert "```python\nimport cmath" in notebook
    assert "OUTPUT THAT MUST NOT APPEAR" not in notebook and "raw cells" not in notebook
    assert document_metadata(by_id["code/mean_median.py"]["metadata"])["language"] == "python"
    broken = tmp_path / "broken.ipynb"
    broken.write_text('{"cells": [', encoding="utf-8")
    docs, counts = read_all(SourceSpec(name="nb", path=str(broken), kind="code"))
    assert docs == [] and counts["malformed_notebook"] == 1
    with pytest.raises(ValueError, match="cells"):
        notebook_to_text(json.dumps({"nbformat": 4}))


def test_hub_sources_stream_through_datasets(tmp_path: Path) -> None:
    """A Hub id goes through ``load_dataset(..., streaming=True)``; a local dataset folder takes the same path."""
    folder = tmp_path / "hub_like" / "data"
    folder.mkdir(parents=True)
    pq.write_table(pa.table({"text": [f"Document {i}: {i} + {i} = {2 * i}." for i in range(50)]}),
                   folder / "train-00000-of-00001.parquet")  # fmt: skip
    spec = SourceSpec(name="owm", hub_id=str(tmp_path / "hub_like"), max_docs=5)
    docs, counts = read_all(spec)
    assert [d["text"] for d in docs] == [f"Document {i}: {i} + {i} = {2 * i}." for i in range(5)]
    assert docs[0]["id"].endswith(":train:0") and counts["read"] == 5


def test_source_specs_are_validated_with_the_source_named() -> None:
    with pytest.raises(RecipeError, match="exactly one of 'path' or 'hub_id'"):
        SourceSpec(name="x", path=str(FIXTURES / "owm_sample.jsonl"), hub_id="open-web-math/open-web-math")
    with pytest.raises(RecipeError, match="source 'x': kind must be one of"):
        SourceSpec(name="x", hub_id="open-web-math/open-web-math", kind="poetry")
    with pytest.raises(RecipeError, match="recipe: two sources are named 'x'"):
        parse_sources([{"name": "x", "hub_id": "a/b"}, {"name": "x", "hub_id": "a/c"}])
    with pytest.raises(RecipeError, match=r"sources\[0\].*unexpected keyword"):
        parse_sources([{"name": "x", "hub_id": "a/b", "txt_field": "content"}])


# --- code with math packages -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "packages", "parsed"),
    [
        ("import sympy as sp\nfrom scipy.stats import norm\nfrom . import local\n", {"sympy", "scipy"}, True),
        ("# import sympy\ntext = 'from fractions import Fraction'\n", set(), True),
        ("def f():\n    import cmath\n    return cmath.sqrt(-1)\n", {"cmath"}, True),
        ("print 'py2'\nimport statistics\nfrom fractions import (F,\n g)", {"fractions", "statistics"}, False),
        ("%matplotlib inline\n!pip install sympy\nimport sympy\n", {"sympy"}, True),
        ("this is not code at all (\n", set(), False),
    ],
)  # fmt: skip
def test_imports_are_read_from_the_syntax_tree(code: str, packages: set[str], parsed: bool) -> None:
    assert imported_packages(code) == (packages, parsed)


def test_notebook_documents_are_parsed_cell_by_cell() -> None:
    text = "# Title\n\n```python\nimport statistics\n```\n\nSome prose.\n\n```python\nthis cell is broken (\n```"
    assert document_imports(text) == ({"statistics"}, True)


def test_code_filter_stage_keeps_code_with_math_imports_and_counts_packages(tmp_path: Path) -> None:
    from mathcode_pile.runner import run_stage

    broken = tmp_path / "code"
    broken.mkdir()
    (broken / "py2.py").write_text("print 'no math here'\n", encoding="utf-8")
    specs = parse_sources(
        [
            {"name": "code", "path": str(FIXTURES / "code"), "kind": "code"},
            {"name": "broken", "path": str(broken), "kind": "code"},
            {"name": "owm", "path": str(FIXTURES / "owm_sample.jsonl")},
        ]
    )
    dataset, _, fingerprint = load_sources(specs, tmp_path / "load")
    stage = CodeMathFilterStage(CodeFilterConfig(), StageContext(work_dir=tmp_path))
    result = run_stage(stage, dataset, fingerprint, tmp_path / "01_code", shard_rows=3)
    assert sorted(result.dataset["id"]) == sorted(
        ["code/mean_median.py", "code/roots_of_unity.ipynb"] + [d for d in dataset["id"] if d.startswith("owm/")]
    )
    assert dict(result.stats.dropped) == {"no_math_import": 1, "unparseable": 1}
    assert result.stats.extra["imports_statistics"] == 1 and result.stats.extra["imports_cmath"] == 1
    assert result.stats.extra["code_docs_kept"] == 2
    kept = {row["id"]: document_metadata(row["metadata"]) for row in result.dataset}
    assert kept["code/roots_of_unity.ipynb"]["math_imports"] == ["cmath"]
    narrow = CodeMathFilterStage(CodeFilterConfig(code_math_packages=["cmath"]), StageContext(work_dir=tmp_path))
    narrowed = narrow.process_batch(dataset[:])
    kept_ids = [i for i, reason in zip(dataset["id"], narrowed[DROP_COLUMN], strict=True) if reason is None]
    assert "code/mean_median.py" not in kept_ids and "code/roots_of_unity.ipynb" in kept_ids
