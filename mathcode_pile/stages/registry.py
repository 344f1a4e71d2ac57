"""Every stage a recipe can name. Importing this module imports each stage module, whose ``@register_stage`` adds it
to :data:`~mathcode_pile.stages.base.STAGE_REGISTRY`; the look-ups live here rather than in ``base`` so that the
base module, which every stage imports, never imports the stages back."""

from mathcode_pile.stages import (  # noqa: F401
    classify,
    code_filter,
    decontaminate,
    dedup,
    llm_label,
    mixture,
    parse_computations,
    render_computations,
    translate,
    verify_computations,
)
from mathcode_pile.stages.base import STAGE_REGISTRY, Stage


def registered_stages() -> dict[str, type[Stage]]:
    """Every stage by its recipe name."""
    return STAGE_REGISTRY


def get_stage_class(name: str) -> type[Stage]:
    if name not in STAGE_REGISTRY:
        raise KeyError(f"unknown stage '{name}'; known stages: {sorted(STAGE_REGISTRY)}")
    return STAGE_REGISTRY[name]
