"""Chunks in Chroma: one Chroma collection per user collection, our own embeddings always passed in.

One Chroma collection per user collection (rather than one with a metadata filter) keeps queries fast:
a ``where`` filter costs Chroma 20-470 ms at 10k-100k chunks, an unfiltered query ~5 ms. Beside it, a
second one (``rag-NAME.documents``; a user's collection name never holds a dot) keeps one vector per short
document, the mean of its chunks' (docs/retrieval.md, "Retrieval quality").
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlparse

import numpy as np

from ingest.ports import MetadataValue
from rag.components.embedding.packaged_models import MINILM
from rag.ports import ChunkHit, DocumentHit, EmbeddingModelMismatch
from rag.settings import PACKAGED_EMBEDDING_MODEL, StorageConfig

log = logging.getLogger(__name__)

CHROMA_PREFIX = "rag-"
DOCUMENTS_SUFFIX = ".documents"
# Chroma's limit on one add is ~5,461 records; stay well under it.
MAX_WRITE_BATCH = 4096


def chroma_where(
    exclude_documents: Sequence[str] = (),
    only_documents: Sequence[str] | None = None,
    metadata_equals: dict[str, MetadataValue] | None = None,
) -> dict[str, Any] | None:
    """Chroma's ``where`` for these filters; None without any (an unfiltered query is the fast one)."""
    conditions: list[dict[str, Any]] = []
    if exclude_documents:
        conditions.append({"document_id": {"$nin": list(exclude_documents)}})
    if only_documents is not None:
        conditions.append({"document_id": {"$in": list(only_documents)}})
    conditions.extend({key: {"$eq": value}} for key, value in (metadata_equals or {}).items())
    return None if not conditions else conditions[0] if len(conditions) == 1 else {"$and": conditions}


def nearest(target, embedding: np.ndarray, k: int, where: dict[str, Any] | None, include: list[str]) -> dict:
    """One query of a Chroma collection: the k records nearest to ``embedding``."""
    return target.query(
        query_embeddings=[np.asarray(embedding, dtype=np.float32)], n_results=k, where=where, include=include
    )


def chroma_client(storage: StorageConfig):
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    chroma_settings = ChromaSettings(anonymized_telemetry=False, allow_reset=False)
    if storage.chroma_url:
        url = urlparse(storage.chroma_url)
        return chromadb.HttpClient(
            host=url.hostname or "127.0.0.1",
            port=url.port or (443 if url.scheme == "https" else 8000),
            ssl=url.scheme == "https",
            settings=chroma_settings,
        )
    storage.chroma_path.mkdir(parents=True, exist_ok=True)
    return chromadb.PersistentClient(path=str(storage.chroma_path), settings=chroma_settings)


