"""Column handling shared by the basic-data stages: batch sizes and fast column reads.

``dataset[name]`` in ``datasets`` 5 is a lazy column that formats one row at a time when iterated: on a 20k-row
shard that costs seconds, more than the stage itself. Converting the Arrow column in one call costs milliseconds.
"""

from __future__ import annotations

from typing import Any

#: ``batch_size`` of stages that work on a whole shard at once (dedup's bulk hashing, the mixture's copies): a work
#: shard (``shard_rows``) is one batch.
WHOLE_SHARD_BATCH = 100_000

#: ``batch_size`` of the per-document filters (classifier, code imports, decontamination). Batches of a thousand
#: documents keep a worker's memory small and reused: one batch per 20k-document shard made each worker fault in
#: hundreds of MB of fresh pages, which cost more than the filtering and kept two processes from running twice as fast
#: as one (``benchmarks/classifier.py``). A first batch that drops nothing is safe: the runner stores "kept" as an
#: empty string, so the drop column's type is fixed as text from the first batch on.
FILTER_BATCH = 1000


def column_values(dataset: Any, name: str) -> list[Any]:
    """The Python values of column ``name`` of a ``datasets.Dataset`` (an empty list for an empty dataset)."""
    if not len(dataset):
        return []
    return dataset.data.column(name).to_pylist()
