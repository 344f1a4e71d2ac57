"""Imports every stage module so that each registers itself under its recipe name."""

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
