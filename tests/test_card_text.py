"""Card text is data: names from the recipe are escaped where the card and its plots render them, and the card check
reads the real YAML front matter. Builds run through the real ``mathcode-pile build``."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from huggingface_hub import DatasetCard

from mathcode_pile.card import CardValidationError, card_front_matter, validate_dataset_card
from mathcode_pile.card_text import markdown_text, plot_label
from tests.recipe_helpers import output_rows, run_build, write_jsonl, write_recipe

HOSTILE_SOURCE = "a|b $x^$ <script>alert(1)</script> {{ secret }} --- _private"


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def body_of(card_text: str) -> str:
    return card_text.split("\n---\n", 1)[1]


def test_hostile_names_build_and_render_as_literal_text(workspace: Path, capsys) -> None:
    """``$x^$`` is invalid mathtext (it used to fail the plots after every stage had run), ``|`` splits a table
    cell, HTML and Jinja must show as written. A source name also names a dataset configuration, so a hostile one
    is refused up front; the dataset name is free text and must render as written."""
    write_recipe(
        workspace,
        sources=f"  - name: '{HOSTILE_SOURCE}'\n    path: a.jsonl\n",
        extra="dataset_name: '<b>Pile</b> --- $x^$ | {{ x }} <script>'\n",
    )
    write_jsonl(workspace / "a.jsonl", [{"text": f"document {i} about numbers"} for i in range(3)])
    code, output = run_build(capsys)
    assert code == 2 and "also names its dataset configuration" in output and "Traceback" not in output
    write_recipe(
        workspace,
        sources="  - name: web.math-2_x\n    path: a.jsonl\n",
        extra="dataset_name: '<b>Pile</b> --- $x^$ | {{ x }} <script>'\n",
    )
    code, output = run_build(capsys)
    assert code == 0, output
    assert {row["source"] for row in output_rows(workspace / "out")} == {"web.math-2_x"}
    card_text = (workspace / "out" / "README.md").read_text(encoding="utf-8")
    validate_dataset_card(card_text, workspace / "out")
    assert card_front_matter(card_text)["pretty_name"] == "<b>Pile</b> --- $x^$ | {{ x }} <script>"
    body = body_of(card_text)
    assert "<script>" not in body and "<b>" not in body and "$x^$" not in body
    assert "| web.math-2_x | math_text | 3 |" in body
    assert "# &lt;b&gt;Pile&lt;/b&gt; --- \\$x^\\$ \\| {{ x }} &lt;script&gt;" in body
    assert (workspace / "out" / "plots" / "composition.png").stat().st_size > 0


def test_markdown_text_keeps_a_name_in_its_cell_and_line() -> None:
    assert markdown_text("a|b\nc") == "a\\|b c"
    assert markdown_text("---") == "\\---"
    assert markdown_text("$x$ & <i>") == "\\$x\\$ &amp; &lt;i&gt;"
    assert markdown_text("{{ x }} {% y %}") == "{{ x }} {% y %}"  # rendered once, as a value: shown as written
    assert plot_label("$x^$") == "\\$x^\\$" and plot_label("_hidden") == " _hidden"


def test_the_card_check_reads_the_real_front_matter(workspace: Path, capsys) -> None:
    """A ``---`` inside a value does not end the header; a header that does not parse is an error."""
    write_jsonl(workspace / "a.jsonl", [{"text": "a document"}])
    write_recipe(workspace, sources="  - name: s\n    path: a.jsonl\n", extra="dataset_name: 'a --- b'\n")
    assert run_build(capsys)[0] == 0
    card_text = (workspace / "out" / "README.md").read_text(encoding="utf-8")
    assert card_front_matter(card_text)["pretty_name"] == "a --- b"
    assert DatasetCard(card_text).data.to_dict()["pretty_name"] == "a --- b"
    broken = card_text.replace("license: other", "license: [other", 1)
    with pytest.raises(CardValidationError, match="does not parse"):
        validate_dataset_card(broken)
    without_header = body_of(card_text)
    with pytest.raises(CardValidationError, match="does not start with"):
        validate_dataset_card(without_header)
    header = yaml.safe_load(card_text.split("\n---\n", 1)[0].removeprefix("---\n"))
    assert header == card_front_matter(card_text)
