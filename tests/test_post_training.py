"""Post-training in the chat format (NuminaMath-CoT / NuminaMath-TIR): labels, counted drops, recipes, a CPU run.

The expected masks are stated independently of :mod:`mathcode_pile.lce.syntax`: literally, token by token, for a short
row, and by plain string search over the rendered text for the shipped demo rows.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from mathcode_pile.config import RecipeError
from mathcode_pile.lce.labels import IGNORE_INDEX
from mathcode_pile.paths import REPO_ROOT
from training.sft_lce import parse_lce_args

TEMPLATE = REPO_ROOT / "training" / "chat_templates" / "user_assistant.jinja"
TIR_DEMO = REPO_ROOT / "mathcode_pile" / "lce" / "data" / "tir_demo.jsonl"
COT_DEMO = REPO_ROOT / "mathcode_pile" / "lce" / "data" / "cot_demo.jsonl"
TINY_TIR_RECIPE = "recipes/tiny-llama/sft/config_numina_tir.yaml"
#: ``make post-train MODEL=`` short names and their recipe folders.
POST_TRAIN_FOLDERS = {
    "llama3": "Llama-3-8B",
    "deepseekmath": "DeepSeekMath-7B-base",
    "mistral": "Mistral-7B-v0.1",
    "codellama": "CodeLlama-7B",
    "mathcoder2-llama3": "MathCoder2-Llama-3-8B",
    "mathcoder2-deepseekmath": "MathCoder2-DeepSeekMath-7B",
    "mathcoder2-mistral": "MathCoder2-Mistral-7B",
    "mathcoder2-codellama": "MathCoder2-CodeLlama-7B",
    "smollm2": "SmolLM2-135M-Instruct",
    "tiny": "tiny-llama",
}
BASE_IDS = {
    "Llama-3-8B": "meta-llama/Meta-Llama-3-8B",
    "DeepSeekMath-7B-base": "deepseek-ai/deepseek-math-7b-base",
    "Mistral-7B-v0.1": "mistralai/Mistral-7B-v0.1",
    "CodeLlama-7B": "codellama/CodeLlama-7b-hf",
}


@pytest.fixture(scope="module")
def chat_tokenizer(converted_model_dir: Path) -> Any:
    """SmolLM2's tokenizer with the shipped base-model chat template (adds no BOS of its own)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(converted_model_dir)
    tokenizer.chat_template = TEMPLATE.read_text(encoding="utf-8")
    return tokenizer


def chat_syntax(tokenizer: Any) -> Any:
    from mathcode_pile.lce.syntax import syntax_for

    return syntax_for("chat", tokenizer)


def test_tir_row_labels_token_by_token(chat_tokenizer: Any) -> None:
    """The prompt and the interpreter's output are -100; the answer's text, code, the output marker and the end of
    turn carry the loss."""
    from mathcode_pile.lce.dataset import tokenize_row

    answer = "Multiply.\n```python\nprint(6 * 7)\n```\n```output\n42\n```\nSo it is $\\boxed{42}$."
    row = {"messages": [{"role": "user", "content": "What is 6 times 7?"}, {"role": "assistant", "content": answer}]}
    example = tokenize_row(row, chat_tokenizer, chat_syntax(chat_tokenizer))
    shown = [
        (chat_tokenizer.decode([token]), label != IGNORE_INDEX)
        for token, label in zip(example.input_ids, example.labels, strict=True)
    ]
    prompt = ["User", ":", " What", " is", " ", "6", " times", " ", "7", "?", "\n", "\n", "Ass", "istant", ":"]
    text_and_code = [" Multip", "ly", ".", "\n", "```", "python", "\n", "print", "(", "6", " *", " ", "7", ")", "\n",
                     "```", "\n", "```", "output"]  # fmt: skip
    interpreter = ["\n", "4", "2", "\n", "```", "\n"]
    closing = ["So", " it", " is", " $\\", "box", "ed", "{", "4", "2", "}$", ".", "<|im_end|>"]
    assert shown == (
        [(token, False) for token in prompt]
        + [(token, True) for token in text_and_code]
        + [(token, False) for token in interpreter]
        + [(token, True) for token in closing]
    )
    assert all(label in (IGNORE_INDEX, token) for label, token in zip(example.labels, example.input_ids, strict=True))


