"""The ChunkStore ingestion writes to: the vectors (Chroma) and the keyword index, written in the same calls, so
the two are always in step: chunks added on ingest, removed on delete."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ingest.ports import MetadataValue
from rag.ports import KeywordIndexWriter, VectorStore


class HybridChunkStore:
    """The ChunkStore ingestion writes to: Chroma for vectors and the keyword index, written together."""

    def __init__(self, vectors: VectorStore, keywords: KeywordIndexWriter):
        self.vectors = vectors
        self.keywords = keywords

    def upsert(
        self,
        collection: str,
        ids: Sequence[str],
        embeddings: np.ndarray,
        texts: Sequence[str],
        metadatas: Sequence[dict[str, MetadataValue]],
        search_texts: Sequence[str] | None = None,
    ) -> None:
        self.vectors.upsert(collection, ids, embeddings, texts, metadatas)
        self.keywords.upsert(collection, ids, search_texts or texts, [str(m["document_id"]) for m in metadatas])

    def upsert_document_vector(self, collection: str, document_id: str, vector: np.ndarray, chunks: int) -> None:
        self.vectors.upsert_document_vector(collection, document_id, vector, chunks)

    def delete_document(self, collection: str, document_id: str) -> None:
        self.vectors.delete_document(collection, document_id)
        self.keywords.delete_document(collection, document_id)

    def count_document_chunks(self, collection: str, document_id: str) -> int:
        return self.vectors.count_document_chunks(collection, document_id)

    def drop_collection(self, collection: str) -> None:
        self.vectors.drop_collection(collection)
        self.keywords.drop_collection(collection)
