"""The service's interfaces and the types that cross them, in one place: the use cases (rag/services/) and the
HTTP API depend on these, and the adapters (rag/components/: Chroma, the keyword indexes, the LLM clients, the
embedders) implement them. ingest/ports.py is the same for ingestion.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ingest.ports import MetadataValue

# --- the LLM ---------------------------------------------------------------------------------------------

Message = dict[str, str]


class LLMUnavailable(RuntimeError):
    """The LLM server cannot be reached (or is still starting)."""


class LLMTimeout(RuntimeError):
    pass


class LLMRejected(RuntimeError):
    """The LLM server refused the request (e.g. the prompt does not fit)."""


@dataclass(frozen=True, slots=True)
class ModelInfo:
    id: str
    max_model_len: int


@dataclass(slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def as_dict(self) -> dict[str, int]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
        }


@dataclass(slots=True)
class Completion:
    text: str
    finish_reason: str | None
    usage: Usage = field(default_factory=Usage)


@dataclass(frozen=True, slots=True)
class Delta:
    """One piece of a streamed answer; the last one carries the finish reason and usage."""

    text: str = ""
    finish_reason: str | None = None
    usage: Usage | None = None


@dataclass(frozen=True, slots=True)
class SamplingGuard:
    """Sampling parameters sent with every generation, against answers that repeat themselves until the
    length cap. ``repetition_penalty`` is vLLM's (1.0 = off; an extra body field for the openai client);
    ``frequency_penalty`` is OpenAI's. Stop tokens are the served model's own: vLLM reads them from the
    model's generation_config (``eos_token_id``, e.g. Phi-3's <|end|> and <|endoftext|>); ``stop`` adds
    strings for a model whose configuration lacks its end-of-turn token."""

    repetition_penalty: float = 1.0
    frequency_penalty: float = 0.0
    stop: tuple[str, ...] = ()

    def request_fields(self) -> dict[str, Any]:
        fields: dict[str, Any] = {}
        if self.frequency_penalty:
            fields["frequency_penalty"] = self.frequency_penalty
        if self.stop:
            fields["stop"] = list(self.stop)
        if self.repetition_penalty != 1.0:
            fields["extra_body"] = {"repetition_penalty": self.repetition_penalty}
        return fields


class LLMClient(Protocol):
    async def model_info(self) -> ModelInfo: ...

    @property
    def cached_info(self) -> ModelInfo | None:
        """The model's info if ``model_info`` has fetched it already (no request made)."""
        ...

    async def count_chat_tokens(self, messages: list[Message]) -> int: ...

    async def count_text_tokens(self, texts: list[str]) -> list[int]: ...

    async def complete(self, messages: list[Message], *, max_tokens: int, temperature: float) -> Completion: ...

    def stream(self, messages: list[Message], *, max_tokens: int, temperature: float) -> AsyncIterator[Delta]: ...

    async def ready(self) -> str: ...

    async def close(self) -> None: ...


# --- the stores ------------------------------------------------------------------------------------------


class EmbeddingModelMismatch(RuntimeError):
    """The collection's vectors come from another embedding model than the one this service embeds with:
    mixing them would make every score meaningless."""

    def __init__(self, collection: str, stored: str, configured: str):
        super().__init__(
            f"collection {collection!r} was embedded with {stored!r}, but this service embeds with {configured!r}"
            f" (RAG_EMBEDDING_MODEL): run `rag reindex {collection}` to embed its documents again from their kept"
            f" originals, or set RAG_EMBEDDING_MODEL={stored}"
        )


@dataclass(frozen=True, slots=True)
class ChunkHit:
    id: str
    text: str
    metadata: dict[str, Any]
    score: float  # cosine similarity, higher is closer


@dataclass(frozen=True, slots=True)
class DocumentHit:
    """A short document found by its own vector (its whole text's, or the mean of its chunks'): retrieval
    places it at its best chunk."""

    document_id: str
    chunks: int
    score: float  # cosine similarity of the document's vector


@dataclass(frozen=True, slots=True)
class KeywordHit:
    chunk_id: str
    document_id: str
    score: float  # BM25, higher is better