def independent_trained_spans(rendered: str, eos: str) -> list[tuple[int, int]]:
    """Trained character spans by plain string search: after 'Assistant:' through the EOS, minus each output."""
    start = rendered.index("Assistant:") + len("Assistant:")
    end = rendered.index(eos, start) + len(eos)
    spans, cursor = [], start
    while (marker := rendered.find("```output", cursor, end)) != -1:
        spans.append((cursor, marker + len("```output")))
        closing = rendered.index("```", marker + len("```output")) + 3
        while rendered[closing].isspace():
            closing += 1
        cursor = closing
    spans.append((cursor, end))
    return spans


def test_shipped_tir_rows_train_the_answer_and_never_the_interpreter_output(chat_tokenizer: Any) -> None:
    from mathcode_pile.lce.dataset import tokenize_row

    rows = [json.loads(line) for line in TIR_DEMO.read_text(encoding="utf-8").splitlines()[:12]]
    for row in rows:
        example = tokenize_row(row, chat_tokenizer, chat_syntax(chat_tokenizer))
        rendered = chat_tokenizer.apply_chat_template(row["messages"], tokenize=False)
        encoding = chat_tokenizer(rendered, return_offsets_mapping=True)
        assert example.input_ids == encoding["input_ids"]
        spans = independent_trained_spans(rendered, chat_tokenizer.eos_token)
        expected = [any(lo <= begin < hi for lo, hi in spans) for begin, _ in encoding["offset_mapping"]]
        assert [label != IGNORE_INDEX for label in example.labels] == expected
        trained = chat_tokenizer.decode([t for t in example.labels if t != IGNORE_INDEX])
        outputs = [block for block in row["solution"].split("```output\n")[1:]]
        assert "```python" in trained and "print(" in trained and trained.endswith(chat_tokenizer.eos_token)
        for output in outputs:
            assert f"```output\n{output.split(chr(10))[0]}\n" not in trained


def test_bad_rows_are_skipped_and_counted_by_reason(chat_tokenizer: Any) -> None:
    from datasets import Dataset

    from mathcode_pile.lce.dataset import prepare_lce_dataset

    def chat(answer: str | None) -> list[dict[str, str]]:
        user = [{"role": "user", "content": "What is 2 + 3?"}]
        return user if answer is None else [*user, {"role": "assistant", "content": answer}]

    good = "Add.\n```python\nprint(2 + 3)\n```\n```output\n5\n```\nIt is $\\boxed{5}$."
    rows = [
        {"messages": chat(good), "problem": None, "solution": None},
        {"messages": None, "problem": "What is 2 + 3?", "solution": good},  # NuminaMath columns without messages
        {"messages": chat("Add.\n```python\nprint(2 + 3)\n"), "problem": None, "solution": None},
        {"messages": chat("It is\n```output\n5\n```\nfive."), "problem": None, "solution": None},
        {"messages": chat(None), "problem": None, "solution": None},
        {"messages": chat("Count: " + " ".join(str(n) for n in range(400))), "problem": None, "solution": None},
    ]
    kept, counters = prepare_lce_dataset(
        Dataset.from_list(rows), chat_tokenizer, max_length=200, syntax=chat_syntax(chat_tokenizer)
    )
    assert dict(counters) | {"tokens": 0, "trained_tokens": 0} == {
        "rows_in": 6,
        "rows_kept": 2,
        "dropped_unclosed_code_fence": 1,
        "dropped_output_without_code": 1,
        "dropped_no_assistant_turn": 1,
        "dropped_too_long": 1,
        "tokens": 0,
        "trained_tokens": 0,
    }
    assert kept[0]["input_ids"] == kept[1]["input_ids"], "messages and problem + solution are the same conversation"
    assert 0 < counters["trained_tokens"] < counters["tokens"]


def test_a_tokenizer_without_chat_template_is_refused_with_what_to_set(converted_model_dir: Path) -> None:
    from transformers import AutoTokenizer

    from mathcode_pile.lce.syntax import ChatTemplate

    tokenizer = AutoTokenizer.from_pretrained(converted_model_dir)
    tokenizer.chat_template = None
    with pytest.raises(ValueError, match="chat_template_path"):
        ChatTemplate(tokenizer)


