"""The suite runner: recipes, configuration errors, the results table beside the paper, and real lm-eval runs
(a tiny random Llama through transformers, the embedded model through the llama.cpp server)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from evaluation.cli import main as eval_cli
from evaluation.paper_results import find_paper_family, paper_family_by_name
from evaluation.results_table import (
    load_scores,
    make_score,
    render_results_table,
    render_table_from_results,
    wilson_interval,
)
from evaluation.run_eval import SUITE_TASKS, EvalSuiteConfig, find_unscorable_tasks, parse_eval_args, run_suite
from mathcode_pile.config import RecipeError

# ---------------------------------------------------------------------------------------------------- recipes


def test_every_eval_recipe_parses(repo_root: Path, monkeypatch: pytest.MonkeyPatch, benchmarks_dir: Path) -> None:
    monkeypatch.chdir(repo_root)
    recipes = sorted((repo_root / "recipes" / "eval").glob("*.yaml"))
    assert recipes
    for recipe in recipes:
        overrides = ["--model", "org/some-model"] if "model:" not in recipe.read_text(encoding="utf-8") else []
        if "data_dir:" in recipe.read_text(encoding="utf-8"):
            overrides += ["--data_dir", str(benchmarks_dir)]
        config = parse_eval_args(["--config", str(recipe), *overrides])
        assert config.tasks == ["mathcoder2"]
    smoke = parse_eval_args(["--config", str(repo_root / "recipes/eval/mathcoder2_smoke.yaml"), "--limit", "3"])
    assert (smoke.model, smoke.limit, smoke.backend) == ("smollm2", 3, "hf")


def test_bad_configurations_are_errors_that_say_why(tmp_path: Path) -> None:
    with pytest.raises(RecipeError, match="model is required"):
        EvalSuiteConfig()
    with pytest.raises(RecipeError, match="needs base_url"):
        EvalSuiteConfig(model="m", backend="local-completions")
    with pytest.raises(RecipeError, match="limit must be >= 1"):
        EvalSuiteConfig(model="m", limit=0)
    with pytest.raises(RecipeError, match="data_dir not found"):
        EvalSuiteConfig(model="m", data_dir=str(tmp_path / "nowhere"))
    with pytest.raises(RecipeError, match="unknown paper model"):
        EvalSuiteConfig(model="m", paper_model="GPT-5")
    recipe = tmp_path / "typo.yaml"
    recipe.write_text("model: m\nlimt: 3\n", encoding="utf-8")
    with pytest.raises(RecipeError, match=r"unknown key\(s\) \['limt'\]"):
        parse_eval_args(["--config", str(recipe)])
    with pytest.raises(RecipeError, match="backend"):
        parse_eval_args(["--model", "m", "--backend", "tgi"])


def test_make_eval_passes_model_backend_limit_and_data(repo_root: Path) -> None:
    completed = subprocess.run(
        ["make", "-n", "eval", "MODEL=org/m", "LIMIT=3", "BACKEND=local-completions", "BASE_URL=http://h:1"],
        cwd=repo_root,
        capture_output=True,
        text=True,
        check=True,
    )
    command = " ".join(completed.stdout.split())
    assert (
        "mathcode-eval run --config recipes/eval/mathcoder2.yaml --model org/m --backend local-completions" in command
    )
    assert "--limit 3" in command and "--base_url http://h:1" in command
    smoke = subprocess.run(
        ["make", "-n", "eval", "MODEL=smollm2"], cwd=repo_root, capture_output=True, text=True, check=True
    ).stdout
    assert "--config recipes/eval/mathcoder2_smoke.yaml --model smollm2 --backend hf" in smoke


# ----------------------------------------------------------------------------------------------- the table


def test_wilson_interval_matches_the_closed_form() -> None:
    assert wilson_interval(0, 2) == pytest.approx((0.0, 0.6576), abs=1e-4)
    assert wilson_interval(10, 20) == pytest.approx((0.2993, 0.7007), abs=1e-3)
    low, high = wilson_interval(964, 964)
    assert high == pytest.approx(1.0) and 0.99 < low < 1.0
    with pytest.raises(ValueError):
        wilson_interval(3, 2)


def test_models_find_their_paper_family() -> None:
    assert find_paper_family("meta-llama/Meta-Llama-3-8B").base_name == "Llama-3-8B"
    assert find_paper_family("MathGenie/MathCoder2-Llama-3-8B").base_name == "Llama-3-8B"
    assert find_paper_family("mistralai/Mistral-7B-v0.1").base_name == "Mistral-7B"
    assert find_paper_family("codellama/CodeLlama-7b-hf").base_name == "Code-Llama-7B"
    assert find_paper_family("deepseek-ai/deepseek-math-7b-base").base_name == "DeepSeekMath-7B"
    assert find_paper_family("HuggingFaceTB/SmolLM2-135M-Instruct") is None


def test_table_sets_scores_beside_the_paper_and_marks_what_is_missing() -> None:
    scores = [make_score("gsm8k", 14, 20, 4), make_score("sat_math", 16, 32, 4)]
    table = render_results_table(
        scores,
        "my-llama",
        family=paper_family_by_name("Llama-3-8B"),
        limit=20,
        unscored={"mathcoder2_mmlu_math": "no log-probabilities"},
    )
    lines = table.splitlines()
    assert (
        lines[0]
        == "| Benchmark | Shots | n | my-llama (95% CI) | Llama-3-8B (paper) | MathCoder2-Llama-3-8B (paper) |"
    )
    assert lines[2].startswith("| GSM8K | 4 | 20 | 70.0 (48.1–85.5) | 54.8 | 69.9 |")
    assert lines[3] == "| SAT-Math | 4 | 32 | 50.0 (33.6–66.4) | — | — |"
    assert "MMLU-Math: not scored: no log-probabilities." in table
    assert "first 20 problem(s)" in table
    alone = render_results_table(scores, "other-model")
    assert "(paper)" not in alone and alone.splitlines()[0].endswith("other-model (95% CI) |")


# ------------------------------------------------------------------------------------------------ real runs


@pytest.mark.slow
def test_suite_runs_on_a_tiny_model_and_writes_results(
    tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The whole ``mathcoder2`` group, as ``make eval`` runs it: every scored task leaves its samples file."""
    output = tmp_path / "eval"
    status = eval_cli(
        [
            "run", "--model", str(tiny_model_dir), "--backend", "hf", "--device", "cpu", "--limit", "2",
            "--max_gen_toks", "8", "--batch_size", "2", "--output_dir", str(output), "--paper_model", "Llama-3-8B",
        ]
    )  # fmt: skip
    assert status == 0
    printed = capsys.readouterr().out
    assert "| GSM8K | 4 | 2 |" in printed and "| MMLU-Math | 0 | 2 |" in printed and "54.8" in printed
    results = json.loads((output / "results.json").read_text(encoding="utf-8"))
    assert set(SUITE_TASKS) <= set(results["results"])
    assert [score.n for score in load_scores(output / "results.json")] == [2, 2, 2, 2, 2]
    for task in SUITE_TASKS:
        rows = (output / "samples" / f"{task}.jsonl").read_text(encoding="utf-8").splitlines()
        assert [json.loads(row)["doc_id"] for row in rows] == [0, 1], task
    saved_table = (output / "results.md").read_text(encoding="utf-8")
    assert saved_table.startswith("| Benchmark |")
    assert render_table_from_results(output / "results.json") == saved_table
    samples = output / "samples"
    generated = [json.loads(line) for line in (samples / "mathcoder2_gsm8k.jsonl").read_text().splitlines()]
    assert [row["doc_id"] for row in generated] == [0, 1]
    assert all({"prediction", "extracted", "grade_reason", "correct"} <= set(row) for row in generated)
    chosen = [
        json.loads(line) for line in (output / "samples" / "mathcoder2_mmlu_math.jsonl").read_text().splitlines()
    ]
    assert all(len(row["loglikelihoods"]) == 4 and row["prediction"] in "ABCD" for row in chosen)
    assert results["mathcode"]["unscored"] == {}


