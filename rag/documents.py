"""Reading documents and their chunks, for the API and the CLI. No HTTP here."""

from __future__ import annotations

from dataclasses import dataclass

from ingest.pipeline import chunk_id
from ingest.records import DocumentRecord, DocumentRecords, Status
from rag.store import ChromaStore, ChunkHit


class DocumentNotFound(LookupError):
    pass


@dataclass(frozen=True, slots=True)
class ChunkPage:
    document: DocumentRecord
    chunks: list[ChunkHit]
    total: int


class DocumentReader:
    def __init__(self, records: DocumentRecords, store: ChromaStore):
        self._records = records
        self._store = store

    def get(self, document_id: str, *, within: frozenset[str] | None = None) -> DocumentRecord:
        """The document; DocumentNotFound also when it is outside the collections ``within`` (a scoped key
        learns nothing of documents it may not see, not even that they exist)."""
        record = self._records.get(document_id)
        if record is None or (within is not None and record.collection not in within):
            raise DocumentNotFound(document_id)
        return record

    def list(
        self,
        *,
        collection: str | None,
        status: Status | None,
        limit: int,
        offset: int,
        within: frozenset[str] | None = None,
    ) -> tuple[list[DocumentRecord], int]:
        return self._records.list(collection=collection, status=status, limit=limit, offset=offset, within=within)

    def chunks(self, document_id: str, *, limit: int, offset: int, within: frozenset[str] | None = None) -> ChunkPage:
        """A page of the document's stored chunks in reading order (so far, while it is being written)."""
        record = self.get(document_id, within=within)
        match record.status:
            case Status.READY:
                total = record.chunks or 0
            case Status.PROCESSING:
                total = record.chunks_written
            case _:
                total = 0
        ids = [chunk_id(record.id, index) for index in range(offset, min(offset + limit, total))]
        return ChunkPage(record, self._store.get_chunks(record.collection, ids), total)