@dataclass(frozen=True, slots=True)
class WordFrequencies:
    """How many chunks of a collection hold each word of a query (as the keyword index stems it), and how many
    chunks the collection has: how rare each word is there."""

    counts: dict[str, int]
    chunks: int


class KeywordSearch(Protocol):
    """A keyword index as retrieval reads it (SQLite FTS5 in rag/components/keyword_sqlite.py, PostgreSQL in
    rag/components/keyword_postgres.py)."""

    def search(
        self,
        collection: str,
        query: str,
        k: int,
        *,
        exclude_documents: Sequence[str] = (),
        only_documents: Sequence[str] | None = None,
    ) -> list[KeywordHit]: ...

    def unknown_words(self, collection: str, query: str) -> list[str]: ...

    def word_frequencies(self, collection: str, query: str) -> WordFrequencies: ...


class KeywordIndexWriter(Protocol):
    """A keyword index as ingestion writes it, beside the vectors (rag/components/hybrid_store.py)."""

    def upsert(
        self, collection: str, ids: Sequence[str], texts: Sequence[str], document_ids: Sequence[str]
    ) -> None: ...

    def delete_document(self, collection: str, document_id: str) -> None: ...

    def drop_collection(self, collection: str) -> None: ...


class VectorStore(Protocol):
    """The chunks and their vectors (Chroma in rag/components/chroma_store.py): written by ingestion, read by
    retrieval and the document views. Scores are cosine similarities, higher is closer."""

    def upsert(
        self,
        collection: str,
        ids: Sequence[str],
        embeddings: np.ndarray,
        texts: Sequence[str],
        metadatas: Sequence[dict[str, MetadataValue]],
    ) -> None: ...

    def upsert_document_vector(self, collection: str, document_id: str, vector: np.ndarray, chunks: int) -> None: ...

    def delete_document(self, collection: str, document_id: str) -> None: ...

    def count_document_chunks(self, collection: str, document_id: str) -> int: ...

    def drop_collection(self, collection: str) -> None: ...

    def get_chunks(self, collection: str, ids: Sequence[str]) -> list[ChunkHit]:
        """The chunks with these ids, in the order asked (missing ones left out)."""
        ...

    def get_scored(
        self,
        collection: str,
        ids: Sequence[str],
        embedding: np.ndarray,
        *,
        metadata_equals: dict[str, MetadataValue] | None = None,
    ) -> list[ChunkHit]:
        """These chunks (those matching the filter), each scored against ``embedding``, in the order asked."""
        ...

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
        """The k chunks nearest to ``embedding``, best first, within the filters."""
        ...

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
        ...


# --- pages drawn ------------------------------------------------------------------------------------------


def page_etag(key: str, number: int, width: int) -> str:
    """The validator of a drawn page: known before drawing it (the file's content, the page, the width)."""
    return hashlib.sha256(f"{key}:{number}:{width}".encode()).hexdigest()[:32]


class PageNotFound(Exception):
    pass


@dataclass(frozen=True, slots=True)
class Box:
    """A rectangle on the page, as fractions of its width and height from the top left corner."""

    left: float
    top: float
    right: float
    bottom: float


class PageDrawer(Protocol):
    """A PDF's page drawn as a PNG, and where on it a quote lies (PDFium in rag/components/page_images.py)."""

    def page(self, path: Path, key: str, number: int, width: int) -> bytes: ...

    def boxes(self, path: Path, number: int, text: str) -> list[Box]: ...


# --- what answering reports ------------------------------------------------------------------------------


class AnsweringEvents(Protocol):
    """What answering reports as it goes (the server counts it for its metrics), as IngestEvents is for
    ingestion."""

    def retrieved(self, seconds: float) -> None: ...

    def first_token(self, seconds: float) -> None: ...

    def generated(self, seconds: float) -> None: ...

    def answered(self, outcome: str) -> None: ...


class NoAnsweringEvents:
    def retrieved(self, seconds: float) -> None:
        pass

    def first_token(self, seconds: float) -> None:
        pass

    def generated(self, seconds: float) -> None:
        pass

    def answered(self, outcome: str) -> None:
        pass
