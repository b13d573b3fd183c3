"""Finding the chunks nearest to a query. Only documents whose every chunk is written are visible."""

from __future__ import annotations

from dataclasses import dataclass, field

from ingest.ports import Embedder, MetadataValue
from ingest.records import DocumentRecords
from rag.store import ChromaStore, ChunkHit


class CollectionNotFound(LookupError):
    pass


@dataclass(frozen=True, slots=True)
class Filters:
    document_ids: list[str] | None = None  # only these documents
    metadata: dict[str, MetadataValue] = field(default_factory=dict)  # chunk metadata equal to these values


class Retriever:
    def __init__(self, records: DocumentRecords, store: ChromaStore, embedder: Embedder):
        self._records = records
        self._store = store
        self._embedder = embedder

    def search(self, collection: str, query: str, k: int = 5, filters: Filters | None = None) -> list[ChunkHit]:
        """Blocking (embedding, SQLite, Chroma): call it from a worker thread in async code."""
        if not self._records.collection_exists(collection):
            raise CollectionNotFound(collection)
        filters = filters or Filters()
        embedding = self._embedder.embed([query])[0]
        return self._store.search(
            collection,
            embedding,
            k,
            exclude_documents=self._records.hidden_document_ids(collection),
            only_documents=filters.document_ids,
            metadata_equals=filters.metadata,
        )
