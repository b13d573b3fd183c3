"""The service's interfaces and the types that cross them, in one place: the use cases (retrieval,
prompting, answering) and the HTTP API depend on these, and the adapters (Chroma in store.py, the keyword
indexes, the LLM client in llm.py, the embedders) implement them. ingest/ports.py is the same for ingestion.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

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


class LLMClient(Protocol):
    async def model_info(self) -> ModelInfo: ...

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
    """A short document found by its own vector (the mean of its chunks'): retrieval places it at its best
    chunk."""

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
    """A keyword index as retrieval reads it (SQLite FTS5 in rag/keyword.py, PostgreSQL in
    rag/keyword_postgres.py)."""

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
