"""Finding the chunks nearest to a query. Only documents whose every chunk is written are visible."""

from __future__ import annotations

from ingest.ports import Embedder
from ingest.records import DocumentRecords
from rag.store import ChromaStore, ChunkHit


class Retriever:
    def __init__(self, records: DocumentRecords, store: ChromaStore, embedder: Embedder):
        self._records = records
        self._store = store
        self._embedder = embedder

    def search(self, collection: str, query: str, k: int = 5) -> list[ChunkHit]:
        embedding = self._embedder.embed([query])[0]
        hidden = self._records.hidden_document_ids(collection)
        return self._store.search(collection, embedding, k, exclude_documents=hidden)
