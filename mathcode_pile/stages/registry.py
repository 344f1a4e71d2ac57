"""Imports every stage module so that each registers itself under its recipe name."""

from mathcode_pile.stages import translate  # noqa: F401
