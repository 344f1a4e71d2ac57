"""Never destroy what the project did not write: every command that writes a folder claims it through one rule
(``mathcode_pile.output_dirs``), run here through the real command lines on real folders."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest

from mathcode_pile.cli import main
from mathcode_pile.output_dirs import MARKER_NAME
from mathcode_pile.paths import REPO_ROOT, SAMPLES_DIR
from tests.recipe_helpers import output_rows, run_build, write_recipe


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``tmp_path`` as the current folder, with a home folder of its own (so a build aimed at home touches no real
    one)."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def make_user_folder(folder: Path) -> Path:
    """A folder of the user's with the names a build would replace: data/, plots/ and README.md."""
    (folder / "data").mkdir(parents=True)
    (folder / "plots").mkdir()
    (folder / "data" / "precious.txt").write_text("keep", encoding="utf-8")
    (folder / "plots" / "x.txt").write_text("keep", encoding="utf-8")
    (folder / "README.md").write_text("mine", encoding="utf-8")
    return folder


def assert_untouched(folder: Path) -> None:
    assert (folder / "data" / "precious.txt").read_text(encoding="utf-8") == "keep"
    assert (folder / "plots" / "x.txt").read_text(encoding="utf-8") == "keep"
    assert (folder / "README.md").read_text(encoding="utf-8") == "mine"
    assert not (folder / MARKER_NAME).exists()


def test_a_user_folder_is_refused_with_its_name_and_the_overwrite_flag(workspace: Path, capsys) -> None:
    user = make_user_folder(workspace / "userdir")
    write_recipe(workspace)
    code, output = run_build(capsys, "--output", "userdir")
    assert code == 2
    assert "output_dir 'userdir' already exists and was not written by MathCode" in output
    assert "--overwrite" in output and "Traceback" not in output
    assert_untouched(user)
    assert not (workspace / "userdir_work").exists()  # refused before anything was written


def test_a_user_work_folder_is_refused_too(workspace: Path, capsys) -> None:
    (workspace / "mywork" / "00_load_sources").mkdir(parents=True)
    (workspace / "mywork" / "00_load_sources" / "notes.txt").write_text("keep", encoding="utf-8")
    write_recipe(workspace)
    code, output = run_build(capsys, "--work_dir", "mywork")
    assert code == 2 and "work_dir 'mywork' already exists" in output
    assert (workspace / "mywork" / "00_load_sources" / "notes.txt").read_text(encoding="utf-8") == "keep"


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("", "is empty"),
        (".", "the current folder"),
        ("..", "a folder above the current folder"),
        ("/", "the file-system root"),
        ("HOME", "the home folder"),
        ("REPO", "the MathCode checkout itself"),
        ("CHECKOUT", "a git repository"),
        ("~/data", "starts with '~'"),
    ],
)
def test_root_like_output_folders_are_refused_even_with_overwrite(
    workspace: Path, capsys, path: str, reason: str
) -> None:
    checkout = make_user_folder(workspace / "checkout")
    (checkout / ".git").mkdir()
    make_user_folder(workspace / "home")
    path = {"HOME": str(workspace / "home"), "REPO": str(REPO_ROOT), "CHECKOUT": str(checkout)}.get(path, path)
    write_recipe(workspace)
    code, output = run_build(capsys, "--output_dir", path, "--overwrite")
    assert code == 2 and reason in output and "Traceback" not in output
    assert_untouched(workspace / "home")
    assert_untouched(checkout)


def test_overwrite_takes_a_folder_over_and_the_next_build_resumes_it(workspace: Path, capsys, caplog) -> None:
    make_user_folder(workspace / "userdir")
    write_recipe(workspace)
    code, _ = run_build(capsys, "--output_dir", "userdir", "--overwrite")
    assert code == 0 and len(output_rows(workspace / "userdir")) == 3
    assert (workspace / "userdir" / MARKER_NAME).is_file()
    # ours now: the same command runs again without the flag, and an upload leaves the marker out
    with caplog.at_level(logging.INFO, logger="mathcode_pile.hub"):
        code, _ = run_build(capsys, "--output_dir", "userdir", "--push-to-hub", "org/x", "--dry-run")
    assert code == 0 and len(output_rows(workspace / "userdir")) == 3
    uploaded = [record.getMessage() for record in caplog.records if "would upload" in record.getMessage()]
    assert len(uploaded) == 1 and "README.md" in uploaded[0] and MARKER_NAME not in uploaded[0]


