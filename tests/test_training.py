"""Continued pretraining: tokenization, packing, data mixture, resume, model card and upload folder.

Everything runs on CPU with a random-init two-layer Llama (``training.local_models.prepare_tiny``) whose tokenizer
adds a BOS like Llama's; the embedded SmolLM2 tokenizer stands for models without BOS.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from datasets import Dataset
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer
from trl import pack_dataset
from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

from mathcode_pile.config import RecipeError
from training.card import (
    EvalRow,
    ModelCardError,
    ModelCardInputs,
    load_eval_results,
    render_model_card,
    validate_model_card,
)
from training.checkpoints import find_resume_checkpoint
from training.config import parse_cpt_args
from training.cpt import prepare_run, run_cpt
from training.data import DataSource, SourceReport, load_documents, parse_mixture, sources_from_script_args
from training.hub import UPLOAD_DIR_NAME, publish_model, stage_upload_folder
from training.local_models import prepare_tiny
from training.model_init import check_model_path, resolve_attn_implementation
from training.tokenization import frame_document, tokenize_dataset, tokenizer_adds_bos

FIXTURES = Path(__file__).parent / "fixtures" / "training"
DOCUMENTS = FIXTURES / "documents.jsonl"


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same random-init tiny Llama that ``make train MODEL=tiny`` uses (BOS-adding tokenizer)."""
    return prepare_tiny(tmp_path_factory.mktemp("models") / "tiny")


@pytest.fixture(scope="module")
def bos_tokenizer(tiny_model: Path) -> Any:
    return AutoTokenizer.from_pretrained(tiny_model)


def fixture_documents() -> list[str]:
    return [json.loads(line)["text"] for line in DOCUMENTS.read_text(encoding="utf-8").splitlines()]


def non_empty_documents() -> list[str]:
    return [text for text in fixture_documents() if text.strip()]


def write_recipe(path: Path, values: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(values, sort_keys=False), encoding="utf-8")
    return path


def tiny_recipe(model: Path, output_dir: Path, **overrides: Any) -> dict[str, Any]:
    """A cpt recipe for the tests: rows of 64 tokens, 2 rows x 2 accumulation, 6 steps, checkpoints every 3."""
    values: dict[str, Any] = {
        "model_name_or_path": str(model),
        "dtype": "float32",
        "attn_implementation": "sdpa",
        "model_license": "apache-2.0",
        "dataset_mixture": [
            {"path": "json", "data_files": str(DOCUMENTS), "label": "documents", "weight": 2.0},
            {
                "path": "json",
                "data_files": str(FIXTURES / "problems.jsonl"),
                "text_template": "{question}\n{rationale}",
                "label": "problems",
            },
        ],
        "max_length": 64,
        "per_device_train_batch_size": 2,
        "gradient_accumulation_steps": 2,
        "max_steps": 6,
        "learning_rate": 2.0e-3,
        "lr_scheduler_type": "cosine",
        "warmup_steps": 1,
        "weight_decay": 0.1,
        "bf16": False,
        "activation_checkpointing": False,
        "logging_steps": 1,
        "save_strategy": "steps",
        "save_steps": 3,
        "report_to": "none",
        "seed": 7,
        "disable_tqdm": True,
        "output_dir": str(output_dir),
        "push_to_hub": True,
        "hub_dry_run": True,
        "hub_model_id": "mathcode-test/tiny-cpt",
    }
    values.update(overrides)
    return values


# --- tokenization -------------------------------------------------------------------------------------------------


def test_frame_document_folds_existing_special_tokens() -> None:
    assert frame_document([5, 6], bos_id=1, eos_id=2) == [1, 5, 6, 2]
    assert frame_document([1, 1, 5, 6, 2, 2], bos_id=1, eos_id=2) == [1, 5, 6, 2]
    assert frame_document([1, 5, 2], bos_id=None, eos_id=2) == [1, 5, 2]  # no BOS model: a leading 1 is content
    assert frame_document([], bos_id=1, eos_id=2) == [1, 2]


