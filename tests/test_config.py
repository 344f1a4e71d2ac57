"""Recipe parsing: strict keys, types and paths, with errors that name the file and the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from mathcode_pile.cli import main
from mathcode_pile.config import RecipeError
from mathcode_pile.pipeline import parse_build_configs

SAMPLE = "mathcode_pile/data/samples/aqua_rat.jsonl"


def write_recipe(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "recipe.yaml"
    path.write_text(body, encoding="utf-8")
    return path


def minimal(extra: str = "") -> str:
    return f"sources:\n  - name: aqua\n    path: {SAMPLE}\n    text_field: rationale\nstages: [translate]\n{extra}"


def test_demo_recipe_parses(repo_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(repo_root)
    configs = parse_build_configs("recipes/mathcode_pile/demo.yaml")
    assert configs.pipeline.stages and configs.pipeline.sources
    assert configs.llm.llm_endpoint is None  # the embedded model


def test_unknown_key_is_an_error_naming_file_and_key(tmp_path: Path, repo_root: Path, monkeypatch) -> None:
    monkeypatch.chdir(repo_root)
    recipe = write_recipe(tmp_path, minimal("shard_rowz: 5\n"))
    with pytest.raises(RecipeError, match=r"recipe\.yaml: unknown key\(s\) \['shard_rowz'\]"):
        parse_build_configs(recipe)


def test_wrong_type_is_an_error_naming_the_field(tmp_path: Path, repo_root: Path, monkeypatch) -> None:
    monkeypatch.chdir(repo_root)
    recipe = write_recipe(tmp_path, minimal('shard_rows: "many"\n'))
    with pytest.raises(RecipeError, match=r"recipe\.yaml: field 'shard_rows' of PipelineConfig expects int"):
        parse_build_configs(recipe)


def test_missing_source_file_is_an_error_naming_the_source(tmp_path: Path, repo_root: Path, monkeypatch) -> None:
    monkeypatch.chdir(repo_root)
    recipe = write_recipe(tmp_path, "sources:\n  - name: gone\n    path: nowhere/missing.jsonl\nstages: []\n")
    with pytest.raises(
        RecipeError, match=r"sources\[0\]: source 'gone': no file matches path 'nowhere/missing.jsonl'"
    ):
        parse_build_configs(recipe)


def test_unknown_stage_is_an_error_listing_known_stages(tmp_path: Path, repo_root: Path, monkeypatch) -> None:
    monkeypatch.chdir(repo_root)
    recipe = write_recipe(tmp_path, minimal().replace("[translate]", "[translat]"))
    with pytest.raises(RecipeError, match=r"unknown stage 'translat'; known stages: .*'translate'"):
        parse_build_configs(recipe)


def test_command_line_overrides_win_over_the_recipe(tmp_path: Path, repo_root: Path, monkeypatch) -> None:
    monkeypatch.chdir(repo_root)
    recipe = write_recipe(tmp_path, minimal("shard_rows: 5\n"))
    configs = parse_build_configs(recipe, ["--shard_rows", "7", "--llm_endpoint", "http://127.0.0.1:9"])
    assert configs.pipeline.shard_rows == 7
    assert configs.llm.llm_endpoint == "http://127.0.0.1:9"


def test_cli_reports_recipe_errors_with_exit_code_2(tmp_path: Path, repo_root: Path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(repo_root)
    recipe = write_recipe(tmp_path, minimal("bogus: 1\n"))
    assert main(["build", "--config", str(recipe)]) == 2
    assert "unknown key(s) ['bogus']" in capsys.readouterr().err
    assert main(["build", "--config", str(tmp_path / "absent.yaml")]) == 2
    assert "recipe not found" in capsys.readouterr().err