def cpu_overrides() -> list[str]:
    import torch

    return [] if torch.cuda.is_available() else ["--use_cpu", "true"]


#: Each base model's recipe folder and its MathCoder2 model's.
PAIRS = {
    "Llama-3-8B": "MathCoder2-Llama-3-8B",
    "DeepSeekMath-7B-base": "MathCoder2-DeepSeekMath-7B",
    "Mistral-7B-v0.1": "MathCoder2-Mistral-7B",
    "CodeLlama-7B": "MathCoder2-CodeLlama-7B",
}


@pytest.mark.parametrize("base", list(PAIRS))
@pytest.mark.parametrize("data", ["cot", "tir"])
def test_gpu_recipes_pair_each_base_with_its_mathcoder2_model(base: str, data: str) -> None:
    parsed = {
        folder: parse_lce_args(["--config", f"recipes/{folder}/sft/config_numina_{data}.yaml", *cpu_overrides()])
        for folder in (base, PAIRS[base])
    }
    assert parsed[base][2].model_name_or_path == BASE_IDS[base]
    assert parsed[PAIRS[base]][2].model_name_or_path == f"MathGenie/{PAIRS[base]}"
    for folder, (script_args, training_args, _) in parsed.items():
        assert script_args.conversation_format == "chat"
        assert script_args.dataset_name == {"cot": "AI-MO/NuminaMath-CoT", "tir": "AI-MO/NuminaMath-TIR"}[data]
        assert Path(training_args.chat_template_path) == TEMPLATE.resolve()
        assert training_args.output_dir == f"outputs/{folder}-numina-{data}"
        rows = training_args.per_device_train_batch_size * training_args.gradient_accumulation_steps
        assert rows * script_args.hardware_gpus == 32 and training_args.max_length == 4096
        assert training_args.bf16 and training_args.learning_rate == 2e-5 and training_args.num_train_epochs == 3
        assert (
            f"x {script_args.hardware_gpus} GPUs"
            in Path(f"recipes/{folder}/sft/config_numina_{data}.yaml").read_text()
        )
    # the MathCoder2 model and its base train with exactly the same settings, so the pair compares
    base_args, partner_args = parsed[base][1], parsed[PAIRS[base]][1]
    for key in (
        "learning_rate",
        "num_train_epochs",
        "max_length",
        "per_device_train_batch_size",
        "warmup_steps",
        "seed",
    ):
        assert getattr(partner_args, key) == getattr(base_args, key)


def make_dry_run(*args: str, cwd: Path = REPO_ROOT) -> str:
    env = {key: value for key, value in os.environ.items() if not key.startswith("MAKE")}
    result = subprocess.run(
        ["make", "-n", "-f", str(REPO_ROOT / "Makefile"), *args],
        cwd=cwd, capture_output=True, text=True, check=True, env=env,
    )  # fmt: skip
    return result.stdout


def test_make_post_train_launches_accelerate_with_the_right_recipe() -> None:
    out = make_dry_run("post-train", "MODEL=llama3", "DATA=tir")
    assert (
        ".venv/bin/accelerate launch --config_file recipes/accelerate_configs/zero3.yaml -m training.sft_lce "
        "--config recipes/Llama-3-8B/sft/config_numina_tir.yaml" in out
    )
    for name, folder in POST_TRAIN_FOLDERS.items():
        for data in ("cot", "tir"):
            recipe = f"recipes/{folder}/sft/config_numina_{data}.yaml"
            assert (REPO_ROOT / recipe).is_file()
            assert f"--config {recipe}" in make_dry_run("post-train", f"MODEL={name}", f"DATA={data}")
    local = make_dry_run("post-train", "MODEL=tiny", "DATA=cot")
    assert ".venv/bin/python -m training.sft_lce --config recipes/tiny-llama/sft/config_numina_cot.yaml" in local
    assert "accelerate launch" not in local