def packed_rows(tokenized: Dataset, max_length: int) -> Dataset:
    """Pack the way ``SFTTrainer`` does for our recipes: labels column, then ``bfd_split``."""
    with_labels = tokenized.map(lambda row: {"labels": row["input_ids"]}).select_columns(["input_ids", "labels"])
    return pack_dataset(with_labels, max_length, "bfd_split")


def test_one_bos_per_document_and_one_eos_between_documents(bos_tokenizer: Any) -> None:
    assert tokenizer_adds_bos(bos_tokenizer)
    bos, eos = bos_tokenizer.bos_token_id, bos_tokenizer.eos_token_id
    texts = non_empty_documents()
    tokenized = tokenize_dataset(Dataset.from_dict({"text": texts}), bos_tokenizer)
    for text, ids in zip(texts, tokenized["input_ids"], strict=True):
        assert ids[0] == bos and ids.count(bos) == 1, f"BOS count wrong for {text[:40]!r}"
        assert ids[-1] == eos and ids.count(eos) == 1, f"EOS count wrong for {text[:40]!r}"
    # the plain tokenizer call would have doubled the BOS of the document that starts with the BOS string
    doubled = bos_tokenizer(texts[2])["input_ids"]
    assert doubled[:2] == [bos, bos]

    max_length = 48
    packed = packed_rows(tokenized, max_length)
    all_tokens = [t for row in packed["input_ids"] for t in row]
    assert len(all_tokens) == sum(len(ids) for ids in tokenized["input_ids"])  # bfd_split loses nothing
    assert all_tokens.count(bos) == len(texts) and all_tokens.count(eos) == len(texts)
    assert max(len(row) for row in packed["input_ids"]) <= max_length
    split_segments = 0
    for row, lengths in zip(packed["input_ids"], packed["seq_lengths"], strict=True):
        start = 0
        for length in lengths:
            segment = row[start : start + length]
            start += length
            # BOS only opens a segment, EOS only closes one: documents never run into each other inside a row
            assert bos not in segment[1:] and eos not in segment[:-1]
            split_segments += segment[0] != bos
    assert split_segments >= 1  # the long document was split across rows, not truncated


