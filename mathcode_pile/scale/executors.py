"""datatrove executors from the recipe's executor keys, and running them with retries of failed tasks."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from mathcode_pile.config import RecipeError
from mathcode_pile.scale.config import ExecutorConfig

logger = logging.getLogger(__name__)


def make_executor(
    config: ExecutorConfig,
    pipeline: list[Any],
    logging_dir: Path,
    tasks: int,
    job_name: str,
    depends: Any = None,
    workers: int | None = None,
) -> Any:
    """One datatrove executor for ``pipeline``; ``depends`` chains Slurm jobs (local and Ray run steps in order)."""
    workers = config.workers if workers is None else workers
    if config.executor == "local":
        from datatrove.executor import LocalPipelineExecutor

        return LocalPipelineExecutor(
            pipeline, tasks=tasks, workers=min(workers, tasks) if workers > 0 else -1, logging_dir=str(logging_dir)
        )
    if config.executor == "ray":
        from datatrove.executor import RayPipelineExecutor

        return RayPipelineExecutor(
            pipeline, tasks=tasks, workers=workers, logging_dir=str(logging_dir), cpus_per_task=1, mem_per_cpu_gb=0.5
        )
    if config.executor == "slurm":
        from datatrove.executor import SlurmPipelineExecutor

        return SlurmPipelineExecutor(
            pipeline,
            tasks=tasks,
            workers=workers,
            time=config.slurm_time,
            partition=config.slurm_partition or "",
            cpus_per_task=config.slurm_cpus_per_task,
            mem_per_cpu_gb=config.slurm_mem_per_cpu_gb,
            job_name=job_name,
            logging_dir=str(logging_dir),
            depends=depends,
            qos=config.slurm_qos or "",
            env_command=config.slurm_env_command,
            venv_path=None,
            max_array_launch_parallel=True,
            stagger_max_array_jobs=0,
            requeue=True,
        )
    raise RecipeError(f"executor {config.executor!r} does not run datatrove pipelines")


def start_ray(config: ExecutorConfig) -> None:
    """Connect to ``ray_address`` or start a local cluster (once per process)."""
    import ray

    if ray.is_initialized():
        return
    if config.ray_address:
        ray.init(address=config.ray_address, ignore_reinit_error=True)
    else:
        ray.init(num_cpus=config.ray_num_cpus, include_dashboard=False, ignore_reinit_error=True)


def incomplete_ranks(logging_dir: Path, tasks: int) -> list[int]:
    """Ranks without datatrove's completion marker."""
    return [rank for rank in range(tasks) if not (logging_dir / "completions" / f"{rank:05d}").exists()]


def run_with_retries(executor: Any, config: ExecutorConfig, logging_dir: Path, tasks: int, step: str) -> None:
    """Run a local / Ray executor; rerun failed tasks (complete ones are skipped) up to ``task_retries`` times.

    A task still failing after that stops the build with its rank and log file.
    """
    for attempt in range(config.task_retries + 1):
        try:
            executor.run()
        except Exception as error:  # datatrove raises once any task failed; its log names the cause
            logger.warning("step %s: a task failed (%s); attempt %d of %d", step, error, attempt + 1,
                           config.task_retries + 1)  # fmt: skip
        missing = incomplete_ranks(logging_dir, tasks)
        if not missing:
            return
        executor._launched = False  # run again: datatrove skips the ranks it marked complete
    rank = missing[0]
    raise RecipeError(
        f"step {step}: task {rank} failed {config.task_retries + 1} time(s) (tasks still incomplete: {missing}); "
        f"see its log {logging_dir / 'logs' / f'task_{rank:05d}.log'}"
    )
