"""Rows as datatrove ``Document``s and back: ``id`` and ``text`` are the document's, every other column its metadata.

The stages take column batches (``dict[str, list]``); these helpers are the whole adapter between the two shapes,
plus the reader / writer adapters that keep the Parquet files of every step flat (one column per field, as the
one-machine path writes them), so the assembled dataset has the same schema either way.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from datatrove.data import Document

from mathcode_pile.stages.base import DROP_COLUMN, Batch

ROW_KEYS = ("id", "text")


def documents_to_batch(documents: list[Document]) -> Batch:
    """One column batch from documents, columns in the order the rows carry them."""
    columns: list[str] = list(ROW_KEYS)
    for document in documents:
        for key in document.metadata:
            if key not in columns:
                columns.append(key)
    batch: Batch = {name: [] for name in columns}
    for document in documents:
        batch["id"].append(document.id)
        batch["text"].append(document.text)
        for name in columns[2:]:
            batch[name].append(document.metadata.get(name))
    return batch


def batch_rows(batch: Batch) -> Iterable[tuple[dict[str, Any], str | None]]:
    """Each output row of a stage with its drop reason (None: kept)."""
    names = [name for name in batch if name != DROP_COLUMN]
    reasons = batch.get(DROP_COLUMN) or [None] * len(batch["id"])
    for index, reason in enumerate(reasons):
        yield {name: batch[name][index] for name in names}, (reason or None)


def row_to_document(row: dict[str, Any]) -> Document:
    metadata = {key: value for key, value in row.items() if key not in ROW_KEYS}
    return Document(text=row["text"], id=str(row["id"]), metadata=metadata)


def read_row(self: Any, data: dict, path: str, id_in_file: int | str) -> dict[str, Any]:
    """Reader adapter: a flat Parquet row becomes text, id and the other columns as metadata."""
    return {"text": data.pop("text"), "id": data.pop("id"), "metadata": data}


def write_row(self: Any, document: Document) -> dict[str, Any]:
    """Writer adapter: the document as one flat row (id, text, then its metadata columns in order)."""
    return {"id": document.id, "text": document.text, **document.metadata}


def write_near_duplicate(self: Any, document: Document) -> dict[str, Any]:
    """Writer adapter of the MinHash filter's exclusion writer: the row with its drop reason."""
    return {**write_row(self, document), DROP_COLUMN: "near_duplicate"}