def test_no_bos_for_models_without_one(converted_model_dir: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(converted_model_dir)
    assert not tokenizer_adds_bos(tokenizer)
    texts = [t for t in non_empty_documents() if not t.startswith("<|im_start|>")]
    tokenized = tokenize_dataset(Dataset.from_dict({"text": texts}), tokenizer)
    for ids in tokenized["input_ids"]:
        assert tokenizer.bos_token_id not in ids
        assert ids[-1] == tokenizer.eos_token_id and ids.count(tokenizer.eos_token_id) == 1


# --- packing ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
def test_packed_logits_equal_separate_documents(tiny_model: Path, bos_tokenizer: Any, attention: str) -> None:
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(tiny_model, attn_implementation=attention, dtype=torch.float32)
    model.eval()
    texts = non_empty_documents()[:4]
    tokenized = tokenize_dataset(Dataset.from_dict({"text": texts}), bos_tokenizer)
    documents = tokenized["input_ids"]
    packed = packed_rows(tokenized, max_length=sum(len(d) for d in documents))
    assert len(packed) == 1  # one row holding all four documents
    collator = DataCollatorForLanguageModeling(pad_token_id=bos_tokenizer.pad_token_id, padding_free=True)
    batch = collator([packed[0]])
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    with torch.no_grad():
        packed_logits = model(**inputs, use_cache=False).logits[0]
        start = 0
        for length in packed[0]["seq_lengths"]:
            segment = batch["input_ids"][0, start : start + length]
            alone = model(input_ids=segment[None], use_cache=False).logits[0]
            torch.testing.assert_close(packed_logits[start : start + length], alone, atol=1e-5, rtol=1e-4)
            start += length
        # control: the same row without per-document positions lets later documents attend to earlier ones
        leaky = model(input_ids=batch["input_ids"], use_cache=False).logits[0]
    last = packed[0]["seq_lengths"][-1]
    assert not torch.allclose(leaky[-last:], packed_logits[-last:], atol=1e-3)


def test_both_loss_heads_give_the_same_loss(tmp_path: Path, tiny_model: Path) -> None:
    recipe = write_recipe(tmp_path / "r.yaml", tiny_recipe(tiny_model, tmp_path / "out", push_to_hub=False))
    trainer = prepare_run(*parse_cpt_args(["--config", str(recipe)])).trainer
    batch = next(iter(trainer.get_train_dataloader()))
    labels = batch["labels"]
    items = int((labels[:, 1:] != -100).sum())
    losses = {}
    with torch.no_grad():
        for fused in (True, False):
            trainer.args.fused_lm_head = fused
            losses[fused] = float(trainer.compute_loss(trainer.model, dict(batch), num_items_in_batch=items))
    assert losses[True] == pytest.approx(losses[False], rel=1e-4)
    assert 9.0 < losses[True] < 12.0  # a random-init model over a 49k vocabulary: about ln(49152) = 10.8


# --- data -----------------------------------------------------------------------------------------------------------


def test_mixture_weights_skips_and_template(tmp_path: Path) -> None:
    sources = parse_mixture(
        [
            {"path": "json", "data_files": str(DOCUMENTS), "weight": 2.0, "label": "docs"},
            {
                "path": "json",
                "data_files": str(FIXTURES / "problems.jsonl"),
                "text_template": "Q: {question}\nA: {rationale}",
                "weight": 0.5,
                "label": "problems",
            },
        ]
    )
    documents, reports = load_documents(sources, seed=3)
    non_empty = len(non_empty_documents())
    by_name = {r.name: r for r in reports}
    assert by_name["docs"].rows_read == len(fixture_documents())
    assert by_name["docs"].skipped_empty == len(fixture_documents()) - non_empty == 2
    assert by_name["docs"].documents == 2 * non_empty
    assert by_name["problems"].documents == 2  # half of four, seeded
    assert len(documents) == 2 * non_empty + 2
    problems = [t for t, s in zip(documents["text"], documents["source"], strict=True) if s == "problems"]
    assert all(t.startswith("Q: ") and "\nA: " in t for t in problems)
    again, _ = load_documents(sources, seed=3)
    assert again["text"] == documents["text"]  # the fractional part is a seeded choice


def test_mixture_errors_name_the_source_row_and_field(tmp_path: Path) -> None:
    with pytest.raises(RecipeError, match=r"dataset_mixture\[0\]: unknown key\(s\) \['wieght'\]"):
        parse_mixture([{"path": "json", "wieght": 2}])
    with pytest.raises(RecipeError, match="weight must be > 0"):
        parse_mixture([{"path": "json", "weight": 0}])
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"question": "a", "rationale": "b"}\n{"question": "c"}\n', encoding="utf-8")
    source = DataSource(path="json", data_files=str(broken), text_template="{question} {rationale}", label="broken")
    with pytest.raises(RecipeError, match="source 'broken' row 1: text_template field 'rationale' is missing"):
        load_documents([source])
    no_text = DataSource(path="json", data_files=str(broken), label="no_text")
    with pytest.raises(RecipeError, match="source 'no_text': no column 'text'"):
        load_documents([no_text])


def test_dataset_name_replaces_the_mixture_and_reads_single_files() -> None:
    (single,) = sources_from_script_args(str(DOCUMENTS), None, "train", [{"path": "elsewhere/x"}])
    assert single.path == "json" and single.data_files == str(DOCUMENTS)
    (hub,) = sources_from_script_args("MathGenie/MathCode-Pile", None, "train", [])
    assert hub.path == "MathGenie/MathCode-Pile" and hub.hub_id == "MathGenie/MathCode-Pile"


