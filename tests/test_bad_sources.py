"""Hostile source files through the real ``mathcode-pile build``: ids unique by construction, each file read once,
and every bad row or file a counted skip named with its file and line while the rest still loads."""

from __future__ import annotations

import gzip
import json
import logging
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.recipe_helpers import load_stats, output_rows, run_build, write_jsonl, write_recipe

GOOD_LINE = json.dumps({"text": "a good document with enough words"}) + "\n"
SAME_TEXT = "alpha beta gamma delta epsilon zeta eta theta iota kappa"


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def build_folder_source(workspace: Path, capsys, files: dict[str, str | bytes], extra: str = "", stages: str = "[]"):
    """Write ``files`` under ``src/`` and build one source over that folder: (exit code, output, rows, load stats)."""
    for name, content in files.items():
        path = workspace / "src" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
    write_recipe(workspace, sources=f"  - name: s\n    path: src\n{extra}", stages=stages)
    code, output = run_build(capsys)
    assert "Traceback" not in output
    if code != 0:
        return code, output, [], {}
    return code, output, output_rows(workspace / "out"), load_stats(workspace / "out")


# --- ids -----------------------------------------------------------------------------------------------------------


def test_a_repeated_id_is_a_counted_duplicate_id_drop(workspace: Path, capsys, caplog) -> None:
    rows = [{"id": i, "text": f"text {n} with enough words here"} for n, i in enumerate([1, 2, 1, 3, 2])]
    write_jsonl(workspace / "a.jsonl", rows)
    write_recipe(workspace, sources="  - name: s\n    path: a.jsonl\n    id_field: id\n")
    with caplog.at_level(logging.WARNING, logger="mathcode_pile.sources"):
        code, _ = run_build(capsys)
    assert code == 0
    kept = output_rows(workspace / "out")
    assert [row["id"] for row in kept] == ["s/1", "s/2", "s/3"]
    assert [row["text"] for row in kept] == ["text 0 with enough words here", "text 1 with enough words here",
                                              "text 3 with enough words here"]  # fmt: skip
    stats = load_stats(workspace / "out")
    assert stats["dropped"] == {"duplicate_id": 2} and stats["rows_in"] == 5 and stats["rows_kept"] == 3
    assert any("a.jsonl:3: skipped (duplicate_id)" in record.getMessage() for record in caplog.records)


def test_a_line_repeated_in_its_source_never_costs_another_document(workspace: Path, capsys) -> None:
    rows = [{"id": "x", "text": SAME_TEXT}, {"id": "x", "text": SAME_TEXT}, {"id": "y", "text": "geometry of circles"}]
    write_jsonl(workspace / "a.jsonl", rows)
    write_recipe(workspace, sources="  - name: s\n    path: a.jsonl\n    id_field: id\n", stages="[dedup]")
    assert run_build(capsys)[0] == 0
    assert sorted(row["id"] for row in output_rows(workspace / "out")) == ["s/x", "s/y"]


def test_the_dedup_stage_keeps_one_copy_of_a_repeated_key_and_reads_any_id(tmp_path: Path) -> None:
    """The stage itself, given rows no load would produce: the same (source, id, text) twice, and an id that holds
    the old key separator."""
    from datasets import Dataset

    from mathcode_pile.runner import run_stage
    from mathcode_pile.stages.base import StageContext
    from mathcode_pile.stages.dedup import DedupConfig, DedupStage

    metadata = json.dumps({"kind": "web"})
    rows = {
        "id": ["s/a\x1fb", "s/a\x1fb", "s/c", "s/d"],
        "text": [SAME_TEXT, SAME_TEXT, SAME_TEXT, "completely different words about triangles and squares here"],
        "source": ["s"] * 4,
        "metadata": [metadata] * 4,
    }
    stage = DedupStage(DedupConfig(), StageContext(work_dir=tmp_path))
    result = run_stage(stage, Dataset.from_dict(rows), "input", tmp_path / "01_dedup")
    assert result.dataset["id"] == ["s/a\x1fb", "s/d"]
    assert result.stats.dropped == {"near_duplicate": 2}
    dropped = pq.read_table(tmp_path / "01_dedup" / "shard-00000.dropped.parquet").to_pylist()
    assert [json.loads(row["metadata"])["duplicate_of"] for row in dropped] == ["s/a\x1fb", "s/a\x1fb"]


def test_files_with_the_same_name_in_two_folders_get_different_ids(workspace: Path, capsys) -> None:
    files = {"a/data.jsonl": GOOD_LINE, "b/data.jsonl": GOOD_LINE, "top.md": "# A textbook page"}
    code, _, rows, _ = build_folder_source(workspace, capsys, files)
    assert code == 0
    assert [row["id"] for row in rows] == ["s/a/data.jsonl:1", "s/b/data.jsonl:1", "s/top.md"]


