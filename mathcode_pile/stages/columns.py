"""Column handling shared by the basic-data stages: whole-shard batches and fast column reads.

``dataset[name]`` in ``datasets`` 5 is a lazy column that formats one row at a time when iterated: on a 20k-row
shard that costs seconds, more than the stage itself. Converting the Arrow column in one call costs milliseconds.
"""

from __future__ import annotations

from typing import Any

#: ``batch_size`` of the filter stages: a work shard (``shard_rows``, 1,000 by default) is one batch. ``datasets``
#: fixes a column's type from the first batch it writes, so a keep/drop column that is all ``None`` in a first batch
#: (nothing dropped yet) and holds a reason in a later one fails to write ("its type in this file is null"); with
#: one batch per shard (per worker under ``num_proc``) there is no later batch. Filters keep memory bounded
#: themselves where a batch could be large (dedup hashes in chunks).
WHOLE_SHARD_BATCH = 100_000


def column_values(dataset: Any, name: str) -> list[Any]:
    """The Python values of column ``name`` of a ``datasets.Dataset`` (an empty list for an empty dataset)."""
    if not len(dataset):
        return []
    return dataset.data.column(name).to_pylist()
