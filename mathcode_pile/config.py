"""Recipe parsing shared by every MathCode entry point.

Recipes are YAML files whose keys are the fields of one or more dataclasses (the alignment-handbook / TRL style).
We parse them with ``transformers.HfArgumentParser`` so that every field gets ``--help`` text and can be overridden on
the command line, and add the strictness that parser lacks: unknown keys, wrong types and missing files are errors
that name the recipe file and the key.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")


class RecipeError(ValueError):
    """A recipe (YAML file or CLI override) that cannot be turned into configs; the message names file and key."""


def _type_matches(value: Any, annotation: Any) -> bool:
    """Check ``value`` against a (possibly generic or optional) annotation, the subset used by our configs."""
    if annotation is Any:
        return True
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(_type_matches(value, arg) for arg in typing.get_args(annotation))
    if annotation is type(None):
        return value is None
    if origin is typing.Literal:
        return value in typing.get_args(annotation)
    if origin in (list, Sequence):
        (item_type,) = typing.get_args(annotation) or (Any,)
        return isinstance(value, list) and all(_type_matches(item, item_type) for item in value)
    if origin is dict:
        key_type, value_type = typing.get_args(annotation) or (Any, Any)
        return isinstance(value, dict) and all(
            _type_matches(k, key_type) and _type_matches(v, value_type) for k, v in value.items()
        )
    if annotation is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(annotation, type):
        return isinstance(value, annotation)
    return True


class ValidatedConfig:
    """Mixin for config dataclasses: type-checks every field and checks fields marked ``metadata={"path": True}``.

    ``HfArgumentParser`` converts command-line strings but passes YAML values through untouched, so a recipe that says
    ``batch_size: "8"`` would otherwise surface as a confusing failure deep inside a stage.
    """

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(type(self))
        for field in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, field.name)
            annotation = hints.get(field.name, Any)
            if not _type_matches(value, annotation):
                raise RecipeError(
                    f"field '{field.name}' of {type(self).__name__} expects {_describe(annotation)}, "
                    f"got {value!r} ({type(value).__name__})"
                )
            if field.metadata.get("path") and value is not None:
                paths = value if isinstance(value, list) else [value]
                for path in paths:
                    if not Path(path).exists():
                        raise RecipeError(f"field '{field.name}' of {type(self).__name__}: file not found: {path}")


def _describe(annotation: Any) -> str:
    return getattr(annotation, "__name__", None) or str(annotation).replace("typing.", "")


def read_recipe(path: str | Path) -> dict[str, Any]:
    """Read a recipe YAML into a dict, with errors that name the file."""
    path = Path(path)
    if not path.is_file():
        raise RecipeError(f"recipe not found: {path}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise RecipeError(f"{path}: invalid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise RecipeError(f"{path}: a recipe must be a mapping of keys to values, got {type(data).__name__}")
    return data


_NOT_GIVEN = object()


def parse_overrides(parser: Any, overrides: Sequence[str], known: set[str], source: str) -> dict[str, Any]:
    """The ``--key value`` pairs actually given, converted by the parser's types (defaults are left out)."""
    parser.set_defaults(**dict.fromkeys(known, _NOT_GIVEN))
    try:
        namespace, remaining = parser.parse_known_args(list(overrides))
    except SystemExit as exc:  # argparse exits on a bad value; callers need an exception they can report
        raise RecipeError(f"{source}: invalid command-line override(s) {list(overrides)}") from exc
    if remaining:
        raise RecipeError(f"unknown command-line option(s) {remaining}; valid keys are: {sorted(known)}")
    return {k: v for k, v in vars(namespace).items() if v is not _NOT_GIVEN}


def parse_recipe(
    config_classes: Sequence[type],
    recipe_path: str | Path | None = None,
    overrides: Sequence[str] = (),
) -> list[Any]:
    """Build one instance per class from a YAML recipe plus ``--key value`` overrides (overrides win).

    ``HfArgumentParser`` gives every field its ``--help`` text and command-line conversion; YAML values are passed to
    the dataclasses as they are and checked by :class:`ValidatedConfig`. Unknown keys in either are errors: a typo
    must not silently fall back to a default.
    """
    from transformers import HfArgumentParser

    parser = HfArgumentParser(list(config_classes))
    known = {f.name for cls in config_classes for f in dataclasses.fields(cls)}
    source = str(recipe_path) if recipe_path else "command line"
    values: dict[str, Any] = {}
    if recipe_path is not None:
        values = read_recipe(recipe_path)
        unknown = sorted(set(values) - known)
        if unknown:
            raise RecipeError(f"{recipe_path}: unknown key(s) {unknown}; valid keys are: {sorted(known)}")
    values.update(parse_overrides(parser, overrides, known, source))
    configs = []
    for cls in config_classes:
        names = {f.name for f in dataclasses.fields(cls)}
        try:
            configs.append(cls(**{k: v for k, v in values.items() if k in names}))
        except (RecipeError, TypeError, ValueError) as exc:
            raise RecipeError(f"{source}: {exc}") from exc
    return configs


def split_config_argument(argv: Sequence[str]) -> tuple[str | None, list[str]]:
    """Take ``--config PATH`` out of ``argv``: returns the recipe path (or None) and the remaining overrides."""
    arguments = list(argv)
    if "--config" not in arguments:
        return None, arguments
    index = arguments.index("--config")
    if index + 1 >= len(arguments):
        raise RecipeError("--config needs a recipe path")
    recipe = arguments[index + 1]
    del arguments[index : index + 2]
    return recipe, arguments


def config_to_dict(config: Any) -> dict[str, Any]:
    """A JSON-able dict of a config dataclass (used in fingerprints, stats and cards)."""
    return dataclasses.asdict(config)
