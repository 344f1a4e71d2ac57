"""The one-GPU check (``benchmarks/gpu_check.py``): its CPU mode runs every phase, and the pieces it relies on (layer
plan, architecture files, FLOPs count, tokenizer, wheel pins) hold, so the script is ready the day a GPU is."""

from __future__ import annotations

import configparser
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from mathcode_pile.paths import REPO_ROOT
from training.memory import GIB, KNOWN_SHAPES, ModelShape, estimate_memory, layers_that_fit
from training.random_models import build_random_model, load_architecture, match_tokenizer, train_tokenizer
from training.throughput import attention_flops_per_token, matmul_parameters, model_flops_per_token
from training.tokenization import tokenize_documents, tokenizer_adds_bos

SCRIPT = REPO_ROOT / "benchmarks" / "gpu_check.py"
LLAMA3_8B = KNOWN_SHAPES["meta-llama/Meta-Llama-3-8B"]
TEXTS = ["Two apples and three pears make five fruits.", "The sum 12 + 30 equals 42.", "x^2 - 4 = 0 gives x = 2."]


@pytest.mark.slow
def test_tiny_mode_runs_every_phase_and_writes_its_figures(tmp_path: Path) -> None:
    work = tmp_path / "work"
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--tiny", "--out", str(tmp_path / "out"), "--work_dir", str(work)],
        capture_output=True,
        text=True,
        timeout=400,
        cwd=tmp_path,  # the script finds the repository's recipes and samples from any directory
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = json.loads((tmp_path / "out" / "gpu_check.json").read_text(encoding="utf-8"))
    assert report["status"] == "ok" and report["errors"] == [] and report["mode"] == "cpu-smoke"
    assert report["checks"] == {
        "loss_finite": True,
        "loss_falls": True,
        "reload_continues": True,
        "generation_ran": True,
    }
    plan, training = report["plan"], report["training"]
    assert plan["layers"] == plan["layers_published"] == training["layers"] == 2
    assert training["bf16_autocast"] and training["activation_checkpointing"] and training["dtype"] == "bfloat16"
    assert training["row_tokens"] == 256 and training["tokens_per_s_per_device"] > 0
    assert training["timed_steps"] == training["steps"] - 2 and training["step_s_median"] > 0
    assert training["model_flops_per_token"] > 6 * 0.5 * training["parameters"]
    # a CPU figure is never turned into an MFU
    assert training["mfu"] is None and training["peak_tflops_assumed"] is None and "CPU" in training["peak_source"]
    checkpoint = training["checkpoint"]
    assert checkpoint["step"] == training["steps"] and checkpoint["bytes"] > 0 and checkpoint["save_s"] >= 0
    reload = report["reload"]
    assert [step for step, _ in reload["resumed_losses"]] == [training["steps"] + 1, training["steps"] + 2]
    generation = report["generation"]
    assert generation["one_at_a_time"]["problems"] == 2 and generation["one_at_a_time"]["mean_rows_per_call"] == 1
    assert generation["batched"]["problems"] == generation["batched"]["batch"] == 8
    assert generation["batched"]["mean_rows_per_call"] > 1 and generation["speedup"] > 0
    assert not work.exists(), "the work folder (models, checkpoints) is removed at the end"
    assert "== summary" in result.stdout


def test_layer_plan_keeps_every_llama3_layer_on_an_h200_and_cuts_depth_on_less_memory() -> None:
    h200_budget = int(139.8 * GIB * 0.9)
    common = {"micro_batch": 1, "seq_len": 8192, "shards": 1, "activation_checkpointing": True}
    layers, estimate = layers_that_fit(LLAMA3_8B, h200_budget, state_bytes_per_parameter=8, **common)
    assert layers == 32 and estimate.total <= h200_budget
    a100_budget = int(80 * GIB * 0.9)
    layers, estimate = layers_that_fit(LLAMA3_8B, a100_budget, state_bytes_per_parameter=16, **common)
    assert 0 < layers < 32 and estimate.total <= a100_budget
    one_more = estimate_memory(
        ModelShape(**{**LLAMA3_8B.__dict__, "num_layers": layers + 1}), state_bytes_per_parameter=16, **common
    )
    assert one_more.total > a100_budget
    assert layers_that_fit(LLAMA3_8B, GIB, **common)[0] == 0


