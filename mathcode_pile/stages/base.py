"""The stage contract.

A stage is a pure batched function over plain column batches (``dict[str, list]``) plus a config dataclass. It returns
the output columns; a row it drops carries its reason in :data:`DROP_COLUMN` (``None`` keeps the row). Because the
function sees plain batches, ``Dataset.map`` calls it here and a distributed engine (datatrove, Ray Data) can call the
same code over shards later.

Stages that wait on the network (LLM calls) implement :meth:`Stage.aprocess_batch`; ``datasets`` then runs many
batches concurrently on one event loop. CPU-bound stages implement :meth:`Stage.process_batch` and may use
``num_proc``.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from mathcode_pile.config import config_to_dict

DROP_COLUMN = "_drop_reason"

Batch = dict[str, list[Any]]


@dataclass
class StageContext:
    """What a stage may use besides its own config: shared directories, the LLM client, the process count."""

    work_dir: Path
    llm: Any | None = None
    num_proc: int = 1
    seed: int = 0
    extras: dict[str, Any] = field(default_factory=dict)


class Stage:
    """Base class of every stage; subclasses set ``name``, ``config_class`` and implement one process method."""

    name: ClassVar[str]
    #: Bump when the function's behaviour changes: it is part of the fingerprint, so stale results are not reused.
    version: ClassVar[str] = "1"
    config_class: ClassVar[type]
    #: LLM stages run as async map functions in the main process (their client counters live there).
    is_async: ClassVar[bool] = False
    #: Rows per batch handed to the process method.
    batch_size: ClassVar[int] = 256
    #: Drop reasons that a later run should try again instead of reusing: failures of the outside world (an endpoint
    #: that gave up), not verdicts on the row. A finished shard holding such drops is recomputed on the next run.
    retry_drop_reasons: ClassVar[frozenset[str]] = frozenset()
    #: Input columns the stage may rewrite; None means any. The others pass from input to output without being
    #: copied through ``Dataset.map`` (a filter that rewrote ``text`` would spend more time copying documents than
    #: judging them, and worker processes could not speed that copy up).
    rewrites_columns: ClassVar[frozenset[str] | None] = None
    #: What the rows must carry when this stage starts (columns, or facts such as ``verified_computations``), and
    #: what it adds; the recipe check refuses a stage order in which a need comes before the stage that provides it.
    needs: ClassVar[frozenset[str]] = frozenset()
    provides: ClassVar[frozenset[str]] = frozenset()
    #: Stages that must not run before this one (``dedup`` after ``mixture`` would remove the mixture's copies).
    not_after: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, config: Any, context: StageContext) -> None:
        if not isinstance(config, self.config_class):
            raise TypeError(f"stage '{self.name}' needs a {self.config_class.__name__}, got {type(config).__name__}")
        self.config = config
        self.context = context

    def fingerprint(self, input_fingerprint: str) -> str:
        """Hash of input, stage name, version and config: the identity of this stage's output."""
        material = json.dumps(
            {
                "input": input_fingerprint,
                "stage": self.name,
                "version": self.version,
                "config": self.fingerprint_config(),
            },
            sort_keys=True,
            default=str,
        )
        return hashlib.sha256(material.encode("utf-8")).hexdigest()[:16]

    def fingerprint_config(self) -> dict[str, Any]:
        """The config fields that change the output (override to leave out e.g. concurrency)."""
        return config_to_dict(self.config)

    def process_batch(self, batch: Batch) -> Batch:
        raise NotImplementedError(f"stage '{self.name}' implements neither process_batch nor aprocess_batch")

    async def aprocess_batch(self, batch: Batch) -> Batch:
        raise NotImplementedError(f"stage '{self.name}' is not async")

    def extra_counters(self) -> Counter[str]:
        """Stage-specific counters gathered in this process (e.g. LLM requests), added to the stage stats."""
        return Counter()

    def summarize(self, kept: Any) -> Counter[str]:
        """Counters derived from a finished shard's kept rows (safe with ``num_proc``: runs in the main process)."""
        return Counter()


class LLMStage(Stage):
    """A stage that calls the model through the build's one :class:`~mathcode_pile.llm.LLMClient`.

    Its output depends on the model and the API mode (chat template applied by the server or not), so both join the
    fingerprint; concurrency and retry settings do not. The client's counters (requests, cache hits, retries,
    tokens) are reported with the stage's stats.
    """

    is_async = True
    batch_size = 8

    @property
    def client(self) -> Any:
        if self.context.llm is None:
            raise RuntimeError(f"stage '{self.name}' needs an LLM endpoint (or the embedded server)")
        return self.context.llm

    def fingerprint_config(self) -> dict[str, Any]:
        llm_config = self.client.config
        return {**super().fingerprint_config(), "model": llm_config.llm_model, "mode": llm_config.llm_mode}

    def extra_counters(self) -> Counter[str]:
        return Counter({f"llm_{k}": v for k, v in self.client.counters.items()})


STAGE_REGISTRY: dict[str, type[Stage]] = {}


def register_stage(cls: type[Stage]) -> type[Stage]:
    """Class decorator adding a stage to the registry under its ``name`` (recipes refer to stages by name)."""
    if cls.name in STAGE_REGISTRY and STAGE_REGISTRY[cls.name] is not cls:
        raise ValueError(f"two stages are named '{cls.name}'")
    STAGE_REGISTRY[cls.name] = cls
    return cls
