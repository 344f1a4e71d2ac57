"""Recipe keys that choose where the build runs, and the checks that name what to install or fix."""

from __future__ import annotations

import importlib
import shutil
from dataclasses import dataclass, field

from mathcode_pile.config import RecipeError, ValidatedConfig

EXECUTORS = ("datasets", "local", "ray", "slurm")
SCALE_INSTALL_HINT = "pip install 'mathcode[scale]'  (datatrove[io,ray]==0.10.1)"


@dataclass
class ExecutorConfig(ValidatedConfig):
    executor: str = field(
        default="datasets",
        metadata={"help": "Where the stages run: datasets (one machine, Dataset.map), local (datatrove processes), "
                  "ray (a Ray cluster) or slurm (datatrove Slurm job arrays)."},
    )  # fmt: skip
    tasks: int = field(default=1, metadata={"help": "datatrove tasks (input shards) per step (not with datasets)."})
    workers: int = field(default=-1, metadata={"help": "Tasks running at once; -1: all of them."})
    task_retries: int = field(
        default=2, metadata={"help": "Reruns of a failed task before the build stops naming its rank and log."}
    )
    slurm_partition: str | None = field(default=None, metadata={"help": "Slurm partition of every job."})
    slurm_time: str = field(default="24:00:00", metadata={"help": "Slurm time limit per job array task."})
    slurm_cpus_per_task: int = field(default=1, metadata={"help": "CPUs per Slurm task."})
    slurm_mem_per_cpu_gb: float = field(default=2.0, metadata={"help": "Memory per CPU in GB (Slurm)."})
    slurm_env_command: str | None = field(
        default=None,
        metadata={"help": "Shell line every Slurm job runs first, e.g. 'source /path/to/.venv/bin/activate'."},
    )
    slurm_qos: str | None = field(default=None, metadata={"help": "Slurm QOS, if the cluster needs one."})
    ray_address: str | None = field(
        default=None, metadata={"help": "Address of a running Ray cluster; empty: start a local one."}
    )
    ray_num_cpus: int | None = field(default=None, metadata={"help": "CPUs of the local Ray cluster (empty: all)."})

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.executor not in EXECUTORS:
            raise RecipeError(
                f"executor {self.executor!r} is unknown; use one of {', '.join(EXECUTORS)} "
                "(datasets: one machine; local / ray / slurm: datatrove)"
            )
        if self.tasks < 1 or self.slurm_cpus_per_task < 1 or self.task_retries < 0:
            raise RecipeError("tasks and slurm_cpus_per_task must be >= 1, task_retries >= 0")
        if self.workers == 0 or self.workers < -1:
            raise RecipeError("workers must be >= 1, or -1 for all tasks at once")

    @property
    def scaled(self) -> bool:
        return self.executor != "datasets"


def check_executor_available(config: ExecutorConfig) -> None:
    """Fail before any work when the chosen executor cannot run here, saying what to install."""
    if not config.scaled:
        return
    for module, name in (("datatrove", "datatrove"), ("ray", "Ray")):
        if module == "ray" and config.executor != "ray":
            continue
        try:
            importlib.import_module(module)
        except ImportError as error:
            raise RecipeError(
                f"executor {config.executor!r} needs {name}, which is not installed ({error}): {SCALE_INSTALL_HINT}"
            ) from error
    if config.executor == "slurm" and shutil.which("sbatch") is None:
        raise RecipeError(
            "executor 'slurm' needs the Slurm client: 'sbatch' is not on PATH. Run the build on a Slurm login node "
            "(or load its module, e.g. 'module load slurm'), or choose --executor local / ray"
        )
