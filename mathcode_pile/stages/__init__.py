"""Pipeline stages: small batched functions with a config dataclass, looked up by name from recipes."""

from mathcode_pile.stages.base import DROP_COLUMN, STAGE_REGISTRY, Stage, StageContext, get_stage_class, register_stage

__all__ = ["DROP_COLUMN", "STAGE_REGISTRY", "Stage", "StageContext", "get_stage_class", "register_stage"]
