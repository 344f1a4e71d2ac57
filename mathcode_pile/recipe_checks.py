"""Checks of a whole build recipe that need more than one key, run before the first stage.

The config dataclasses check each key on its own (types, ranges, finite numbers, files named by path keys); what
only the whole recipe can tell is checked here, so that a mistake stops the build at its start with the recipe, the
key and the fix named, instead of after hours of stages or, worse, producing a corpus that quietly means something
else:

- the stage order against each stage's declared needs (``verify_computations`` before ``parse_computations``) and
  exclusions (``mixture`` twice, ``dedup`` after ``mixture``);
- ``mixture_weights`` naming only sources of the recipe, and only when a ``mixture`` stage applies them;
- each source's ``text_template`` (plain field names only) and its text field, tried on the source's first row
  (which also reaches every Hub source once);
- the benchmark files of ``decontaminate`` and the training sources of ``math_classify``;
- the card's name (``dataset_name``): not empty, on one line;
- the output and work folders (:mod:`mathcode_pile.output_dirs`).
"""

from __future__ import annotations

import itertools
import logging
from collections import Counter
from collections.abc import Sequence
from typing import Any

from mathcode_pile.config import RecipeError
from mathcode_pile.output_dirs import check_output_dir, check_separate_dirs
from mathcode_pile.sources import SourceError, SourceSpec, check_text_template, iter_source_records, parse_sources
from mathcode_pile.stages.base import Stage


def check_card_name(value: str, key: str, where: str) -> None:
    """A name the dataset card shows as its title and ``pretty_name``: not empty, one line, no control characters."""
    if not value.strip():
        raise RecipeError(f"{where}: {key} is empty; the dataset card needs a name, e.g. {key}: My-Pile")
    if any(ord(char) < 32 for char in value):
        raise RecipeError(f"{where}: {key} {value!r} holds a line break or control character; write it on one line")


def check_stage_order(stage_classes: Sequence[type[Stage]], registry: dict[str, type[Stage]], where: str) -> None:
    """Every stage's needs provided by an earlier stage, and no stage after one it must not follow."""
    provided: set[str] = set()
    for position, stage in enumerate(stage_classes, start=1):
        earlier = [other.name for other in stage_classes[: position - 1]]
        for excluded in sorted(stage.not_after & set(earlier)):
            repeated = "a second time" if excluded == stage.name else f"after '{excluded}'"
            raise RecipeError(
                f"{where}: stages: '{stage.name}' (stage {position}) cannot run {repeated}: "
                f"{_not_after_reason(stage.name, excluded)}; remove it or move it before '{excluded}'"
            )
        for need in sorted(stage.needs - provided):
            providers = sorted(name for name, other in registry.items() if need in other.provides)
            raise RecipeError(
                f"{where}: stages: '{stage.name}' (stage {position}) needs {need}, which "
                f"{' or '.join(repr(p) for p in providers) or 'no stage'} provides; put "
                f"{providers[0] if providers else 'that stage'!r} before '{stage.name}'"
            )
        provided |= stage.provides


def _not_after_reason(stage: str, excluded: str) -> str:
    if stage == excluded == "mixture":
        return "the weights would be applied twice"
    if stage == "dedup" and excluded == "mixture":
        return "it would remove the copies the mixture weights made while the card still states the weights"
    return f"'{stage}' undoes what '{excluded}' did"


def check_mixture_weights(
    weights: dict[str, float], stages: Sequence[str], sources: Sequence[str], where: str
) -> None:
    """Weights only for sources of the recipe, and only with a ``mixture`` stage to apply them."""
    if not weights:
        return
    if "mixture" not in stages:
        raise RecipeError(
            f"{where}: mixture_weights is set but no 'mixture' stage applies it; add 'mixture' to stages (after "
            "dedup) or remove mixture_weights"
        )
    unknown = sorted(set(weights) - set(sources))
    if unknown:
        raise RecipeError(
            f"{where}: mixture_weights names {unknown}, which is not a source of this recipe; the sources are "
            f"{sorted(sources)}"
        )