class ChromaStore:
    def __init__(self, client, *, ef_search: int = 100, embedding_model: str = PACKAGED_EMBEDDING_MODEL):
        self._client = client
        self._ef_search = ef_search
        self._embedding_model = embedding_model
        self._collections: dict[str, Any] = {}

    @classmethod
    def from_config(cls, storage: StorageConfig, embedding_model: str) -> ChromaStore:
        return cls(chroma_client(storage), ef_search=storage.chroma_hnsw_ef_search, embedding_model=embedding_model)

    def heartbeat(self) -> None:
        self._client.heartbeat()

    def _collection(self, name: str, *, create: bool):
        """The Chroma collection of the user collection's chunks (None if it has none and ``create`` is off)."""
        found = self._open(name, "", create=False)
        if found is None and create:
            # A new collection gets its document vectors' collection with it. One written before document
            # vectors existed gets none (not even for new uploads) until `rag reindex` drops and rewrites it:
            # vectors for some documents only would give those an extra vote in the fusion.
            self._open(name, DOCUMENTS_SUFFIX, create=True)
            found = self._open(name, "", create=True)
        return found

    def _documents(self, name: str):
        """The Chroma collection of the user collection's document vectors; None for a collection written
        before document vectors existed (until `rag reindex`)."""
        return self._open(name, DOCUMENTS_SUFFIX, create=False)

    def _open(self, name: str, suffix: str, *, create: bool):
        chroma_name = CHROMA_PREFIX + name + suffix
        cached = self._collections.get(chroma_name)
        if cached is not None:
            return cached
        from chromadb.errors import NotFoundError

        if create:
            collection = self._client.get_or_create_collection(
                chroma_name,
                embedding_function=None,  # we embed; Chroma's default would try to download a model
                configuration={"hnsw": {"space": "cosine", "ef_search": self._ef_search}},
                metadata={"embedding_model": self._embedding_model},  # kept from the first creation on
            )
        else:
            try:
                collection = self._client.get_collection(chroma_name, embedding_function=None)
            except NotFoundError:  # only that: a store that cannot be reached is an error, not "no collection"
                return None
        # Collections from before the model was recorded were all embedded with all-MiniLM-L6-v2.
        stored = (collection.metadata or {}).get("embedding_model", MINILM)
        if stored != self._embedding_model:
            raise EmbeddingModelMismatch(name, stored, self._embedding_model)
        self._collections[chroma_name] = collection
        return collection

    def drop_collection(self, name: str) -> None:
        """Remove a collection's vectors, all of them (to embed it again: `rag reindex`)."""
        from chromadb.errors import NotFoundError

        for suffix in ("", DOCUMENTS_SUFFIX):
            self._collections.pop(CHROMA_PREFIX + name + suffix, None)
            with contextlib.suppress(NotFoundError):
                self._client.delete_collection(CHROMA_PREFIX + name + suffix)

    def upsert(
        self,
        collection: str,
        ids: Sequence[str],
        embeddings: np.ndarray,
        texts: Sequence[str],
        metadatas: Sequence[dict[str, MetadataValue]],
    ) -> None:
        target = self._collection(collection, create=True)
        for begin in range(0, len(ids), MAX_WRITE_BATCH):
            end = begin + MAX_WRITE_BATCH
            target.upsert(
                ids=list(ids[begin:end]),
                embeddings=embeddings[begin:end],
                documents=list(texts[begin:end]),
                metadatas=list(metadatas[begin:end]),
            )

    def upsert_document_vector(self, collection: str, document_id: str, vector: np.ndarray, chunks: int) -> None:
        target = self._documents(collection)
        if target is not None:  # None: a collection from before document vectors (see _collection)
            target.upsert(
                ids=[document_id],
                embeddings=np.asarray([vector], dtype=np.float32),
                metadatas=[{"document_id": document_id, "chunks": chunks}],
            )

    def delete_document(self, collection: str, document_id: str) -> None:
        target = self._collection(collection, create=False)
        if target is not None:
            target.delete(where={"document_id": document_id})
        documents = self._documents(collection)
        if documents is not None:
            documents.delete(ids=[document_id])

    def count_document_chunks(self, collection: str, document_id: str) -> int:
        target = self._collection(collection, create=False)
        if target is None:
            return 0
        return len(target.get(where={"document_id": document_id}, include=[])["ids"])

    def get_chunks(self, collection: str, ids: Sequence[str]) -> list[ChunkHit]:
        """The chunks with these ids, in the order asked (missing ones left out)."""
        target = self._collection(collection, create=False)
        if target is None or not ids:
            return []
        found = target.get(ids=list(ids), include=["documents", "metadatas"])
        by_id = {
            chunk_id: ChunkHit(chunk_id, text, dict(metadata or {}), 1.0)
            for chunk_id, text, metadata in zip(found["ids"], found["documents"], found["metadatas"], strict=True)
        }
        return [by_id[chunk_id] for chunk_id in ids if chunk_id in by_id]

    def get_scored(
        self,
        collection: str,
        ids: Sequence[str],
        embedding: np.ndarray,
        *,
        metadata_equals: dict[str, MetadataValue] | None = None,
    ) -> list[ChunkHit]:
        """These chunks (those matching the metadata filter), each scored by cosine similarity to
        ``embedding``, in the order asked: keyword hits get the same kind of score as vector hits."""
        target = self._collection(collection, create=False)
        if target is None or not ids:
            return []
        where = chroma_where(metadata_equals=metadata_equals)
        found = target.get(ids=list(ids), where=where, include=["documents", "metadatas", "embeddings"])
        if not found["ids"]:
            return []
        scores = np.asarray(found["embeddings"], dtype=np.float32) @ np.asarray(embedding, dtype=np.float32)
        by_id = {
            chunk_id: ChunkHit(chunk_id, text, dict(metadata or {}), float(score))
            for chunk_id, text, metadata, score in zip(
                found["ids"], found["documents"], found["metadatas"], scores, strict=True
            )
        }
        return [by_id[chunk_id] for chunk_id in ids if chunk_id in by_id]

    def search(
        self,
        collection: str,
        embedding: np.ndarray,
        k: int,
        *,
        exclude_documents: Sequence[str] = (),
        only_documents: Sequence[str] | None = None,
        metadata_equals: dict[str, MetadataValue] | None = None,
    ) -> list[ChunkHit]:
        """The k chunks nearest to ``embedding``, best first, within the given filters.

        ``exclude_documents`` are documents not yet complete: a filter is only paid for while there are any.
        """
        target = self._collection(collection, create=False)
        if target is None:
            return []
        where = chroma_where(exclude_documents, only_documents, metadata_equals)
        result = nearest(target, embedding, k, where, ["documents", "metadatas", "distances"])
        return [
            ChunkHit(chunk_id, text, dict(metadata or {}), 1.0 - float(distance))
            for chunk_id, text, metadata, distance in zip(
                result["ids"][0], result["documents"][0], result["metadatas"][0], result["distances"][0], strict=True
            )
        ]

    def search_documents(
        self,
        collection: str,
        embedding: np.ndarray,
        k: int,
        *,
        exclude_documents: Sequence[str] = (),
        only_documents: Sequence[str] | None = None,
    ) -> list[DocumentHit]:
        """The k short documents whose own vectors are nearest to ``embedding``, best first."""
        target = self._documents(collection)
        if target is None:
            return []
        result = nearest(
            target, embedding, k, chroma_where(exclude_documents, only_documents), ["metadatas", "distances"]
        )
        return [
            DocumentHit(document_id, int((metadata or {}).get("chunks", 1)), 1.0 - float(distance))
            for document_id, metadata, distance in zip(
                result["ids"][0], result["metadatas"][0], result["distances"][0], strict=True
            )
        ]
