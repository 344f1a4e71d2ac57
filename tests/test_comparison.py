"""``mathcode-eval compare``: runs of every evaluation kind in one table and one plot, with Wilson intervals, the
difference from the first run, interval overlap, what each model was trained on, and the paper's figures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evaluation.cli import main as eval_cli
from evaluation.comparison import load_run, load_runs, render_comparison
from evaluation.lce.evaluate import summarize_benchmark
from evaluation.lce.report import save_results
from evaluation.paper_results import AVERAGE, PAPER_ABLATIONS
from evaluation.results_table import wilson_interval
from evaluation.run_eval import EvalSuiteConfig, write_outputs
from training.run_info import write_run_info

LCE_BENCHMARKS = ("gsm8k", "math", "svamp", "mathematics", "simuleq")


def lce_run(folder: Path, model: str, correct: dict[str, int], rows: int = 20) -> Path:
    """An eval-lce output folder written by the evaluation's own summary and writer."""
    results = {"model": model, "backend": "transformers", "limit": rows, "inference": {}, "benchmarks": {}}
    for name, right in correct.items():
        graded = [
            {"correct": index < right, "finish_reason": "end_of_message", "grade_reason": "math_verify"}
            for index in range(rows)
        ]
        results["benchmarks"][name] = summarize_benchmark(graded)
    save_results(results, folder / "results.json")
    return folder


def lm_eval_run(folder: Path, model: str, correct: dict[str, int], n: int = 40) -> Path:
    """A make eval output folder written by ``run_eval.write_outputs`` from lm-eval-shaped results."""
    tasks = {f"mathcoder2_{name}": right for name, right in correct.items()}
    results = {
        "results": {task: {"acc,none": right / n} for task, right in tasks.items()},
        "n-samples": {task: {"effective": n, "original": n} for task in tasks},
        "n-shot": dict.fromkeys(tasks, 4),
        "samples": {
            task: [
                {"doc_id": i, "doc": {"answer": "1"}, "filtered_resps": ["1" if i < right else "2"], "acc": i < right}
                for i in range(n)
            ]
            for task, right in tasks.items()
        },
    }
    write_outputs(EvalSuiteConfig(model=model), results, folder)
    return folder


def test_lce_runs_with_the_papers_table5(tmp_path: Path) -> None:
    masked_model, in_loss_model = tmp_path / "masked", tmp_path / "in_loss"
    for model, ablation_recipe, mask in (
        (masked_model, "recipes/tiny-llama/ablations/sft_lce.yaml", True),
        (in_loss_model, "recipes/tiny-llama/ablations/sft_execution_in_loss.yaml", False),
    ):
        model.mkdir()
        write_run_info(model, trainer="training.sft_lce", base_model="outputs/models/tiny",
                       training_data=["lce_demo.jsonl"], argv=["--config", ablation_recipe],
                       settings={"solution_format": "lce", "mask_execution": mask})  # fmt: skip
    first = lce_run(masked_model / "eval_lce", str(masked_model), dict.fromkeys(LCE_BENCHMARKS, 10))
    better_gsm8k = {**dict.fromkeys(LCE_BENCHMARKS, 10), "gsm8k": 19}
    second = lce_run(in_loss_model / "eval_lce", str(in_loss_model), better_gsm8k)
    runs = load_runs([first, second])
    assert [run.label for run in runs] == ["lce", "execution_in_loss"]
    assert runs[1].settings == {"solution_format": "lce", "mask_execution": False}
    table = render_comparison(runs, PAPER_ABLATIONS["mathcoder-table5"])
    low, high = wilson_interval(19, 20)
    assert f"| GSM8K | execution_in_loss | 20 | 95.0 ({100 * low:.1f}–{100 * high:.1f}) | +45.0 | no |  |" in table
    assert "| SVAMP | execution_in_loss | 20 | 50.0 (29.9–70.1) | +0.0 | yes |  |" in table
    assert "| GSM8K | lce | 20 | 50.0 (29.9–70.1) | reference |  |  |" in table
    # the average over the five benchmarks sits beside the paper's LCE average (Table 5); the other row has none
    assert "| lce | 50.0 | reference | 70.2 |" in table and "| execution_in_loss | 59.0 | +9.0 |  |" in table
    assert "`outputs/models/tiny`" in table and "`lce_demo.jsonl` (mask_execution=False, solution_format=lce)" in table
    assert "Table 5, row LCE" in table and "only the first 20 problem(s)" in table


def test_make_eval_and_eval_lce_runs_in_one_table_named_by_their_training(tmp_path: Path) -> None:
    base = lm_eval_run(tmp_path / "eval" / "Meta-Llama-3-8B", "meta-llama/Meta-Llama-3-8B",
                       {"gsm8k": 20, "math": 8})  # fmt: skip
    trained = tmp_path / "outputs" / "code_only"
    trained.mkdir(parents=True)
    write_run_info(trained, trainer="training.cpt", base_model="meta-llama/Meta-Llama-3-8B",
                   training_data=["data/pile:web_math", "data/pile_code_only:translated_code"],
                   argv=["--config", "recipes/Llama-3-8B/ablations/cpt_code_only.yaml"])  # fmt: skip
    ablated = lm_eval_run(tmp_path / "eval" / "code_only", str(trained), {"gsm8k": 30, "math": 8})
    lce = lce_run(tmp_path / "eval_lce" / "m", "org/lce-model", {"gsm8k": 2, "svamp": 9})
    assert load_run(base / "results.json").suite == "mathcoder2"  # a results.json path works as well as its folder

    output = tmp_path / "comparison"
    assert eval_cli(["compare", str(base), str(ablated), str(lce), "--paper", "mathcoder2-ablation",
                     "--output", str(output)]) == 0  # fmt: skip
    table = (output / "comparison.md").read_text(encoding="utf-8")
    assert (output / "comparison.png").stat().st_size > 5000 and "](comparison.png)" in table
    assert "| **code_only** |" in table and "`data/pile_code_only:translated_code`" in table
    assert "basic data + translated code without its reasoning steps" in table
    assert "| GSM8K | code_only | 40 | 75.0 (59.8–85.8) | +25.0 | yes |  |" in table
    assert "| SVAMP | org/lce-model | 20 | 45.0 (25.8–65.8) |  |  |  |" in table  # the reference has no SVAMP
    assert "| GSM8K | org/lce-model | 20 | 10.0 (2.8–30.1) | -40.0 | no |  |" in table
    # no average: MATH is not shared by every run, so only GSM8K is, and one benchmark makes no average
    assert "## Average" not in table
    assert "no row of mathcoder2-ablation matches (ablation unknown)" in table


def test_bad_runs_are_errors_naming_the_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert eval_cli(["compare", str(tmp_path / "missing")]) == 2
    assert "missing: no results.json" in capsys.readouterr().err
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "results.json").write_text(json.dumps({"results": {}}), encoding="utf-8")
    assert eval_cli(["compare", str(tmp_path / "other")]) == 2
    assert "neither a 'mathcode.scores' block" in capsys.readouterr().err


def test_paper_figures_are_cited_and_never_invented() -> None:
    table5 = PAPER_ABLATIONS["mathcoder-table5"]
    assert {row.key: row.figures.get(AVERAGE) for row in table5.rows} == {
        "cot": 35.1, "pot": 69.1, "lce": 70.2, "execution_in_loss": None,
    }  # fmt: skip
    for table in PAPER_ABLATIONS.values():
        for row in table.rows:
            assert row.source and (row.figures or "not confirmed" in row.source or "could be confirmed" in row.source)