def test_make_post_train_takes_a_local_mathcoder2_model_or_any_base_model(tmp_path: Path) -> None:
    for name in ("setup.cfg", "pyproject.toml"):  # what `install` depends on, in the folder make runs from
        (tmp_path / name).touch()
    released = make_dry_run("post-train", "MODEL=mathcoder2-mistral", "DATA=tir", cwd=tmp_path)
    assert "--model_name_or_path" not in released  # the recipe's MathGenie/MathCoder2-Mistral-7B
    (tmp_path / "outputs" / "MathCoder2-Mistral-7B").mkdir(parents=True)
    (tmp_path / "outputs" / "MathCoder2-Mistral-7B" / "config.json").write_text("{}", encoding="utf-8")
    local = make_dry_run("post-train", "MODEL=mathcoder2-mistral", "DATA=tir", cwd=tmp_path)
    assert "--model_name_or_path outputs/MathCoder2-Mistral-7B" in local
    chosen = make_dry_run("post-train", "MODEL=mathcoder2-mistral", "DATA=tir", "BASE_MODEL=org/my-cpt", cwd=tmp_path)
    assert "--model_name_or_path org/my-cpt" in chosen


def test_make_eval_tir_and_cot_run_the_one_evaluation() -> None:
    tir = make_dry_run("eval-tir", "MODEL=org/some-model", "LIMIT=3")
    assert "-m evaluation.tir_eval --mode tir --model org/some-model --output_dir outputs/eval_tir/some-model" in tir
    assert "--backend hf --limit 3" in tir
    served = make_dry_run("eval-cot", "MODEL=org/some-model", "BASE_URL=http://127.0.0.1:8000")
    assert "--mode cot" in served and "--backend endpoint" in served
    assert "--llm_endpoint http://127.0.0.1:8000" in served


def test_chat_format_refuses_an_unknown_template_file() -> None:
    with pytest.raises(RecipeError, match="file not found"):
        parse_lce_args(["--config", TINY_TIR_RECIPE, "--chat_template_path", "training/chat_templates/nope.jinja"])


@pytest.mark.slow
def test_tir_post_training_on_cpu_lowers_the_loss_then_evaluates_offline(tmp_path: Path, tiny_model_dir: Path) -> None:
    """The smoke path: train the tiny model on the shipped TIR set, evaluate it with code execution, card it."""
    from collections import Counter

    from evaluation.tir_eval import main as evaluate
    from training.lce_card import write_lce_model_card
    from training.sft_lce import train

    output = tmp_path / "tiny-numina-tir"
    argv = [
        "--config", TINY_TIR_RECIPE, "--model_name_or_path", str(tiny_model_dir), "--output_dir", str(output),
        "--max_train_samples", "48", "--max_steps", "6", "--per_device_train_batch_size", "4",
        "--learning_rate", "1.0e-2", "--warmup_steps", "0", "--save_strategy", "no", "--push_to_hub", "false",
    ]  # fmt: skip
    output_dir, losses = train(argv)
    assert len(losses) == 6 and losses[-1][1] < losses[0][1] - 1.0, f"loss did not fall: {losses}"
    record = json.loads((output_dir / "run_info.json").read_text())
    assert record["training_data"] == ["mathcode_pile/lce/data/tir_demo.jsonl"]
    settings = record["settings"]
    assert settings["chat_template"] == "user_assistant.jinja" and settings["conversation_format"] == "chat"
    stats = json.loads((output_dir / "lce_data_stats.json").read_text())
    assert stats["rows_kept"] == 48 and 0 < stats["trained_tokens"] < stats["tokens"]
    card = (output_dir / "README.md").read_text()
    assert "Provenance: `tir_demo.jsonl` is made by MathCode" in card and "![Training loss](plots/loss.png)" in card

    assert evaluate(
        ["--model", str(output_dir), "--mode", "tir", "--limit", "1", "--datasets", "gsm8k", "sat_math",
         "--max_new_tokens_per_block", "8", "--output_dir", str(output_dir / "eval_tir")]
    ) == 0  # fmt: skip
    results = json.loads((output_dir / "eval_tir" / "results.json").read_text())
    assert results["mathcode"]["post_training"]["training_data"] == record["training_data"]
    assert results["mathcode"]["paper_post_training"] == "tir"
    assert sorted(results["results"]) == ["mathcoder2_gsm8k", "mathcoder2_sat_math"]
    script_args, training_args, model_args = parse_lce_args(argv)
    counters = Counter(stats)
    card = write_lce_model_card(output_dir, script_args, training_args, model_args, counters, argv).read_text()
    assert "### tool-integrated (code runs)" in card and "| GSM8K | 0 | 1 |" in card