@pytest.mark.parametrize(
    ("link", "path"), [("dot", "src/**/*.jsonl"), ("parent", "src/**/*.jsonl"), ("parent", "src")]
)
def test_symlinked_folders_are_not_followed(workspace: Path, capsys, link: str, path: str) -> None:
    write_jsonl(workspace / "src" / "a.jsonl", [{"text": f"document {i} has words"} for i in range(3)])
    (workspace / "src" / link).symlink_to("." if link == "dot" else "..")
    write_recipe(workspace, sources=f"  - name: s\n    path: '{path}'\n")
    code, output = run_build(capsys)
    assert code == 0, output
    assert [row["id"] for row in output_rows(workspace / "out")] == [f"s/a.jsonl:{i}" for i in (1, 2, 3)]


def test_a_file_reached_twice_is_read_once(workspace: Path, capsys) -> None:
    write_jsonl(workspace / "src" / "a.jsonl", [{"text": f"document {i} has words"} for i in range(3)])
    (workspace / "src" / "b.jsonl").symlink_to("a.jsonl")
    write_recipe(workspace, sources="  - name: s\n    path: src\n")
    assert run_build(capsys)[0] == 0
    assert len(output_rows(workspace / "out")) == 3


def test_globs_match_like_before(workspace: Path, capsys) -> None:
    """``*`` stays in one folder, ``**`` reaches any depth (none included), hidden files are left out."""
    for name in ("a.jsonl", "sub/b.jsonl", "sub/deeper/c.jsonl", ".hidden.jsonl", "sub/.cache/d.jsonl", "e.txt"):
        write_jsonl(workspace / "src" / name, [{"text": f"text of {name}"}])
    write_recipe(
        workspace, sources="  - name: one\n    path: 'src/*.jsonl'\n  - name: any\n    path: 'src/**/*.jsonl'\n"
    )
    assert run_build(capsys)[0] == 0
    ids = sorted(row["id"] for row in output_rows(workspace / "out"))
    assert ids == ["any/a.jsonl:1", "any/sub/b.jsonl:1", "any/sub/deeper/c.jsonl:1", "one/a.jsonl:1"]


# --- one bad row or file -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("files", "reasons"),
    [
        ({"a.jsonl": GOOD_LINE + '{"text": "bad \\ud800 here"}\n' + GOOD_LINE}, {"invalid_unicode": 1}),
        ({"a.jsonl": GOOD_LINE + "[" * 200_000 + "]" * 200_000 + "\n" + GOOD_LINE}, {"json_too_deep": 1}),
        ({"a.jsonl": GOOD_LINE + '{"text": "x", "n": ' + "9" * 5000 + "}\n" + GOOD_LINE}, {"json_number_too_long": 1}),
        ({"a.json": '[{"text": "one item"}, {', "b.jsonl": GOOD_LINE * 2}, {"malformed_json": 1}),
        ({"a.json": "[" * 200_000 + "]" * 200_000, "b.jsonl": GOOD_LINE * 2}, {"json_too_deep": 1}),
        ({"a.json": '{"text": "not a list"}', "b.jsonl": GOOD_LINE * 2}, {"malformed_json": 1}),
        ({"a.jsonl": GOOD_LINE + "{not json\n" + GOOD_LINE}, {"malformed_json": 1}),
        ({"a.jsonl": GOOD_LINE.encode() + b'{"text": "caf\xe9"}\n' + GOOD_LINE.encode()}, {"non_utf8": 1}),
        ({"a.jsonl": GOOD_LINE * 2 + '{"text": "{q"}\n'}, {}),
    ],
    ids=[
        "lone-surrogate",
        "deep-nesting",
        "5000-digits",
        "malformed-json-file",
        "deep-json-file",
        "json-not-a-list",
        "malformed-line",
        "non-utf8-line",
        "braces-in-text",
    ],
)
def test_a_bad_row_or_file_is_a_counted_skip_and_the_rest_loads(
    workspace: Path, capsys, caplog, files: dict[str, str | bytes], reasons: dict[str, int]
) -> None:
    with caplog.at_level(logging.WARNING, logger="mathcode_pile.sources"):
        code, output, rows, stats = build_folder_source(workspace, capsys, files)
    assert code == 0, output
    assert len(rows) == 2 + (1 if not reasons else 0)
    assert stats["dropped"] == reasons
    assert stats["rows_in"] == stats["rows_kept"] + sum(reasons.values())
    bad_file = next(iter(files))
    if reasons:
        assert any(f"src/{bad_file}" in record.getMessage() for record in caplog.records)


def test_a_lone_surrogate_in_a_metadata_field_is_skipped(workspace: Path, capsys) -> None:
    files = {"a.jsonl": GOOD_LINE + '{"text": "fine words", "url": "\\udc00"}\n'}
    code, _, rows, stats = build_folder_source(workspace, capsys, files, extra="    metadata_fields: [url]\n")
    assert code == 0 and len(rows) == 1 and stats["dropped"] == {"invalid_unicode": 1}


