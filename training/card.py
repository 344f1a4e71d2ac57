"""The model card of a continued-pretraining run, rendered and validated offline from ``hub_cards/model_card.md.j2``.

Everything the card states is read from the run itself: the recipe's hyper-parameters, the trainer state (steps,
tokens seen, loss history, plotted), the data sources with their card links, and lm-eval results when a results
file exists. Uploading is separate (``training.hub``).
"""

from __future__ import annotations

import json
import logging
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from huggingface_hub import ModelCard, ModelCardData

from hub_cards import card_environment
from mathcode_pile.card_text import plot_label
from training.data import SourceReport

logger = logging.getLogger(__name__)

LOSS_PLOT = "plots/loss.png"


class ModelCardError(ValueError):
    """A rendered card that the Hub would reject or that links files missing from the upload folder."""


@dataclass
class EvalRow:
    task: str
    metric: str
    value: float
    stderr: float | None = None


@dataclass
class ModelCardInputs:
    model_name: str
    load_target: str
    base_model_path: str
    sources: list[SourceReport]
    hyperparameters: list[tuple[str, Any]]
    context_length: int
    packing_strategy: str
    uses_bos: bool
    global_steps: int
    epochs: float
    tokens_seen: int
    command: str
    versions: list[tuple[str, str]]
    final_loss: float | None = None
    loss_plot: str | None = None
    eval_rows: list[EvalRow] = field(default_factory=list)
    eval_source: str | None = None
    license: str = "other"
    tags: tuple[str, ...] = ("math", "mathcoder2", "continued-pretraining", "trl")


def is_hub_model_id(name: str) -> bool:
    """``org/name`` that is not a local folder: what the card may declare as ``base_model``."""
    return bool(re.fullmatch(r"[\w.-]+/[\w.-]+", name)) and not Path(name).exists()


def render_model_card(inputs: ModelCardInputs) -> str:
    """The README.md text of the model folder: YAML metadata + markdown."""
    base_model = inputs.base_model_path if is_hub_model_id(inputs.base_model_path) else None
    card_data = ModelCardData(
        license=inputs.license,
        language=["en"],
        library_name="transformers",
        pipeline_tag="text-generation",
        tags=list(inputs.tags),
        base_model=base_model,
        datasets=[s.hub_id for s in inputs.sources if s.hub_id] or None,
    )
    environment = card_environment()
    return environment.get_template("model_card.md.j2").render(
        card_data=card_data.to_yaml(),
        model_name=inputs.model_name,
        load_target=inputs.load_target,
        base_model=base_model,
        base_model_path=inputs.base_model_path,
        sources=inputs.sources,
        skipped_empty=sum(s.skipped_empty for s in inputs.sources),
        hyperparameters=inputs.hyperparameters,
        context_length=inputs.context_length,
        packing_strategy=inputs.packing_strategy,
        uses_bos=inputs.uses_bos,
        global_steps=inputs.global_steps,
        epochs=round(inputs.epochs, 3),
        tokens_seen=inputs.tokens_seen,
        final_loss=inputs.final_loss,
        loss_plot=inputs.loss_plot,
        eval_rows=inputs.eval_rows,
        eval_source=inputs.eval_source,
        command=inputs.command,
        versions=inputs.versions,
    )


def validate_model_card(text: str, folder: Path | None = None) -> ModelCard:
    """Offline checks: ``huggingface_hub`` parses it, the metadata the Hub needs is there, linked images exist."""
    card = ModelCard(text)
    data = card.data.to_dict()
    for key in ("license", "library_name", "pipeline_tag"):
        if not data.get(key):
            raise ModelCardError(f"model card metadata lacks '{key}'")
    if folder is not None:
        for image in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", card.text):
            if not (folder / image).is_file():
                raise ModelCardError(f"model card links image '{image}' which is not in {folder}")
    return card


def loss_points(log_history: list[dict[str, Any]]) -> list[tuple[int, float]]:
    """(step, training loss) pairs from ``TrainerState.log_history``, in step order, one per step."""
    points = {int(entry["step"]): float(entry["loss"]) for entry in log_history if "loss" in entry and "step" in entry}
    return sorted((step, loss) for step, loss in points.items() if math.isfinite(loss))


def plot_loss_curve(points: list[tuple[int, float]], path: Path, title: str) -> None:
    """Training loss against optimizer step, as a PNG (byte-identical for identical inputs)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6.0, 3.4), dpi=100)
    axis.plot(
        [p[0] for p in points], [p[1] for p in points], color="#3b7dd8", marker="." if len(points) < 50 else None
    )
    axis.set_xlabel("optimizer step")
    axis.set_ylabel("training loss")
    axis.set_title(plot_label(title))  # the title holds the run's name: literal text, never mathtext
    axis.grid(alpha=0.3)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, metadata={"Software": None})
    plt.close(figure)


def _results_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    return sorted(path.rglob("results*.json"), key=lambda p: (p.stat().st_mtime, str(p)))


#: entries of an lm-eval ``results`` block that describe the run rather than score it
NON_METRIC_KEYS = frozenset({"alias", "sample_len", "samples"})


def load_eval_results(path: str | Path | None) -> tuple[list[EvalRow], str | None]:
    """Rows from lm-eval result files (``{"results": {task: {"metric,filter": value, ...}}}``); newest file wins.

    Returns no rows when ``path`` does not exist; a file that is not lm-eval output is an error naming it.
    """
    if path is None or not Path(path).exists():
        return [], None
    files = _results_files(Path(path))
    if not files:
        return [], None
    newest = files[-1]
    try:
        payload = json.loads(newest.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ModelCardError(f"{newest}: not valid JSON: {exc}") from exc
    results = payload.get("results") if isinstance(payload, dict) else None
    if not isinstance(results, dict):
        raise ModelCardError(f"{newest}: no 'results' mapping (expected lm-eval output)")
    rows = []
    for task in sorted(results):
        metrics = results[task]
        if not isinstance(metrics, dict):
            raise ModelCardError(f"{newest}: results['{task}'] is not a mapping")
        for key, value in sorted(metrics.items()):
            is_number = isinstance(value, int | float) and not isinstance(value, bool)
            if "_stderr" in key or key in NON_METRIC_KEYS or not is_number:
                continue
            metric, _, filter_name = key.partition(",")
            stderr = metrics.get(f"{metric}_stderr,{filter_name}" if filter_name else f"{metric}_stderr")
            label = f"{metric} ({filter_name})" if filter_name and filter_name != "none" else metric
            rows.append(EvalRow(task, label, float(value), float(stderr) if isinstance(stderr, int | float) else None))
    return rows, str(newest)
