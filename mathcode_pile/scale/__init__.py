"""The build past one machine: the same stages run as datatrove pipelines under its local, Ray or Slurm executor.

``executor: datasets`` (the default) keeps the one-machine path of :mod:`mathcode_pile.pipeline`; any other executor
goes through :func:`mathcode_pile.scale.build.build_pile_scaled`, which wraps each stage in
:class:`~mathcode_pile.scale.stage_step.StageStep` (no second copy of a stage's logic) and replaces the sequential
``dedup`` by datatrove's multi-stage MinHash.
"""
