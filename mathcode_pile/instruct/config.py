"""The recipe of an LCE instruction-data build (``recipes/mathcode_instruct/*.yaml``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mathcode_pile.config import RecipeError, ValidatedConfig
from mathcode_pile.output_dirs import OverwriteOption


@dataclass
class InstructConfig(ValidatedConfig, OverwriteOption):
    """What to build from which seed problems, and how each of the three steps runs."""

    dataset_name: str = field(default="MathCodeInstruct", metadata={"help": "Pretty name in the dataset card."})
    output_dir: str = field(default="data/mathcode_instruct", metadata={"help": "Folder of the finished dataset."})
    work_dir: str | None = field(
        default=None, metadata={"help": "Per-step records, request cache, logs; default <output_dir>_work."}
    )
    seeds: list[dict[str, Any]] = field(
        default_factory=list,
        metadata={"help": "Seed problem sources (the keys of mathcode-pile sources); their text is the question."},
    )
    answer_fields: dict[str, str] = field(
        default_factory=dict,
        metadata={"help": "Seed source name -> record field holding its gold answer (a bare answer or a solution "
                  "with \\boxed{} / ####)."},
    )  # fmt: skip
    hard_sources: list[str] = field(
        default_factory=list,
        metadata={"help": "Seed sources of the harder problems (MATH-like); the others are the easier ones."},
    )
    teacher_system_prompt: str = field(
        default=(
            "You solve math problems with the help of a Python interpreter. Reason in text blocks, compute in code "
            "blocks that print what you need, read each execution result, and finish with a text block that states "
            "the final answer as \\boxed{answer}."
        ),
        metadata={"help": "System turn the teacher sees (the saved conversations keep MathCoder's empty one)."},
    )
    teacher_samples: int = field(
        default=1, metadata={"help": "Solutions the teacher writes per seed problem; one correct one is kept."}
    )
    teacher_temperature: float = field(
        default=0.0, metadata={"help": "Sampling temperature of the teacher (0: greedy; use > 0 with samples > 1)."}
    )
    interpolation_problems: int = field(
        default=0, metadata={"help": "New problems to write, each from one easier and one harder seed problem."}
    )
    interpolation_max_new_tokens: int = field(default=256, metadata={"help": "Token cap of one new problem."})
    distill_samples: int = field(
        default=3, metadata={"help": "Sampled solutions per new problem; kept when all reach the same answer."}
    )
    distill_temperature: float = field(default=0.7, metadata={"help": "Sampling temperature of self-distillation."})
    distill_llm_endpoint: str | None = field(
        default=None,
        metadata={
            "help": "Server of the LCE model that self-distils (the initial MathCoder); default: the teacher's."
        },
    )
    distill_llm_model: str | None = field(
        default=None, metadata={"help": "Model name of that server (request cache key); default: the teacher's."}
    )
    sandbox_workers: int = field(default=2, metadata={"help": "Sandbox processes hosting the Python sessions."})
    parquet_rows_per_shard: int = field(default=100_000, metadata={"help": "Rows per output Parquet file."})
    token_count_tokenizer: str = field(
        default="embedded",
        metadata={"help": "Tokenizer that counts tokens in the card: 'embedded', a Hub id or folder, or 'none'."},
    )
    seed: int = field(default=42, metadata={"help": "Seed of the easy x hard pairing."})
    push_to_hub: str | None = field(default=None, metadata={"help": "Hub dataset repo id to publish to."})
    hub_private: bool = field(default=False, metadata={"help": "Create the Hub repo as private."})
    dry_run: bool = field(default=False, metadata={"help": "With push_to_hub: list what would be uploaded only."})

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.seeds:
            raise RecipeError("'seeds' is empty: an instruct build needs seed problems with gold answers")
        names = [str(seed.get("name")) for seed in self.seeds]
        missing = [name for name in names if name not in self.answer_fields]
        if missing:
            raise RecipeError(f"answer_fields names no gold-answer field for seed source(s) {missing}")
        unknown = sorted(set(self.hard_sources) - set(names))
        if unknown:
            raise RecipeError(f"hard_sources names {unknown}, which are not seed sources {names}")
        if self.interpolation_problems and not (set(self.hard_sources) and set(names) - set(self.hard_sources)):
            raise RecipeError("interpolation needs both easier and harder seeds: list the harder ones in hard_sources")
        for name in ("teacher_samples", "distill_samples", "interpolation_max_new_tokens", "sandbox_workers"):
            if getattr(self, name) < 1:
                raise RecipeError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.interpolation_problems < 0:
            raise RecipeError("interpolation_problems must be >= 0")

    @property
    def resolved_work_dir(self) -> Path:
        return Path(self.work_dir) if self.work_dir else Path(f"{self.output_dir.rstrip('/')}_work")

    def seed_specs(self) -> list[dict[str, Any]]:
        """The seed sources with their gold-answer field carried into each row's metadata."""
        specs = []
        for seed in self.seeds:
            answer_field = self.answer_fields[str(seed["name"])]
            metadata_fields = list(seed.get("metadata_fields") or [])
            if answer_field not in metadata_fields:
                metadata_fields.append(answer_field)
            specs.append({**seed, "metadata_fields": metadata_fields})
        return specs
