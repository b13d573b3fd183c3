"""The id schemes, in one place: ingestion writes chunks under these ids, and the service reads a
document's chunks back by them (its record counts them) without asking the store for a list.

A document's chunks, vectors, keyword entries and kept original are stored under a *storage key*: its id for
its first version, ``<id>.v<N>`` for version N of a replaced document. Two versions of one document can
then sit side by side in the store while the new one is ingested; retrieval shows the one the records name.
"""

from __future__ import annotations

VERSION_SEPARATOR = ".v"


def chunk_id(storage_key: str, index: int) -> str:
    # Deterministic ids: writing the same chunk twice overwrites it instead of duplicating it.
    return f"{storage_key}-{index:06d}"


def storage_key(document_id: str, version: int) -> str:
    """Where version ``version`` of the document is stored (the first under the document's own id, as
    before versions existed, so stores written then need no change)."""
    return document_id if version <= 1 else f"{document_id}{VERSION_SEPARATOR}{version}"


def document_of(key: str) -> str:
    """The document a storage key belongs to (ids are hex, so the separator never occurs in one)."""
    return key.split(VERSION_SEPARATOR, 1)[0]