def test_hub_sources_link_their_cards() -> None:
    assert (
        DataSource(path="MathGenie/MathCode-Pile").card_link
        == "https://huggingface.co/datasets/MathGenie/MathCode-Pile"
    )
    assert DataSource(path="json", data_files="x.jsonl").hub_id is None


# --- configs ----------------------------------------------------------------------------------------------------


def test_recipe_errors_name_file_and_key(tmp_path: Path, tiny_model: Path) -> None:
    base = tiny_recipe(tiny_model, tmp_path / "out")
    bad_key = write_recipe(tmp_path / "bad_key.yaml", {**base, "learning_rat": 1e-4})
    with pytest.raises(RecipeError, match=r"bad_key.yaml: unknown key\(s\) \['learning_rat'\]"):
        parse_cpt_args(["--config", str(bad_key)])
    bad_type = write_recipe(tmp_path / "bad_type.yaml", {**base, "per_device_train_batch_size": 2.5})
    with pytest.raises(RecipeError, match=r"bad_type\.yaml: key 'per_device_train_batch_size' expects int"):
        parse_cpt_args(["--config", str(bad_type)])
    lossy = write_recipe(tmp_path / "lossy.yaml", {**base, "packing_strategy": "bfd"})
    with pytest.raises(RecipeError, match=r"lossy\.yaml: .*must not drop tokens"):
        parse_cpt_args(["--config", str(lossy)])
    # overrides win over the recipe, as on the command line
    _, training_args, _ = parse_cpt_args(
        ["--config", str(write_recipe(tmp_path / "ok.yaml", base)), "--max_steps", "9"]
    )
    assert training_args.max_steps == 9 and training_args.packing_strategy == "bfd_split"


def test_flash_attention_falls_back_and_missing_smoke_model_explains() -> None:
    assert resolve_attn_implementation("flash_attention_2", cuda_available=False) == "sdpa"
    assert resolve_attn_implementation("eager", cuda_available=False) == "eager"
    with pytest.raises(RecipeError, match=r"python -m training\.local_models nothere"):
        check_model_path("outputs/models/nothere")


def test_resume_skips_incomplete_checkpoint(tmp_path: Path) -> None:
    assert find_resume_checkpoint(tmp_path) is None
    (tmp_path / "checkpoint-2").mkdir()
    (tmp_path / "checkpoint-2" / "trainer_state.json").write_text("{}", encoding="utf-8")
    (tmp_path / "checkpoint-10").mkdir()  # killed while saving: no trainer state
    assert find_resume_checkpoint(tmp_path) == tmp_path / "checkpoint-2"
    (tmp_path / "checkpoint-10" / "trainer_state.json").write_text("{}", encoding="utf-8")
    assert find_resume_checkpoint(tmp_path) == tmp_path / "checkpoint-10"


# --- card and upload --------------------------------------------------------------------------------------------


def test_lm_eval_results_become_card_rows(tmp_path: Path) -> None:
    rows, source = load_eval_results(FIXTURES / "lm_eval_results.json")
    assert source is not None
    assert [(r.task, r.metric, r.value, r.stderr) for r in rows] == [
        ("mathcoder2_gsm8k", "exact_match (flexible-extract)", 0.125, 0.0312),
        ("mathcoder2_math", "math_verify", 0.05, 0.01),
    ]
    assert load_eval_results(tmp_path / "missing") == ([], None)
    (tmp_path / "results_bad.json").write_text('{"config": {}}', encoding="utf-8")
    with pytest.raises(ModelCardError, match="no 'results' mapping"):
        load_eval_results(tmp_path)