@pytest.mark.slow
def test_suite_runs_against_a_served_model(embedded_server: object, benchmarks_dir: Path, tmp_path: Path) -> None:
    """``local-completions`` against the real llama.cpp server: prompts go out as text, answers come back graded."""
    config = EvalSuiteConfig(
        model="smollm2",
        backend="local-completions",
        base_url=embedded_server.url,  # type: ignore[attr-defined]
        tasks=["mathcoder2_gsm8k"],
        limit=1,
        data_dir=str(benchmarks_dir),
        max_gen_toks=8,
        num_fewshot=0,  # short prompts: the server's CPU time is what this test waits for
        output_dir=str(tmp_path / "served"),
    )
    output_dir, table = run_suite(config)
    assert "| GSM8K | 0 | 1 |" in table
    results = json.loads((output_dir / "results.json").read_text(encoding="utf-8"))
    assert [score["benchmark"] for score in results["mathcode"]["scores"]] == ["gsm8k"]
    generated = json.loads((output_dir / "samples" / "mathcoder2_gsm8k.jsonl").read_text().splitlines()[0])
    assert generated["prediction"] and generated["answer"] == "18"
    assert generated["grade_reason"] in {"numeric_mismatch", "exact", "numeric", "mismatch", "no_answer"}


def test_option_scores_without_log_probabilities_are_reported_unscored() -> None:
    """A server that answers ``echo`` requests without prompt log-probabilities (llama.cpp's) gives four zeros per
    question, and lm-eval would report "always A" as a score: such tasks are flagged instead."""
    zeros = [[(0.0, False)] * 4 for _ in range(3)]
    real = [[(-5.0, False), (-9.9, False), (-8.7, True), (-7.3, False)]]
    results = {
        "samples": {
            "mathcoder2_mmlu_math": [{"filtered_resps": responses} for responses in zeros],
            "mathcoder2_gsm8k": [{"filtered_resps": ["0"]}],
        }
    }
    assert list(find_unscorable_tasks(results)) == ["mathcoder2_mmlu_math"]
    results["samples"]["mathcoder2_mmlu_math"] = [{"filtered_resps": responses} for responses in zeros + real]
    assert find_unscorable_tasks(results) == {}