def _first_record(spec: SourceSpec) -> tuple[str, dict[str, Any]] | None:
    """The first readable record of a source with where it is, or None when the source has none.

    Lines skipped on the way are not logged here: the load logs and counts them.
    """
    sources_logger = logging.getLogger("mathcode_pile.sources")
    level = sources_logger.level
    sources_logger.setLevel(logging.ERROR)
    try:
        for location, _, record in itertools.islice(iter_source_records(spec, Counter()), 1):
            return location, record
    finally:
        sources_logger.setLevel(level)
    return None


def check_source_first_rows(specs: Sequence[SourceSpec], where: str) -> None:
    """Each source's template compiled and every field it (or ``text_field``) reads present in its first row."""
    for index, spec in enumerate(specs):
        key = f"sources[{index}] ('{spec.name}')"
        fields = [spec.text_field]
        if spec.text_template is not None:
            try:
                fields = check_text_template(spec.text_template)
            except ValueError as exc:
                raise RecipeError(f"{where}: {key}: text_template {spec.text_template!r}: {exc}") from exc
        try:
            first = _first_record(spec)
        except SourceError as exc:
            raise RecipeError(f"{where}: {key}: {exc}") from exc
        if first is None:
            continue  # nothing readable: the load counts every skip and stops with the per-source table
        location, record = first
        missing = [name for name in fields if name not in record]
        if missing:
            which = "text_template" if spec.text_template is not None else "text_field"
            raise RecipeError(
                f"{where}: {key}: {which} reads {missing}, which the first row ({location}) lacks; its fields are "
                f"{sorted(record)[:20]}. Set text_field or text_template to fields the rows have"
            )


def check_benchmarks(references: Sequence[str], where: str) -> None:
    """Every benchmark of ``decontam_benchmarks`` is an existing file or folder of test sets, or a Hub id."""
    from mathcode_pile.decontamination.benchmarks import looks_like_hub_id, resolve_benchmark_files

    for reference in references:
        if not resolve_benchmark_files(reference) and not looks_like_hub_id(reference):
            raise RecipeError(
                f"{where}: decontam_benchmarks: '{reference}' is neither a benchmark file or folder that exists nor a "
                "Hub id (owner/name[:config[:split]]); fix the path, or leave decontam_benchmarks empty for the "
                "bundled test sets"
            )


def check_classifier_sources(config: Any, where: str) -> None:
    """The classifier's training sources, when the stage trains one, parse and name existing files."""
    if config.classifier_model is not None:
        return
    for key in ("classifier_positive_sources", "classifier_negative_sources"):
        parse_sources(getattr(config, key), f"{where}: {key}")


def check_build_recipe(configs: Any) -> None:
    """Every cross-key check of a parsed build recipe (:class:`mathcode_pile.pipeline.BuildConfigs`)."""
    from mathcode_pile.stages.classify import ClassifyConfig
    from mathcode_pile.stages.decontaminate import DecontaminateConfig
    from mathcode_pile.stages.mixture import MixtureConfig
    from mathcode_pile.stages.registry import get_stage_class, registered_stages

    pipeline, where = configs.pipeline, configs.recipe
    check_card_name(pipeline.dataset_name, "dataset_name", where)
    specs = parse_sources(pipeline.sources, where)
    stage_classes = [get_stage_class(name) for name in pipeline.stages]
    check_stage_order(stage_classes, registered_stages(), where)
    mixture: MixtureConfig = configs.stage_configs[MixtureConfig]
    check_mixture_weights(mixture.mixture_weights, pipeline.stages, [spec.name for spec in specs], where)
    if "decontaminate" in pipeline.stages:
        check_benchmarks(configs.stage_configs[DecontaminateConfig].decontam_benchmarks, where)
    if "math_classify" in pipeline.stages:
        check_classifier_sources(configs.stage_configs[ClassifyConfig], where)
    check_output_dir(pipeline.output_dir, "output_dir", where, pipeline.overwrite)
    check_output_dir(pipeline.resolved_work_dir, "work_dir", where, pipeline.overwrite)
    check_separate_dirs(pipeline.output_dir, pipeline.resolved_work_dir, where)
    check_source_first_rows(specs, where)
