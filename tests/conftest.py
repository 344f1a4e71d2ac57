"""Shared fixtures: the real embedded llama.cpp server, the converted embedded model and a tiny random Llama."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from mathcode_pile.paths import BENCHMARKS_DIR, REPO_ROOT, SAMPLES_DIR

# Nothing in the test suite may reach the network.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def samples_dir() -> Path:
    return SAMPLES_DIR


@pytest.fixture(scope="session")
def benchmarks_dir() -> Path:
    """The benchmark test sets bundled with the project (``<name>_test.jsonl.gz``)."""
    return BENCHMARKS_DIR


@pytest.fixture(scope="session")
def embedded_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """One real llama.cpp server with SmolLM2-135M-Instruct for the whole session (127.0.0.1, free port)."""
    from mathcode_pile.llm.local_server import LocalLlamaServer

    log = tmp_path_factory.mktemp("llama") / "server.log"
    with LocalLlamaServer(log_path=log, n_ctx=2048) as server:
        yield server


@pytest.fixture(scope="session")
def converted_model_dir() -> Path:
    """The embedded model dequantized to safetensors (cached across sessions under MATHCODE_CACHE)."""
    from mathcode_pile.llm.embedded import convert_embedded_to_safetensors

    return convert_embedded_to_safetensors()


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory, converted_model_dir: Path) -> Path:
    """A tiny random-init Llama with the embedded model's tokenizer: a real causal LM that steps in about a second."""
    from training.local_models import prepare_tiny

    return prepare_tiny(tmp_path_factory.mktemp("tiny-llama"), seed=0, add_bos=False)