def test_model_card_renders_eval_table_hub_links_and_checks_images(tmp_path: Path) -> None:
    rows, source = load_eval_results(FIXTURES / "lm_eval_results.json")
    pile = SourceReport("MathGenie/MathCode-Pile", 1.0, 10, 1, 9, "MathGenie/MathCode-Pile", "https://hf.co/x", 1234)
    inputs = ModelCardInputs(
        model_name="MathCoder2-Mistral-7B",
        load_target="org/MathCoder2-Mistral-7B",
        base_model_path="mistralai/Mistral-7B-v0.1",
        sources=[pile],
        hyperparameters=[("learning rate", 4e-5)],
        context_length=4096,
        packing_strategy="bfd_split",
        uses_bos=True,
        global_steps=10,
        epochs=3.0,
        tokens_seen=41_943_040,
        command="python -m training.cpt --config recipes/Mistral-7B-v0.1/cpt/config_full.yaml",
        versions=[("trl", "1.16.0")],
        final_loss=1.25,
        loss_plot="plots/loss.png",
        eval_rows=rows,
        eval_source=source,
        license="apache-2.0",
    )
    text = render_model_card(inputs)
    with pytest.raises(ModelCardError, match=r"links image 'plots/loss\.png'"):
        validate_model_card(text, tmp_path)
    (tmp_path / "plots").mkdir()
    (tmp_path / "plots" / "loss.png").write_bytes(b"png")
    card = validate_model_card(text, tmp_path)
    assert card.data.base_model == "mistralai/Mistral-7B-v0.1" and card.data.datasets == ["MathGenie/MathCode-Pile"]
    assert "| mathcoder2_gsm8k | exact_match (flexible-extract) | 0.1250 | 0.0312 |" in text
    assert "[MathGenie/MathCode-Pile](https://huggingface.co/datasets/MathGenie/MathCode-Pile)" in text
    assert "| tokens seen | 41,943,040 |" in text and "one BOS token, the text and one EOS token" in text
    assert "1 empty document(s) were skipped" in text


def test_model_card_names_are_data(tmp_path: Path) -> None:
    """Source, model, metric and setting names may hold markdown, LaTeX or HTML: each stays in its cell."""
    hostile = "a|b $x$ <i>`c`</i>\n---"
    local = SourceReport(hostile, 1.0, 10, 0, 10, None, None, 1234)
    inputs = ModelCardInputs(
        model_name="-" + hostile,
        load_target=str(tmp_path),
        base_model_path=str(tmp_path),
        sources=[local],
        hyperparameters=[("dataset " + hostile, hostile)],
        context_length=4096,
        packing_strategy="bfd_split",
        uses_bos=True,
        global_steps=10,
        epochs=1.0,
        tokens_seen=10,
        command="python -m training.cpt",
        versions=[("trl", "1.16.0")],
        eval_rows=[EvalRow(hostile, hostile, 0.5, None)],
        eval_source="results.json",
    )
    text = render_model_card(inputs)
    validate_model_card(text, tmp_path)
    escaped = "a\\|b \\$x\\$ &lt;i&gt;\\`c\\`&lt;/i&gt; ---"
    assert f"| {escaped} | 1.0 | 10 | 1,234 | none |" in text
    assert f"| dataset {escaped} | {escaped} |" in text and f"| {escaped} | {escaped} | 0.5000 | n/a |" in text
    assert f"# \\-{escaped}" in text
    body = text.split("\n---\n", 1)[1]
    assert "<i>" not in body and "\n---\n" not in body


def test_offline_push_is_a_dry_run_of_the_staged_folder(tmp_path: Path) -> None:
    (tmp_path / "checkpoint-3").mkdir()
    (tmp_path / "checkpoint-3" / "model.safetensors").write_bytes(b"x")
    (tmp_path / "plots").mkdir()
    (tmp_path / "plots" / "loss.png").write_bytes(b"png")
    (tmp_path / "model.safetensors").write_bytes(b"weights")
    (tmp_path / "README.md").write_text("---\nlicense: mit\n---\n", encoding="utf-8")
    # conftest sets HF_HUB_OFFLINE=1, as for any offline machine: no upload is attempted
    files = publish_model(tmp_path, "mathcode-test/model", dry_run=False)
    assert files == ["README.md", "model.safetensors", "plots/loss.png"]
    assert sorted(p.name for p in (tmp_path / UPLOAD_DIR_NAME).iterdir()) == [
        "README.md",
        "model.safetensors",
        "plots",
    ]
    (tmp_path / "README.md").unlink()
    with pytest.raises(FileNotFoundError, match=r"no README\.md"):
        stage_upload_folder(tmp_path)


