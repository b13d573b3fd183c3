"""What ingestion needs from the outside world, as small interfaces.

`ingest` depends only on these; `rag` provides the implementations (sentence-transformers, Chroma), so the
dependency runs one way: rag -> ingest.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

MetadataValue = str | int | float | bool


@dataclass(frozen=True, slots=True)
class Chunk:
    """A piece of a document's text, sized to fit the embedder, with where it came from."""

    index: int
    text: str
    start: int  # character offsets into the document's extracted text
    end: int
    page: int | None = None  # 1-based, as a reader counts pages; None for formats without pages
    page_end: int | None = None
    context: str = ""  # where it sits: "title > section > subsection", embedded and indexed with the text
    ocr: bool = False  # read by OCR from a scanned page or an image (its text may hold misreadings)
    headings: str = ""  # the document's title and the section path, in full, whether embedded or not

    @property
    def searchable_text(self) -> str:
        """What is embedded: the text under its context (shown to people: the text)."""
        return f"{self.context}\n\n{self.text}" if self.context else self.text

    def keyword_text(self, heading_weight: int) -> str:
        """What is keyword-indexed: the text under its headings, written ``heading_weight`` times, so that each
        word of a title or heading counts that many times in BM25 (0: the searchable text alone)."""
        headings = self.headings or self.context
        if not headings or heading_weight <= 0:
            return self.searchable_text
        return "\n".join([headings] * heading_weight + [self.text])


class Embedder(Protocol):
    def count_tokens(self, text: str) -> int:
        """Tokens the model sees for ``text``, special tokens excluded."""
        ...

    @property
    def max_tokens(self) -> int:
        """Content tokens one text may have before the model truncates it (special tokens excluded)."""
        ...

    def embed(self, texts: Sequence[str]) -> np.ndarray: ...


class IngestEvents(Protocol):
    """What the worker reports as documents finish (the service counts them for its metrics)."""

    def document_ready(self, chunks: int) -> None: ...

    def document_failed(self) -> None: ...


class NoEvents:
    def document_ready(self, chunks: int) -> None:
        pass

    def document_failed(self) -> None:
        pass


class ChunkStore(Protocol):
    def upsert(
        self,
        collection: str,
        ids: Sequence[str],
        embeddings: np.ndarray,
        texts: Sequence[str],
        metadatas: Sequence[dict[str, MetadataValue]],
        search_texts: Sequence[str] | None = None,
    ) -> None:
        """``texts`` are stored and shown; ``search_texts`` (the texts with their context, by default the
        texts themselves) are what keyword search indexes."""
        ...

    def upsert_document_vector(self, collection: str, document_id: str, vector: np.ndarray, chunks: int) -> None:
        """One vector for a whole short document (the mean of its chunks' vectors), ranked by retrieval
        beside the chunks, after them. ``delete_document`` and ``drop_collection`` remove it with the chunks.
        A collection written before document vectors existed keeps none until it is re-indexed."""
        ...

    def delete_document(self, collection: str, document_id: str) -> None: ...

    def count_document_chunks(self, collection: str, document_id: str) -> int: ...

    def drop_collection(self, collection: str) -> None:
        """Remove every chunk of the collection (before it is embedded again)."""
        ...
