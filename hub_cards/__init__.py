"""Jinja templates for the dataset and model cards, rendered offline and validated before any upload."""

from pathlib import Path

TEMPLATES_DIR = Path(__file__).parent


def template_path(name: str) -> Path:
    """Path of a card template shipped in this package (``dataset_card.md.j2``, ``model_card.md.j2``)."""
    path = TEMPLATES_DIR / name
    if not path.is_file():
        raise FileNotFoundError(f"no card template named '{name}' in {TEMPLATES_DIR}")
    return path