def test_utf8_byte_order_marks_are_read_as_such(workspace: Path, capsys) -> None:
    notebook = {"cells": [{"cell_type": "code", "source": ["import sympy\n", "x = sympy.sqrt(2)"]}], "nbformat": 4}
    files = {
        "a.jsonl": ("\ufeff" + GOOD_LINE + GOOD_LINE).encode("utf-8"),
        "b.py": "\ufeffimport sympy\nprint(sympy.sqrt(2))\n".encode(),
        "c.ipynb": ("\ufeff" + json.dumps(notebook)).encode("utf-8"),
    }
    code, _, rows, stats = build_folder_source(
        workspace, capsys, files, extra="    kind: code\n", stages="[code_math_filter]"
    )
    assert code == 0 and stats["dropped"] == {}
    assert len(rows) == 2  # the two code files import sympy; the JSON lines rows are kept by the load
    assert [row["id"] for row in rows] == ["s/b.py", "s/c.ipynb"]
    assert not any("\ufeff" in row["text"] for row in rows)
    assert load_stats(workspace / "out")["rows_kept"] == 4


def test_notebook_cells_of_the_wrong_shape_are_a_counted_skip(workspace: Path, capsys) -> None:
    good = {"cells": [{"cell_type": "markdown", "source": ["# A heading"]}], "nbformat": 4}
    files = {
        "a.ipynb": json.dumps({"cells": [{"cell_type": "code", "source": [1, 2]}]}),
        "b.ipynb": json.dumps(good),
        "c.ipynb": json.dumps({"cells": [{"cell_type": "code", "source": {"x": 1}}]}),
    }
    code, _, rows, stats = build_folder_source(workspace, capsys, files)
    assert code == 0 and [row["id"] for row in rows] == ["s/b.ipynb"]
    assert stats["dropped"] == {"malformed_notebook": 2}


def test_a_truncated_parquet_file_is_skipped_and_its_neighbour_loads(workspace: Path, capsys, caplog) -> None:
    (workspace / "src").mkdir()
    pq.write_table(
        pa.table({"text": [f"good parquet document {i}" for i in range(5)]}), workspace / "src" / "a.parquet"
    )
    pq.write_table(
        pa.table({"text": [f"lost parquet document {i}" for i in range(5)]}), workspace / "src" / "b.parquet"
    )
    data = (workspace / "src" / "b.parquet").read_bytes()
    (workspace / "src" / "b.parquet").write_bytes(data[: len(data) // 2])
    with caplog.at_level(logging.WARNING, logger="mathcode_pile.sources"):
        code, _, rows, stats = build_folder_source(workspace, capsys, {})
    assert code == 0 and [row["text"] for row in rows] == [f"good parquet document {i}" for i in range(5)]
    assert stats["dropped"] == {"unreadable_file": 1}
    assert any("b.parquet" in record.getMessage() for record in caplog.records)


def test_gzip_json_lines_are_read_and_a_truncated_one_keeps_what_it_held(workspace: Path, capsys, caplog) -> None:
    (workspace / "src").mkdir()
    (workspace / "src" / "a.jsonl.gz").write_bytes(gzip.compress((GOOD_LINE * 3).encode()))
    lines = "".join(json.dumps({"text": f"row {i} of a long file"}) + "\n" for i in range(5000))
    compressed = gzip.compress(lines.encode())
    (workspace / "src" / "b.jsonl.gz").write_bytes(compressed[: len(compressed) // 2])
    with caplog.at_level(logging.WARNING, logger="mathcode_pile.sources"):
        code, _, rows, stats = build_folder_source(workspace, capsys, {})
    assert code == 0
    read_from_b = [row for row in rows if row["id"].startswith("s/b.jsonl.gz:")]
    assert len(rows) == 3 + len(read_from_b) and 0 < len(read_from_b) < 5000
    assert [row["text"] for row in read_from_b] == [f"row {i} of a long file" for i in range(len(read_from_b))]
    assert stats["dropped"] == {"unreadable_file": 1}
    assert any("b.jsonl.gz (after line" in record.getMessage() for record in caplog.records)


def test_zero_loaded_rows_end_with_the_per_source_table(workspace: Path, capsys) -> None:
    files = {"a.jsonl": '{bad\n{"text": ""}\n{"text": 5}\n'}
    code, output, _, _ = build_folder_source(workspace, capsys, files)
    assert code == 2
    assert "no document was loaded" in output
    assert "s       3     0     empty_text: 1, malformed_json: 1, text_not_a_string: 1" in output
    assert not (workspace / "out" / "data").exists()


def test_an_unreachable_hub_source_fails_before_the_first_stage(workspace: Path, capsys) -> None:
    """The test suite runs offline, so no Hub id can be reached: the error names the source and the id."""
    write_jsonl(workspace / "a.jsonl", [{"text": "a local document"}])
    write_recipe(
        workspace,
        sources="  - name: s\n    path: a.jsonl\n  - name: owm\n    hub_id: no-such-org/no-such-dataset\n",
        stages="[dedup]",
    )
    code, output = run_build(capsys)
    assert code == 2 and "Traceback" not in output
    assert "sources[1] ('owm')" in output and "'no-such-org/no-such-dataset'" in output
    assert not (workspace / "out_work").exists()
