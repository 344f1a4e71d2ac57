"""LCE SFT: recipes with the paper's settings, refused settings, and a real CPU run whose loss falls."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mathcode_pile.config import RecipeError
from training.sft_lce import parse_lce_args

PAPER_RECIPES = ("recipes/Llama-2-7B/sft/config_lce.yaml", "recipes/CodeLlama-7B/sft/config_lce.yaml")
TINY_RECIPE = "recipes/tiny-llama/sft/config_lce.yaml"


@pytest.mark.parametrize("recipe", PAPER_RECIPES)
def test_paper_recipes_parse_with_mathcoder_settings(recipe: str) -> None:
    import torch

    # bf16 recipes are written for GPUs; on a CPU machine use_cpu lets TrainingArguments accept them
    cpu = [] if torch.cuda.is_available() else ["--use_cpu", "true"]
    script_args, training_args, model_args = parse_lce_args(["--config", recipe, *cpu])
    assert training_args.bf16
    assert training_args.learning_rate == 2e-5
    assert training_args.max_length == 2048
    assert training_args.lr_scheduler_type.value == "cosine"
    assert training_args.num_train_epochs == 3
    assert training_args.warmup_steps == 50
    rows_per_step = training_args.per_device_train_batch_size * training_args.gradient_accumulation_steps
    assert rows_per_step * script_args.hardware_gpus == 128
    assert training_args.packing and training_args.packing_strategy == "bfd"
    assert script_args.dataset_name == "MathLLM/MathCodeInstruct"
    assert model_args.model_name_or_path in ("meta-llama/Llama-2-7b-hf", "codellama/CodeLlama-7b-hf")


LCE_MODELS = {
    "llama2": PAPER_RECIPES[0],
    "codellama": PAPER_RECIPES[1],
    "smollm2": "recipes/SmolLM2-135M-Instruct/sft/config_lce.yaml",
    "tiny": TINY_RECIPE,
}


def test_every_lce_recipe_has_a_make_target_and_a_readme_row() -> None:
    makefile = Path("Makefile").read_text(encoding="utf-8")
    readme = Path("recipes/README.md").read_text(encoding="utf-8")
    for name, recipe in LCE_MODELS.items():
        assert f"LCE_RECIPE_{name} := {recipe}" in makefile
        rows = [line for line in readme.splitlines() if line.startswith("|") and f"`{recipe}`" in line]
        assert rows and f"make train-lce MODEL={name}" in rows[0], f"recipes/README.md lacks a row for {recipe}"


def test_tiny_recipe_parses() -> None:
    script_args, training_args, _ = parse_lce_args(["--config", TINY_RECIPE])
    assert Path(script_args.dataset_name).is_file()
    assert not training_args.bf16


@pytest.mark.parametrize(
    ("override", "complaint"),
    [
        (["--packing_strategy", "bfd_split"], "must be 'bfd'"),
        (["--completion_only_loss", "true"], "pre-built 'labels'"),
        (["--max_train_samples", "0"], "max_train_samples must be >= 1"),
    ],
)
def test_settings_that_would_break_examples_are_refused(override: list[str], complaint: str) -> None:
    with pytest.raises(RecipeError, match=complaint):
        parse_lce_args(["--config", TINY_RECIPE, *override])


def test_unknown_recipe_key_names_the_file(tmp_path: Path) -> None:
    recipe = tmp_path / "bad.yaml"
    recipe.write_text(Path(TINY_RECIPE).read_text(encoding="utf-8") + "learning_rat: 1.0e-3\n", encoding="utf-8")
    with pytest.raises(RecipeError, match=r"bad.yaml: unknown key\(s\) \['learning_rat'\]"):
        parse_lce_args(["--config", str(recipe)])


def test_training_on_cpu_lowers_the_loss_and_writes_model_tokenizer_and_card(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    from transformers import AutoTokenizer

    from mathcode_pile.lce.format import LCE_SPECIAL_TOKENS
    from training.sft_lce import train

    output = tmp_path / "run"
    argv = [
        "--config", TINY_RECIPE, "--model_name_or_path", str(tiny_model_dir), "--output_dir", str(output),
        "--max_train_samples", "32", "--max_steps", "5", "--per_device_train_batch_size", "4",
        "--learning_rate", "1.0e-2", "--warmup_steps", "0", "--save_strategy", "no", "--push_to_hub", "false",
    ]  # fmt: skip
    output_dir, losses = train(argv)

    assert len(losses) == 5
    first, last = losses[0][1], losses[-1][1]
    assert last < first - 1.0, f"loss did not fall: {losses}"
    tokenizer = AutoTokenizer.from_pretrained(output_dir)
    assert all(len(tokenizer.encode(t, add_special_tokens=False)) == 1 for t in LCE_SPECIAL_TOKENS)
    stats = json.loads((output_dir / "lce_data_stats.json").read_text())
    assert stats["rows_kept"] == 32 and stats["trained_tokens"] < stats["tokens"]
    card = (output_dir / "README.md").read_text()
    assert "every execution block (markers and output) are masked out" in card
    assert "| rows trained on | 32 |" in card


def test_card_sets_lce_results_beside_the_paper(tmp_path: Path) -> None:
    from collections import Counter

    from evaluation.lce.report import save_results
    from training.lce_card import write_lce_model_card

    script_args, training_args, model_args = parse_lce_args(
        ["--config", TINY_RECIPE, "--output_dir", str(tmp_path), "--model_name_or_path", "codellama/CodeLlama-7b-hf"]
    )
    results = {"model": "MathCode-tiny-lce", "limit": 10, "benchmarks": {"gsm8k": {"rows": 10, "accuracy": 0.3}}}
    save_results(results, tmp_path / "eval_lce" / "results.json")
    counters = Counter(rows_in=3, rows_kept=2, dropped_too_long=1, tokens=300, trained_tokens=200)
    card = write_lce_model_card(tmp_path, script_args, training_args, model_args, counters, ["--config", TINY_RECIPE])
    text = card.read_text(encoding="utf-8")
    assert "base_model: codellama/CodeLlama-7b-hf" in text
    assert "[codellama/CodeLlama-7b-hf](https://huggingface.co/codellama/CodeLlama-7b-hf) fine-tuned" in text
    assert "| rows dropped: too_long | 1 |" in text
    assert "| MathCode-tiny-lce (this run) | 30.0 (n=10) | - | - | - | - | - |" in text
    assert "| MathCoder-L-7B (Llama-2), paper | 64.2 | 23.3 | 71.5 | 46.9 | 47.5 | 50.7 |" in text