@pytest.mark.parametrize("name", ["llama-3-8b", "llama-3.2-1b", "llama-small", "llama-tiny"])
def test_architecture_files_build_models_the_memory_model_counts(name: str) -> None:
    config = load_architecture(name)
    model = build_random_model(config, "bfloat16", "sdpa", device="meta")
    assert sum(p.numel() for p in model.parameters()) == ModelShape.from_config(config).parameters


def test_llama3_architecture_file_holds_the_published_facts() -> None:
    config = load_architecture("llama-3-8b")
    assert ModelShape.from_config(config) == LLAMA3_8B
    assert config.rope_parameters["rope_theta"] == 500000.0 and config.rms_norm_eps == 1e-5
    assert config.max_position_embeddings == 8192 and not config.tie_word_embeddings
    assert load_architecture("llama-3-8b", num_layers=20).num_hidden_layers == 20
    with pytest.raises(ValueError, match="choose one of"):
        load_architecture("llama-9000")


def test_model_flops_count_dense_products_and_causal_attention_per_document() -> None:
    config = load_architecture("llama-tiny")
    model = build_random_model(config, "float32", "sdpa")
    embedding = config.vocab_size * config.hidden_size
    assert matmul_parameters(model) == sum(p.numel() for p in model.parameters()) - embedding
    layers, hidden = config.num_hidden_layers, config.hidden_size
    # two documents of 100 and 300 tokens: 6 L h (100^2 + 300^2) / 400 per token
    assert attention_flops_per_token(layers, hidden, [100, 300]) == 6 * layers * hidden * (100**2 + 300**2) / 400
    expected = 6 * matmul_parameters(model) + 6 * layers * hidden * 200
    assert model_flops_per_token(model, [200, 200]) == pytest.approx(expected)


def test_trained_tokenizer_adds_one_bos_and_fits_the_model() -> None:
    tokenizer = train_tokenizer(TEXTS, vocab_size=400)
    assert tokenizer_adds_bos(tokenizer)
    framed = tokenize_documents({"text": TEXTS[:1]}, tokenizer, "text", add_bos=True)["input_ids"][0]
    assert framed[0] == tokenizer.bos_token_id and framed.count(tokenizer.bos_token_id) == 1
    assert framed[-1] == tokenizer.eos_token_id
    config = match_tokenizer(load_architecture("llama-tiny"), tokenizer)
    assert (config.bos_token_id, config.eos_token_id) == (tokenizer.bos_token_id, tokenizer.eos_token_id)
    small = load_architecture("llama-tiny")
    small.vocab_size = 10
    with pytest.raises(ValueError, match="rows"):
        match_tokenizer(small, tokenizer)


def test_gpu_wheels_pin_the_versions_the_project_pins() -> None:
    """`make gpu-wheels` must fetch the trl the project is tested with, for the GPU machine's Python."""
    setup = configparser.ConfigParser()
    setup.read(REPO_ROOT / "setup.cfg")
    trl_pin = re.search(r"trl==([\d.]+)", setup["options.extras_require"]["train"]).group(1)
    makefile = (REPO_ROOT / "Makefile").read_text(encoding="utf-8")
    wheels = re.search(r"^GPU_WHEELS \?= (.+)$", makefile, re.MULTILINE).group(1).split()
    assert f"trl=={trl_pin}" in wheels
    assert {w.split("==")[0] for w in wheels} >= {"trl", "datasets", "dill", "multiprocess"}
    assert re.search(r"^GPU_WHEELS_PYTHON \?= 3\.12$", makefile, re.MULTILINE)
