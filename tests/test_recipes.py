"""Every recipe under ``recipes/`` is parsed by the parser its entry point uses, found by glob, dispatched on folder.

Kinds: ``<Model>/cpt/*.yaml`` (continued pretraining, ``TrlParser``), ``<Model>/sft/*.yaml`` (LCE SFT),
``<Model>/ablations/cpt_*.yaml`` / ``sft_*.yaml`` (the papers' ablations, parsed by the same two parsers),
``mathcode_pile/*.yaml`` (corpus builds), ``mathcode_instruct/*.yaml`` (LCE instruction data), ``eval/*.yaml``
(evaluation suites), ``accelerate_configs/*.yaml`` (Accelerate's own loader). A recipe in any other place fails
with a message saying where to add its parser.
The paper recipes must also reach MathCoder2's global batch of 4M tokens on the GPUs they state.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mathcode_pile.paths import REPO_ROOT

RECIPES_DIR = REPO_ROOT / "recipes"
RECIPES = sorted(RECIPES_DIR.rglob("*.yaml"))
#: MathCoder2's global batch: 512 rows x 8192 tokens (Llama-3-8B) or 1024 x 4096 (the 7B models), 4M tokens.
PAPER_BATCH_TOKENS = 4 * 1024 * 1024
#: MODEL= short names of `make train` and the recipes they run.
TRAIN_MODELS = {
    "llama3": "recipes/Llama-3-8B/cpt/config_full.yaml",
    "deepseekmath": "recipes/DeepSeekMath-7B-base/cpt/config_full.yaml",
    "mistral": "recipes/Mistral-7B-v0.1/cpt/config_full.yaml",
    "codellama": "recipes/CodeLlama-7B/cpt/config_full.yaml",
    "smollm2": "recipes/SmolLM2-135M-Instruct/cpt/config_full.yaml",
    "tiny": "recipes/tiny-llama/cpt/config_full.yaml",
}


def cpu_overrides() -> list[str]:
    """bf16 recipes are written for GPUs; on a CPU machine ``use_cpu`` lets TrainingArguments accept them."""
    import torch

    return [] if torch.cuda.is_available() else ["--use_cpu", "true"]


def recipe_kind(path: Path) -> str:
    parts = path.relative_to(RECIPES_DIR).parts
    if parts[0] in ("accelerate_configs", "mathcode_pile", "mathcode_instruct", "eval") and len(parts) == 2:
        return parts[0]
    if len(parts) == 3 and parts[1] in ("cpt", "sft"):
        return parts[1]
    if len(parts) == 3 and parts[1] == "ablations" and parts[2].split("_")[0] in ("cpt", "sft"):
        return parts[2].split("_")[0] + "_ablation"
    return "unknown"


def parse_cpt(path: Path) -> tuple[Any, ...]:
    from training.config import parse_cpt_args

    return parse_cpt_args(["--config", str(path), *cpu_overrides()])


def parse_sft(path: Path) -> tuple[Any, ...]:
    from training.sft_lce import parse_lce_args

    return parse_lce_args(["--config", str(path), *cpu_overrides()])


def parse_pile(path: Path) -> Any:
    from mathcode_pile.pipeline import parse_build_configs

    return parse_build_configs(path)


def parse_instruct(path: Path) -> Any:
    from mathcode_pile.instruct.build import parse_instruct_configs

    return parse_instruct_configs(path)


def parse_eval(path: Path) -> Any:
    import yaml

    from evaluation.run_eval import parse_eval_args

    # a suite without a model takes it on the command line, as `make eval MODEL=...` does
    values = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    model = [] if "model" in values else ["--model", "smollm2"]
    return parse_eval_args(["--config", str(path), *model])


def parse_accelerate(path: Path) -> Any:
    from accelerate.commands.config.config_args import load_config_from_file

    config = load_config_from_file(str(path))
    assert config.mixed_precision == "bf16", f"{path}: the recipes train in bf16"
    return config


PARSERS: dict[str, Callable[[Path], Any]] = {
    "cpt": parse_cpt,
    "sft": parse_sft,
    "cpt_ablation": parse_cpt,
    "sft_ablation": parse_sft,
    "mathcode_pile": parse_pile,
    "mathcode_instruct": parse_instruct,
    "eval": parse_eval,
    "accelerate_configs": parse_accelerate,
}


def test_recipes_are_found() -> None:
    kinds = {recipe_kind(p) for p in RECIPES}
    assert {"cpt", "accelerate_configs", "mathcode_pile", "mathcode_instruct"} <= kinds


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: str(p.relative_to(RECIPES_DIR)))
def test_every_recipe_parses_with_its_real_parser(recipe: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO_ROOT)  # recipes name files relative to the repository root, as `make` runs them
    kind = recipe_kind(recipe)
    if kind not in PARSERS:
        pytest.fail(
            f"{recipe.relative_to(REPO_ROOT)}: no parser for recipes in this place (kind '{kind}'); put it under "
            "<Model>/cpt|sft/, <Model>/ablations/cpt_|sft_*, mathcode_pile/, mathcode_instruct/, eval/ or "
            "accelerate_configs/, or add its parser "
            f"to PARSERS in {__file__}"
        )
    assert PARSERS[kind](recipe.relative_to(REPO_ROOT)) is not None


CPT_RECIPES = [p for p in RECIPES if recipe_kind(p) == "cpt"]


@pytest.mark.parametrize("recipe", CPT_RECIPES, ids=lambda p: str(p.relative_to(RECIPES_DIR)))
def test_cpt_recipe_batch_and_packing(recipe: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Paper recipes reach 4M tokens per step (within 5%) on the GPUs they state; smoke recipes state none."""
    from training.config import global_batch_tokens

    monkeypatch.chdir(REPO_ROOT)
    script_args, training_args, model_args = parse_cpt(recipe.relative_to(REPO_ROOT))
    assert training_args.packing and training_args.packing_strategy == "bfd_split"
    if script_args.hardware_gpus is None:
        assert model_args.model_name_or_path.startswith("outputs/models/"), (
            f"{recipe}: a recipe for a Hub model must state hardware_gpus"
        )
        assert not training_args.bf16, f"{recipe}: CPU smoke recipes need bf16: false"
        return
    tokens = global_batch_tokens(training_args, script_args.hardware_gpus)
    assert abs(tokens - PAPER_BATCH_TOKENS) <= 0.05 * PAPER_BATCH_TOKENS, (
        f"{recipe}: {tokens:,} tokens per step on {script_args.hardware_gpus} GPUs, not 4M"
    )
    header = recipe.read_text(encoding="utf-8").split("\n\n")[0]
    assert f"x {script_args.hardware_gpus} GPUs" in header, f"{recipe}: the header must state the GPU arithmetic"
    assert training_args.learning_rate == 4e-5 and training_args.warmup_steps == 50
    assert training_args.weight_decay == 0.1 and training_args.num_train_epochs == 3
    assert training_args.lr_scheduler_type.value == "cosine" and training_args.bf16
    assert model_args.attn_implementation == "flash_attention_2"
    expected_context = 8192 if "Llama-3" in model_args.model_name_or_path else 4096
    assert training_args.max_length == expected_context


