"""Pipeline stages: small batched functions with a config dataclass, looked up by name from recipes
(:mod:`mathcode_pile.stages.registry`)."""

from mathcode_pile.stages.base import DROP_COLUMN, STAGE_REGISTRY, Stage, StageContext, register_stage

__all__ = ["DROP_COLUMN", "STAGE_REGISTRY", "Stage", "StageContext", "register_stage"]
