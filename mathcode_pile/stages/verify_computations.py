"""Stage ``verify_computations``: run every parsed snippet in the sandbox and keep the verdict beside it.

Each computation gets ``exec_status``, ``exec_output``, ``verified`` and ``reason`` (see
:mod:`mathcode_pile.translation.execution`). The snippets of a batch run concurrently on a pool of pre-warmed
sandbox workers created in the process that runs the stage; their printed output is then judged against the stated
result by :func:`mathcode_pile.translation.verify.verify_printed_output`, which parses untrusted text only within
bounds and in a judging process it can kill, and never raises: a computation whose output cannot be judged
(``factorial(5000)`` printed as text) is ``verify_error: <why>``, counted, and every other computation and row is
kept. Sandbox results are cached in ``<work_dir>/sandbox_cache.sqlite`` so a resumed build runs no snippet twice; the
verdicts are judged again from the cached output, under the same bounds. Per source it counts snippets that ran OK
and that were verified (``funnel/ran_ok|verified/<source>``), and every outcome under ``exec_status/<status>`` and
``verify/<reason>`` (``verify/verify_error`` among them).
"""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Literal

from mathcode_pile.card import publish_stage_section
from mathcode_pile.config import RecipeError, ValidatedConfig
from mathcode_pile.llm.cache import RequestCache
from mathcode_pile.sandbox import SandboxLimits, SandboxPool
from mathcode_pile.stages.base import Batch, Stage, StageContext, register_stage
from mathcode_pile.translation.execution import CheckedSnippet, execute_and_verify
from mathcode_pile.translation.report import FUNNEL, funnel_key, reason_key
from mathcode_pile.translation.verify import VerificationSettings


@dataclass
class VerifyComputationsConfig(ValidatedConfig):
    verify_timeout_s: float = field(default=10.0, metadata={"help": "Wall-clock limit of one snippet, seconds."})
    verify_memory_mb: int = field(default=1024, metadata={"help": "Memory a snippet may allocate, MB."})
    verify_max_file_mb: float = field(
        default=16.0, metadata={"help": "Largest file (and captured output) a snippet may write, MB."}
    )
    verify_max_processes: int = field(default=16, metadata={"help": "Processes and threads a snippet may run."})
    verify_workers: int = field(
        default=0, metadata={"help": "Pre-warmed sandbox workers; 0 = CPU count divided by num_proc."}
    )
    verify_isolation: Literal["auto", "namespaces", "process", "unsafe-hook-only"] = field(
        default="auto", metadata={"help": "Sandbox isolation (see mathcode_pile.sandbox); auto picks the strongest."}
    )
    verify_rel_tol: float = field(default=1e-4, metadata={"help": "Relative tolerance of the numeric comparison."})
    verify_abs_tol: float = field(default=1e-6, metadata={"help": "Absolute tolerance of the numeric comparison."})
    verify_match_rounded_decimals: bool = field(
        default=True, metadata={"help": "Accept output that rounds to a result stated with fewer decimals."}
    )
    verify_cache: bool = field(default=True, metadata={"help": "Cache sandbox results in the work folder."})

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.verify_workers < 0:
            raise RecipeError("verify_workers must be >= 0")
        try:
            self.limits()
            self.settings()
        except ValueError as exc:
            raise RecipeError(f"invalid verify_* setting: {exc}") from exc

    def limits(self) -> SandboxLimits:
        return SandboxLimits(
            timeout_s=self.verify_timeout_s,
            memory_mb=self.verify_memory_mb,
            max_file_mb=self.verify_max_file_mb,
            max_processes=self.verify_max_processes,
        )

    def settings(self) -> VerificationSettings:
        return VerificationSettings(
            rel_tol=self.verify_rel_tol,
            abs_tol=self.verify_abs_tol,
            match_rounded_decimals=self.verify_match_rounded_decimals,
        )


@register_stage
class VerifyComputationsStage(Stage):
    name = "verify_computations"
    needs = frozenset({"computations"})
    provides = frozenset({"verified_computations"})
    # 2: prose is no value, rounded golds, ordered and unordered lists, bounded judging (verify_error)
    version = "2"
    config_class = VerifyComputationsConfig
    batch_size = 64

    def __init__(self, config: VerifyComputationsConfig, context: StageContext) -> None:
        super().__init__(config, context)
        self._pool: SandboxPool | None = None
        self._cache: RequestCache | None = None
        publish_stage_section(self.name, FUNNEL.record)

    def fingerprint_config(self) -> dict[str, Any]:
        # how many workers run the snippets, and whether results are cached, does not change the output
        config = super().fingerprint_config()
        for key in ("verify_workers", "verify_cache"):
            config.pop(key)
        return config

    def _workers(self) -> int:
        if self.config.verify_workers:
            return self.config.verify_workers
        return max(1, (os.cpu_count() or 1) // max(1, self.context.num_proc))

    @property
    def pool(self) -> SandboxPool:
        if self._pool is None:
            self._pool = SandboxPool(
                workers=self._workers(), limits=self.config.limits(), isolation=self.config.verify_isolation
            )
        return self._pool

    @property
    def cache(self) -> RequestCache | None:
        if self._cache is None and self.config.verify_cache:
            self._cache = RequestCache(self.context.work_dir / "sandbox_cache.sqlite")
        return self._cache

    def process_batch(self, batch: Batch) -> Batch:
        if "computations" not in batch:
            raise ValueError("stage 'verify_computations' needs the 'computations' column: run 'parse_computations'")
        documents = [json.loads(raw) for raw in batch["computations"]]
        items = [(c["code"], c["result"]) for computations in documents for c in computations]
        checked: list[CheckedSnippet] = (
            execute_and_verify(lambda: self.pool, items, self.config.limits(), self.config.settings(), self.cache)
            if items
            else []
        )
        position = 0
        output = []
        for computations in documents:
            for computation in computations:
                computation.update(checked[position].to_dict())
                position += 1
            output.append(json.dumps(computations, ensure_ascii=False))
        return {**batch, "computations": output}

    def summarize(self, kept: Any) -> Counter[str]:
        counts: Counter[str] = Counter()
        if not len(kept):
            return counts
        for source, raw in zip(kept["source"], kept["computations"], strict=True):
            for computation in json.loads(raw):
                counts[reason_key("exec_status", computation["exec_status"])] += 1
                if computation["exec_status"] == "ok":
                    counts[funnel_key("ran_ok", source)] += 1
                    counts[reason_key("verify", computation["reason"].split(":", 1)[0])] += 1
                if computation["verified"]:
                    counts[funnel_key("verified", source)] += 1
        return counts

    def __getstate__(self) -> dict[str, Any]:
        # datasets pickles the stage for its worker processes: live sandbox workers and connections stay behind
        return {**self.__dict__, "_pool": None, "_cache": None}