def test_an_empty_existing_folder_is_used(workspace: Path, capsys) -> None:
    (workspace / "out").mkdir()
    write_recipe(workspace)
    code, _ = run_build(capsys)
    assert code == 0 and len(output_rows(workspace / "out")) == 3


@pytest.mark.parametrize("blocker", ["out", "parent"])
def test_an_output_path_that_is_a_file_or_under_a_file_is_refused_up_front(
    workspace: Path, capsys, blocker: str
) -> None:
    (workspace / blocker).write_text("a file in the way", encoding="utf-8")
    write_recipe(workspace)
    code, output = run_build(capsys, "--output_dir", "out" if blocker == "out" else "parent/out", "--work_dir", "w")
    assert code == 2 and "output_dir" in output and "is a file" in output and "Traceback" not in output
    assert (workspace / blocker).read_text(encoding="utf-8") == "a file in the way"
    assert not (workspace / "w").exists()


def test_a_work_dir_inside_the_output_folder_is_refused(workspace: Path, capsys) -> None:
    write_recipe(workspace)
    code, output = run_build(capsys, "--work_dir", "out/work")
    assert code == 2 and "work_dir 'out/work' is inside output_dir 'out'" in output


def instruct_recipe(folder: Path) -> Path:
    recipe = (REPO_ROOT / "recipes" / "mathcode_instruct" / "demo.yaml").read_text(encoding="utf-8")
    recipe = recipe.replace("path: mathcode_pile/data/samples/", f"path: {SAMPLES_DIR}/")
    path = folder / "instruct.yaml"
    path.write_text(recipe + "token_count_tokenizer: none\n", encoding="utf-8")
    return path


@pytest.mark.parametrize("output_dir", ["userdir", ""])
def test_instruct_refuses_a_user_folder_and_an_empty_path(workspace: Path, capsys, output_dir: str) -> None:
    make_user_folder(workspace / "userdir")
    make_user_folder(workspace / "here")
    recipe = instruct_recipe(workspace)
    # no endpoint is reachable: a build that got past the check would fail differently (and write its report)
    arguments = ["instruct", "--config", str(recipe), "--output_dir", output_dir, "--endpoint", "http://127.0.0.1:9"]
    assert main(arguments) == 2
    output = capsys.readouterr().err
    assert ("already exists" if output_dir else "output_dir is empty") in output
    assert_untouched(workspace / "userdir")
    assert not (workspace / "README.md").exists() and not (workspace / "data").exists()


@pytest.mark.parametrize(
    ("module", "arguments"),
    [
        ("evaluation.run_eval", ["--model", "some-org/some-model"]),
        ("evaluation.lce.evaluate", ["--model", "some-org/some-model", "--llm_endpoint", "http://127.0.0.1:9"]),
        ("training.cpt", ["--config", "recipes/tiny-llama/cpt/config_full.yaml"]),
        ("training.sft_lce", ["--config", "recipes/tiny-llama/sft/config_lce.yaml"]),
    ],
)
def test_eval_and_train_output_folders_follow_the_same_rule(
    tmp_path: Path, repo_root: Path, module: str, arguments: list[str]
) -> None:
    user = make_user_folder(tmp_path / "userdir")
    command = [sys.executable, "-m", module, *arguments, "--output_dir", str(user)]
    result = subprocess.run(command, cwd=repo_root, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "already exists and was not written by MathCode" in result.stderr and "--overwrite" in result.stderr
    assert "Traceback" not in result.stderr
    assert_untouched(user)


def test_the_marker_names_the_command_that_claimed_the_folder(workspace: Path, capsys) -> None:
    write_recipe(workspace)
    assert run_build(capsys)[0] == 0
    assert json.loads((workspace / "out" / MARKER_NAME).read_text(encoding="utf-8")) == {"written_by": "build"}
    assert (workspace / "out_work" / MARKER_NAME).is_file()
