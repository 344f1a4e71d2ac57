"""The summary ``mathcode-pile build`` prints at its end: rows written, rows with verified code, where to look next."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from mathcode_pile.build_summary import summarize_build
from mathcode_pile.cli import main
from mathcode_pile.stats import StageStats, save_stats


def test_a_build_ends_with_what_it_wrote_and_where_to_look(
    tmp_path: Path, repo_root: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(repo_root)
    recipe = tmp_path / "recipe.yaml"
    output = tmp_path / "pile"
    recipe.write_text(
        f"""output_dir: {output}
token_count_tokenizer: none
sources:
  - name: code
    path: mathcode_pile/data/samples/code
    kind: code
stages: [code_math_filter]
""",
        encoding="utf-8",
    )
    assert main(["build", "--config", str(recipe)]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith(f"MathCode-Pile: 3 row(s) written to {output}")
    assert "rows carrying verified code: none (the recipe has no translation stages)" in printed[1]
    assert f"dataset card: {output / 'README.md'}" in printed[2]
    assert "no_math_import 1" in printed[3] and f"{output}_work/<NN>_<stage>/*.dropped.parquet" in printed[3]
    assert printed[4].strip().startswith(f"with a real translation model: mathcode-pile build --config {recipe}")


def test_verified_code_is_counted_from_the_render_stage_and_the_funnel(tmp_path: Path) -> None:
    stats = [
        StageStats("load_sources", 5, 5),
        StageStats("verify_computations", 5, 5, extra=Counter({"funnel/ran_ok/web": 4, "funnel/verified/web": 3})),
        StageStats(
            "render_computations",
            5,
            4,
            dropped=Counter({"no_verified_computation": 1}),
            extra=Counter({"documents_with_code": 2, "documents_without_code": 2}),
        ),
    ]
    stats[1].extra["funnel/computations/web"] = 6
    save_stats(stats, tmp_path / "stats.json")
    summary = summarize_build(tmp_path, tmp_path / "work", "r.yaml").splitlines()
    assert summary[0].startswith("MathCode-Pile: 4 row(s) written")
    assert summary[1].strip() == "rows carrying verified code: 2 of 4  (computations parsed 6, ran 4, verified 3)"
    assert "no_verified_computation 1" in summary[3]
