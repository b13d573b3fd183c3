"""The chunk-id scheme, in one place: ingestion writes chunks under these ids, and the service reads a
document's chunks back by them (its record counts them) without asking the store for a list."""

from __future__ import annotations


def chunk_id(document_id: str, index: int) -> str:
    # Deterministic ids: writing the same chunk twice overwrites it instead of duplicating it.
    return f"{document_id}-{index:06d}"
