"""Recipe parsing shared by every MathCode entry point.

Recipes are YAML files whose keys are the fields of one or more dataclasses (the alignment-handbook / TRL style).
We parse them with ``transformers.HfArgumentParser`` so that every field gets ``--help`` text and can be overridden on
the command line, and add the strictness that parser lacks: unknown keys, wrong types and missing files are errors
that name the recipe file and the key.
"""

from __future__ import annotations

import dataclasses
import math
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
            bad_number = _first_non_finite(value, field.name)
            if bad_number is not None:
                where, number = bad_number
                raise RecipeError(
                    f"field '{field.name}' of {type(self).__name__}: {where} must be a finite number, got {number!r}; "
                    "write a number such as 1.0 (NaN and infinity are not accepted)"
                )
            if field.metadata.get("path") and value is not None:
                paths = value if isinstance(value, list) else [value]
                for path in paths:
                    if not Path(path).exists():
                        raise RecipeError(f"field '{field.name}' of {type(self).__name__}: file not found: {path}")


def _first_non_finite(value: Any, where: str) -> tuple[str, float] | None:
    """Where the first NaN or infinite float in ``value`` is (``sources[0].weight``) and what it is, or None."""
    if isinstance(value, float):
        return None if math.isfinite(value) else (where, value)
    if isinstance(value, list | tuple):
        items: Any = ((f"{where}[{index}]", item) for index, item in enumerate(value))
    elif isinstance(value, dict):
        items = ((f"{where}.{key}", item) for key, item in value.items())
    else:
        return None
    for item_where, item in items:
        found = _first_non_finite(item, item_where)
        if found is not None:
            return found
    return None


def _describe(annotation: Any) -> str:
    return getattr(annotation, "__name__", None) or str(annotation).replace("typing.", "")


#: Nodes a recipe may expand to once its aliases are followed: far above any real recipe, far below a billion laughs.
MAX_RECIPE_NODES = 100_000


class _RecipeLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a key given twice in one mapping (the last one would silently win)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if isinstance(key, str | int | float | bool) and key in seen:
                raise RecipeError(
                    f"line {line}: key '{key}' is given twice (first on line {seen[key]}); keep only one of them"
                )
            if isinstance(key, str | int | float | bool):
                seen[key] = line
        return super().construct_mapping(node, deep=deep)


def _expanded_size(node: yaml.Node, limit: int) -> int:
    """How many nodes ``node`` stands for once every alias is expanded (stops counting past ``limit``)."""
    sizes: dict[int, int] = {}

    def size(current: yaml.Node) -> int:
        if id(current) in sizes:
            return sizes[id(current)]
        sizes[id(current)] = limit + 1  # a node that contains itself expands forever
        total = 1
        if isinstance(current, yaml.SequenceNode):
            children: list[yaml.Node] = list(current.value)
        elif isinstance(current, yaml.MappingNode):
            children = [part for pair in current.value for part in pair]
        else:
            children = []
        for child in children:
            total += size(child)
            if total > limit:
                break
        sizes[id(current)] = min(total, limit + 1)
        return sizes[id(current)]

    return size(node)


def load_recipe_yaml(text: str, source: str) -> Any:
    """Parse recipe text strictly: duplicate keys are errors and aliases may not expand past
    :data:`MAX_RECIPE_NODES` nodes (a "billion laughs" file fails at once instead of filling memory)."""
    loader = _RecipeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        if _expanded_size(node, MAX_RECIPE_NODES) > MAX_RECIPE_NODES:
            raise RecipeError(
                f"{source}: its aliases (*name) expand to more than {MAX_RECIPE_NODES:,} values; "
                "write the repeated parts out or use fewer nested aliases"
            )
        return loader.construct_document(node)
    except RecipeError as exc:
        message = str(exc)
        raise RecipeError(message if message.startswith(f"{source}:") else f"{source}: {message}") from exc
    except yaml.YAMLError as exc:
        raise RecipeError(f"{source}: invalid YAML: {exc}") from exc
    except RecursionError as exc:
        raise RecipeError(f"{source}: nested too deeply to be a recipe") from exc
    finally:
        loader.dispose()


def read_recipe_text(path: Path) -> str:
    """The recipe file as text; a file that is not UTF-8 is an error naming the byte and the line."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise RecipeError(
            f"{path}: not UTF-8 text (byte 0x{data[exc.start]:02x} on line {line}); save the recipe as UTF-8"
        ) from exc


def read_recipe(path: str | Path) -> dict[str, Any]:
    """Read a recipe YAML into a dict, with errors that name the file."""
    path = Path(path)
    if not path.is_file():
        raise RecipeError(f"recipe not found: {path}")
    data = load_recipe_yaml(read_recipe_text(path), str(path)) or {}
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
