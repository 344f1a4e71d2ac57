"""Recipes that are wrong, or that would quietly mean something else, fail through the real ``mathcode-pile build``
before its first stage, with the recipe file, the key and the fix named, and nothing written."""

from __future__ import annotations

from pathlib import Path

import pytest

from mathcode_pile.cli import main
from tests.recipe_helpers import output_rows, run_build, write_jsonl, write_recipe

SOURCE = "  - name: s\n    path: a.jsonl\n"


def source_with(line: str) -> str:
    return SOURCE + f"    {line}\n"


BILLION_LAUGHS = "classify_kinds: [" + ", ".join(
    ['&a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    + [f"&{name} [{', '.join(['*' + previous] * 9)}]" for previous, name in zip("abcdefgh", "bcdefghi", strict=True)]
) + "]\n"  # fmt: skip

#: (case, sources, stages, extra recipe lines, fragments the error must hold)
BAD_RECIPES = [
    ("mixture-twice", SOURCE, "[mixture, mixture]", "", ["stages: 'mixture' (stage 2)", "applied twice"]),
    ("dedup-after-mixture", SOURCE, "[mixture, dedup]", "", ["'dedup' (stage 2) cannot run after 'mixture'"]),
    ("mixture-weights-typo", SOURCE, "[dedup, mixture]", "mixture_weights: {sss: 2.0}\n", ["'sss'", "not a source"]),
    ("weights-without-mixture", SOURCE, "[]", "mixture_weights: {s: 2.0}\n", ["no 'mixture' stage"]),
    ("empty-path", "  - name: s\n    path: ''\n", "[]", "", ["'path' is empty"]),
    ("template-attribute", source_with("text_template: '{text.upper}'"), "[]", "", ["text_template", "plain field"]),
    ("template-index", source_with("text_template: '{0}'"), "[]", "", ["text_template", "plain field"]),
    ("template-unclosed", source_with("text_template: '{text'"), "[]", "", ["text_template", "expected '}'"]),
    ("template-no-field", source_with("text_template: 'constant'"), "[]", "", ["text_template", "names no field"]),
    ("template-absent-field", source_with("text_template: '{question}'"), "[]", "", ["['question']", "a.jsonl:1"]),
    ("text-field-absent", source_with("text_field: content"), "[]", "", ["text_field reads ['content']"]),
    ("duplicate-key", SOURCE, "[]", "seed: 1\nseed: 2\n", ["key 'seed' is given twice"]),
    ("nan-weight", source_with("weight: .nan"), "[]", "", ["sources[0].weight must be a finite number"]),
    ("inf-weight", source_with("weight: .inf"), "[]", "", ["sources[0].weight must be a finite number"]),
    ("nan-mixture-weight", SOURCE, "[mixture]", "mixture_weights: {s: .nan}\n", ["mixture_weights.s must be a"]),
    ("billion-laughs", SOURCE, "[]", BILLION_LAUGHS, ["aliases (*name) expand to more than"]),
    ("verify-before-parse", SOURCE, "[translate, verify_computations, parse_computations]", "",
     ["'verify_computations' (stage 2) needs computations", "put 'parse_computations' before"]),
    ("render-without-verify", SOURCE, "[translate, parse_computations, render_computations]", "",
     ["'render_computations' (stage 3) needs verified_computations"]),
    ("missing-benchmark", SOURCE, "[decontaminate]", "decontam_benchmarks: [nothere_test.jsonl]\n",
     ["decontam_benchmarks: 'nothere_test.jsonl'"]),
    ("missing-classifier-source", SOURCE, "[math_classify]",
     "classifier_positive_sources: [{name: p, path: nothere.jsonl}]\nclassifier_negative_sources: [{name: n, path: "
     "a.jsonl}]\n", ["classifier_positive_sources", "nothere.jsonl"]),
    ("empty-dataset-name", SOURCE, "[]", "dataset_name: ''\n", ["dataset_name is empty"]),
    ("dataset-name-newline", SOURCE, "[]", 'dataset_name: "a\\nb"\n', ["dataset_name 'a\\nb'", "one line"]),
    ("source-name-newline", '  - name: "a\\nb"\n    path: a.jsonl\n', "[]", "", ["names its dataset configuration"]),
]  # fmt: skip


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    write_jsonl(tmp_path / "a.jsonl", [{"text": f"document number {i} about algebra"} for i in range(3)])
    return tmp_path


@pytest.mark.parametrize(
    ("sources", "stages", "extra", "fragments"),
    [case[1:] for case in BAD_RECIPES],
    ids=[case[0] for case in BAD_RECIPES],
)
def test_a_bad_recipe_fails_before_the_first_stage(
    workspace: Path, capsys, sources: str, stages: str, extra: str, fragments: list[str]
) -> None:
    write_recipe(workspace, sources=sources, stages=stages, extra=extra)
    code, output = run_build(capsys)
    assert code == 2
    assert output.startswith("mathcode-pile: error: r.yaml: "), output
    for fragment in fragments:
        assert fragment in output
    assert "Traceback" not in output
    assert not (workspace / "out").exists() and not (workspace / "out_work").exists()


def test_a_recipe_that_is_not_utf8_names_the_byte_and_the_line(workspace: Path, capsys) -> None:
    recipe = write_recipe(workspace)
    recipe.write_bytes(recipe.read_bytes() + b"dataset_name: caf\xe9\n")
    code, output = run_build(capsys)
    assert code == 2 and "r.yaml: not UTF-8 text (byte 0xe9 on line 7); save the recipe as UTF-8" in output


def test_build_without_config_says_so(workspace: Path, capsys) -> None:
    assert main(["build"]) == 2
    error = capsys.readouterr().err
    assert "build needs a recipe: --config RECIPE.yaml" in error and "None" not in error


def test_a_byte_order_mark_and_yaml_merge_keys_are_fine(workspace: Path, capsys) -> None:
    """Strictness stops at real mistakes: a BOM-prefixed recipe and a ``<<`` merge (a key overridden on purpose)."""
    recipe = workspace / "r.yaml"
    recipe.write_text(
        "\ufefftoken_count_tokenizer: none\noutput_dir: out\nstages: []\n"
        "sources:\n  - &base {name: s, path: a.jsonl, kind: web}\n  - {<<: *base, name: t, kind: math_text}\n",
        encoding="utf-8",
    )
    code, output = run_build(capsys)
    assert code == 0, output
    assert sorted({row["source"] for row in output_rows(workspace / "out")}) == ["s", "t"]
