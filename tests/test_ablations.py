"""The papers' ablations as recipes: MathCoder2's corpus rows at its ablation settings (3 epochs, 2M-token batches,
4096-token context) read as components of one build, MathCoder's CoT / PoT / LCE and execution-in-the-loss rows as
settings of the one LCE trainer, the make targets that launch them, and the CPU sweep that trains, evaluates and
compares two of them."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from mathcode_pile.paths import REPO_ROOT
from tests.test_recipes import parse_cpt, parse_sft

ABLATIONS = REPO_ROOT / "recipes"
CPT_ABLATIONS = sorted(ABLATIONS.glob("*/ablations/cpt_*.yaml"))
SFT_ABLATIONS = sorted(ABLATIONS.glob("*/ablations/sft_*.yaml"))
#: MathCoder2's ablation batch: 512 rows x 4096 tokens.
ABLATION_BATCH_TOKENS = 2 * 1024 * 1024
BASIC_COMPONENTS = {
    "open_web_math", "cc_en_math", "maths_college", "education_college_students", "starcoder_python",
    "starcoder_jupyter_scripts",
}  # fmt: skip
#: make's MODEL= short name of each model folder that has ablations.
MAKE_MODELS = {"Llama-3-8B": "llama3", "Llama-2-7B": "llama2", "tiny-llama": "tiny"}


def ablation_name(recipe: Path) -> str:
    return recipe.stem.split("_", 1)[1]


def test_mathcoder2_has_every_ablation_row_of_the_issue() -> None:
    names = {ablation_name(p) for p in CPT_ABLATIONS if p.parent.parent.name == "Llama-3-8B"}
    assert {"basic", "paired", "code_only"} <= names
    components = {name.removeprefix("only_") for name in names if name.startswith("only_")}
    assert components == {"open_web_math", "cc_en_math", "synthetic", "math_code", "translated_code"}
    assert {ablation_name(p) for p in SFT_ABLATIONS if p.parent.parent.name == "Llama-2-7B"} == {
        "cot", "pot", "lce", "execution_in_loss",
    }  # fmt: skip


@pytest.mark.parametrize("recipe", CPT_ABLATIONS, ids=lambda p: str(p.relative_to(ABLATIONS)))
def test_mathcoder2_ablations_have_the_papers_ablation_settings(recipe: Path, monkeypatch) -> None:
    from training.config import global_batch_tokens
    from training.data import sources_from_script_args

    monkeypatch.chdir(REPO_ROOT)
    script_args, training_args, model_args = parse_cpt(recipe.relative_to(REPO_ROOT))
    tokens = global_batch_tokens(training_args, script_args.hardware_gpus)
    assert abs(tokens - ABLATION_BATCH_TOKENS) <= 0.05 * ABLATION_BATCH_TOKENS
    assert f"x {script_args.hardware_gpus} GPUs" in recipe.read_text(encoding="utf-8").split("\n\n")[0]
    assert training_args.max_length == 4096 and training_args.num_train_epochs == 3
    assert training_args.learning_rate == 4e-5 and training_args.warmup_steps == 50 and training_args.bf16
    assert training_args.packing_strategy == "bfd_split" and not training_args.push_to_hub
    assert model_args.model_name_or_path == "meta-llama/Meta-Llama-3-8B"
    sources = sources_from_script_args(None, None, "train", script_args.dataset_mixture)
    components = {(Path(source.path).name, source.name) for source in sources}
    name = ablation_name(recipe)
    basic = {("mathcode_pile_full", component) for component in BASIC_COMPONENTS}
    expected = {
        "basic": basic,
        "paired": basic | {("mathcode_pile_full", "translated_code")},
        "code_only": basic | {("mathcode_pile_full_code_only", "translated_code")},
        "steps_only": basic | {("mathcode_pile_full_steps_only", "translated_code")},
        "only_synthetic": {("mathcode_pile_full", c) for c in ("maths_college", "education_college_students")},
        "only_math_code": {("mathcode_pile_full", c) for c in ("starcoder_python", "starcoder_jupyter_scripts")},
    }.get(name, {("mathcode_pile_full", name.removeprefix("only_"))})  # fmt: skip
    assert components == expected
    assert training_args.output_dir == f"outputs/ablations/Llama-3-8B-{name}"


@pytest.mark.parametrize("recipe", SFT_ABLATIONS, ids=lambda p: str(p.relative_to(ABLATIONS)))
def test_mathcoder_ablations_change_only_the_ablated_setting(recipe: Path, monkeypatch) -> None:
    from mathcode_pile.config import read_recipe

    monkeypatch.chdir(REPO_ROOT)
    script_args, training_args, _ = parse_sft(recipe.relative_to(REPO_ROOT))
    name = ablation_name(recipe)
    assert script_args.solution_format == {"cot": "cot", "pot": "pot"}.get(name, "lce")
    assert training_args.mask_execution == (name != "execution_in_loss")
    if recipe.parent.parent.name == "tiny-llama":
        return
    base = read_recipe(REPO_ROOT / "recipes" / recipe.parent.parent.name / "sft" / "config_lce.yaml")
    ablated = read_recipe(recipe)
    changed = {key for key in set(base) | set(ablated) if base.get(key) != ablated.get(key)}
    assert changed <= {"solution_format", "mask_execution", "output_dir", "push_to_hub", "hub_model_id",
                       "save_total_limit"}, changed  # fmt: skip


def test_every_ablation_has_a_readme_row_with_its_make_command() -> None:
    readme = (ABLATIONS / "README.md").read_text(encoding="utf-8")
    for recipe in CPT_ABLATIONS + SFT_ABLATIONS:
        path = str(recipe.relative_to(REPO_ROOT))
        rows = [line for line in readme.splitlines() if line.startswith("|") and f"`{path}`" in line]
        target = "train" if recipe.stem.startswith("cpt_") else "train-lce"
        command = f"make {target} MODEL={MAKE_MODELS[recipe.parent.parent.name]} ABLATION={ablation_name(recipe)}"
        assert rows and command in rows[0], f"recipes/README.md lacks a row for {path} with `{command}`"


def make_dry_run(*arguments: str) -> str:
    completed = subprocess.run(["make", "-n", *arguments], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    return completed.stdout


def test_make_train_shows_the_ablation_launch_and_its_batch_arithmetic() -> None:
    printed = make_dry_run("train", "MODEL=llama3", "ABLATION=code_only")
    assert (
        "recipes/Llama-3-8B/ablations/cpt_code_only.yaml: global batch = 4 rows/device x 8 accumulation x 16 GPUs x "
        "4,096 tokens = 512 rows = 2,097,152 tokens per step"
    ) in printed
    assert (
        "accelerate launch --config_file recipes/accelerate_configs/zero3.yaml -m training.cpt "
        "--config recipes/Llama-3-8B/ablations/cpt_code_only.yaml"
    ) in printed
    lce = make_dry_run("train-lce", "MODEL=llama2", "ABLATION=cot")
    assert "-m training.sft_lce --config recipes/Llama-2-7B/ablations/sft_cot.yaml" in lce
    assert "= 128 rows = 262,144 tokens per step" in lce
    plain = make_dry_run("train", "MODEL=llama3")  # without ABLATION: the full recipe, as before
    assert "--config recipes/Llama-3-8B/cpt/config_full.yaml" in plain and "4,194,304 tokens per step" in plain
    missing = subprocess.run(["make", "train", "MODEL=llama3", "ABLATION=nope"], cwd=REPO_ROOT, capture_output=True,
                             text=True)  # fmt: skip
    assert missing.returncode != 0 and "no ablation 'nope' for MODEL=llama3" in missing.stdout


def test_full_pile_builds_the_ablation_corpora_from_the_same_work_folder(monkeypatch) -> None:
    from mathcode_pile.pipeline import parse_build_configs
    from mathcode_pile.stages.render_computations import RenderComputationsConfig

    monkeypatch.chdir(REPO_ROOT)
    recipe = REPO_ROOT / "recipes" / "mathcode_pile" / "full.yaml"
    overrides = ["--render_mode", "code_only", "--output_dir", "data/mathcode_pile_full_code_only",
                 "--work_dir", "data/mathcode_pile_full_work"]  # fmt: skip
    configs = parse_build_configs(recipe, overrides)
    assert configs.pipeline.stages[-1] == "render_computations"
    assert configs.stage_configs[RenderComputationsConfig].render_mode == "code_only"
    assert configs.pipeline.resolved_work_dir == parse_build_configs(recipe).pipeline.resolved_work_dir


def test_the_smoke_sweep_trains_evaluates_and_compares_the_two_tiny_variants() -> None:
    printed = make_dry_run("ablation-smoke", "SMOKE_DIR=/somewhere")
    for variant in ("lce", "execution_in_loss"):
        recipe = f"recipes/tiny-llama/ablations/sft_{variant}.yaml"
        assert f"training.sft_lce --config {recipe} --output_dir /somewhere/{variant}" in printed
        assert f"evaluation.lce.evaluate --model /somewhere/{variant}" in printed
    assert re.search(r"mathcode-eval compare /somewhere/lce/eval_lce /somewhere/execution_in_loss/eval_lce\s+"
                     r"(\\\s+)?--paper mathcoder-table5 --output /somewhere", printed)  # fmt: skip


# -- the pieces the sweep runs, for real, on a tiny model ---------------------------------------------------------


def test_training_data_is_read_by_component_configuration(tmp_path: Path) -> None:
    from datasets import Dataset

    from mathcode_pile.assemble import assemble_corpus
    from mathcode_pile.config import RecipeError
    from training.data import load_documents, parse_mixture, sources_from_script_args

    rows = [(source, f"{source} row {i}") for i in range(3) for source in ("web_math", "translated_code", "textbook")]
    pile = assemble_corpus(
        Dataset.from_dict({"id": [f"d{i}" for i in range(len(rows))], "text": [t for _, t in rows],
                           "source": [s for s, _ in rows], "metadata": ["{}"] * len(rows)}),
        [], tmp_path / "pile", pretty_name="P", recipe="r.yaml", kinds={}, rows_per_shard=10, tokenizer=None,
    )  # fmt: skip
    sources = parse_mixture([{"path": str(pile), "name": ["web_math", "translated_code"], "weight": 2.0}])
    documents, reports = load_documents(sources)
    assert [report.name for report in reports] == [f"{pile}:web_math", f"{pile}:translated_code"]
    assert [report.documents for report in reports] == [6, 6]  # three rows each, weight 2
    assert sorted(set(documents["text"])) == sorted({t for s, t in rows if s != "textbook"})
    by_flag = sources_from_script_args(str(pile), "textbook, web_math", "train", [])
    assert [source.name for source in by_flag] == ["textbook", "web_math"]
    with pytest.raises(RecipeError, match="no_such_component"):
        load_documents(sources_from_script_args(str(pile), "no_such_component", "train", []))


@pytest.mark.slow
def test_smoke_pieces_train_both_variants_evaluate_and_compare(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from evaluation.compare import main as compare
    from evaluation.lce.evaluate import main as evaluate
    from training.sft_lce import main as train

    monkeypatch.chdir(REPO_ROOT)
    for variant in ("lce", "execution_in_loss"):
        recipe = f"recipes/tiny-llama/ablations/sft_{variant}.yaml"
        arguments = ["--config", recipe, "--model_name_or_path", str(tiny_model_dir), "--max_steps", "2",
                     "--max_train_samples", "16", "--output_dir", str(tmp_path / variant)]  # fmt: skip
        assert train(arguments) == 0
        assert evaluate(["--model", str(tmp_path / variant), "--output_dir", str(tmp_path / variant / "eval_lce"),
                         "--limit", "1", "--max_new_tokens_per_block", "8", "--max_blocks", "2"]) == 0  # fmt: skip
    trained = {v: json.loads((tmp_path / v / "lce_data_stats.json").read_text())["trained_tokens"] for v in
               ("lce", "execution_in_loss")}  # fmt: skip
    assert trained["execution_in_loss"] > trained["lce"]  # the execution output carries a loss there
    assert compare([str(tmp_path / "lce" / "eval_lce"), str(tmp_path / "execution_in_loss" / "eval_lce"),
                    "--paper", "mathcoder-table5", "--output", str(tmp_path / "comparison")]) == 0  # fmt: skip
    table = (tmp_path / "comparison" / "comparison.md").read_text(encoding="utf-8")
    assert "| **lce** |" in table and "| **execution_in_loss** |" in table
    assert "| lce |" in table and "70.2 |" in table  # the paper's LCE average beside the run's
    assert (tmp_path / "comparison" / "comparison.png").stat().st_size > 5000