def test_make_train_models_map_to_recipes() -> None:
    makefile = (REPO_ROOT / "Makefile").read_text(encoding="utf-8")
    mapping = dict(re.findall(r"^CPT_RECIPE_(\w+) := (\S+)$", makefile, flags=re.MULTILINE))
    assert mapping == TRAIN_MODELS
    assert all((REPO_ROOT / path).is_file() for path in mapping.values())


def test_recipes_readme_rows_and_paths() -> None:
    """Each cpt recipe has a README row with its command and estimated memory; every path the README names exists."""
    from training.memory import estimate_recipe_memory

    readme = (RECIPES_DIR / "README.md").read_text(encoding="utf-8")
    for name, path in TRAIN_MODELS.items():
        rows = [line for line in readme.splitlines() if line.startswith("|") and f"`{path}`" in line]
        assert rows, f"recipes/README.md has no table row for {path}"
        assert f"make train MODEL={name}" in rows[0]
        estimate, _ = estimate_recipe_memory(REPO_ROOT / path)
        assert f"{estimate.total_gib:.0f} GiB" in rows[0], f"memory of {path} in the README is out of date"
    named = set(re.findall(r"`((?:recipes|training|benchmarks|hub_cards)/[^`\s]+)`", readme))
    missing = sorted(p for p in named if "<" not in p and not (REPO_ROOT / p).exists())
    assert not missing, f"recipes/README.md names missing paths: {missing}"


def test_make_post_train_models_map_to_recipes_with_readme_rows() -> None:
    """Each ``make post-train MODEL=`` short name has a CoT and a TIR recipe, each with a README row and command."""
    makefile = (REPO_ROOT / "Makefile").read_text(encoding="utf-8")
    folders = dict(re.findall(r"^POST_MODEL_DIR_([\w-]+) := (\S+)$", makefile, flags=re.MULTILINE))
    assert len(folders) == 10 and {"llama3", "mathcoder2-llama3", "smollm2", "tiny"} <= set(folders)
    readme = (RECIPES_DIR / "README.md").read_text(encoding="utf-8")
    for name, folder in folders.items():
        for data in ("cot", "tir"):
            recipe = RECIPES_DIR / folder / "sft" / f"config_numina_{data}.yaml"
            assert recipe.is_file(), f"make post-train MODEL={name} DATA={data} has no recipe {recipe}"
            if name not in ("smollm2", "tiny"):
                named = f"`recipes/{folder}/sft/config_numina_{data}.yaml`"
                rows = [line for line in readme.splitlines() if named in line]
                assert rows and f"make post-train MODEL={name} DATA={data}" in rows[0]