# --- end to end: train, crash, resume ---------------------------------------------------------------------------


def weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(str(folder / "model.safetensors"))


@pytest.mark.slow
def test_crash_and_rerun_resumes_with_same_data_order_and_weights(tmp_path: Path, tiny_model: Path) -> None:
    straight_dir, crashed_dir = tmp_path / "straight", tmp_path / "crashed"
    straight_recipe = write_recipe(tmp_path / "straight.yaml", tiny_recipe(tiny_model, straight_dir))
    crashed_recipe = write_recipe(tmp_path / "crashed.yaml", tiny_recipe(tiny_model, crashed_dir))

    straight = run_cpt(*parse_cpt_args(["--config", str(straight_recipe)]), ["--config", str(straight_recipe)])
    assert straight.resumed_from is None and straight.global_step == 6
    assert straight.losses[-1][1] < straight.losses[0][1]  # the loss falls

    # a real crash: the process kills itself right after checkpoint-3 is written
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path.cwd()), os.environ.get("PYTHONPATH", "")])}
    killed = subprocess.run(
        [sys.executable, str(FIXTURES / "kill_after_checkpoint.py"), "3", "--config", str(crashed_recipe)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        check=False,
    )
    assert killed.returncode == -9, killed.stderr[-3000:]
    assert (crashed_dir / "checkpoint-3" / "trainer_state.json").is_file()
    assert not (crashed_dir / "model.safetensors").exists()

    # the same command again resumes at step 3 and ends where the uninterrupted run ended
    resumed = run_cpt(*parse_cpt_args(["--config", str(crashed_recipe)]), ["--config", str(crashed_recipe)])
    assert resumed.resumed_from == crashed_dir / "checkpoint-3"
    assert resumed.global_step == 6 and resumed.tokens_seen == straight.tokens_seen
    straight_after = [loss for step, loss in straight.losses if step > 3]
    resumed_after = [loss for step, loss in resumed.losses if step > 3]
    assert resumed_after == pytest.approx(straight_after, rel=1e-5)  # same batches in the same order
    for name, tensor in weights(straight_dir).items():
        torch.testing.assert_close(weights(crashed_dir)[name], tensor, atol=1e-5, rtol=1e-4)

    # the finished run: card (validated, with the loss plot and data table), data stats, exact upload folder
    card_text = (crashed_dir / "README.md").read_text(encoding="utf-8")
    card = validate_model_card(card_text, crashed_dir)
    assert card.data.license == "apache-2.0" and card.data.base_model is None  # a local base is not a Hub id
    assert "![Training loss](plots/loss.png)" in card_text and "| documents | 2.0 |" in card_text
    assert f"| tokens seen | {resumed.tokens_seen:,} |" in card_text
    assert "No evaluation results" in card_text
    stats = json.loads((crashed_dir / "data_stats.json").read_text(encoding="utf-8"))
    assert [s["name"] for s in stats] == ["documents", "problems"] and stats[0]["skipped_empty"] == 2
    upload = crashed_dir / UPLOAD_DIR_NAME
    assert resumed.uploaded is not None and "model.safetensors" in resumed.uploaded
    assert {"README.md", "config.json", "tokenizer.json", "plots/loss.png"} <= set(resumed.uploaded)
    assert not any(name.startswith("checkpoint-") for name in resumed.uploaded)
    assert sorted(str(p.relative_to(upload)) for p in upload.rglob("*") if p.is_file()) == resumed.uploaded
