"""Jinja templates for the dataset and model cards, rendered offline and validated before any upload."""

from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from mathcode_pile.card_text import markdown_text

TEMPLATES_DIR = Path(__file__).parent


def template_path(name: str) -> Path:
    """Path of a card template shipped in this package (``dataset_card.md.j2``, ``model_card.md.j2``)."""
    path = TEMPLATES_DIR / name
    if not path.is_file():
        raise FileNotFoundError(f"no card template named '{name}' in {TEMPLATES_DIR}")
    return path


def card_environment() -> Environment:
    """The one Jinja environment every card is rendered with: a missing variable is an error, block tags leave no
    blank lines behind (markdown tables break on them), and the ``md`` filter writes a name as literal markdown."""
    environment = Environment(
        loader=FileSystemLoader(str(TEMPLATES_DIR)),
        undefined=StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters["md"] = markdown_text
    return environment
