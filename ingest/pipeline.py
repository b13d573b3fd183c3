"""One document from stored file to stored chunks: parse, chunk, embed in batches, write."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path, PurePath

import numpy as np

from ingest.chunk_ids import chunk_id
from ingest.chunking import Chunker, document_text
from ingest.errors import DocumentError, StoreError
from ingest.parsing.detect import DocType
from ingest.parsing.limits import IngestLimits
from ingest.parsing.parse_pool import ParsePool
from ingest.parsing.parsers import PageCallback, parse
from ingest.ports import Chunk, ChunkStore, Embedder, MetadataValue
from ingest.storage.records import DocumentRecord


class Cancelled(Exception):
    """The document was deleted, or the worker is stopping, while it was being ingested."""


@dataclass(frozen=True, slots=True)
class Plan:
    pages: int | None
    chunks: list[Chunk]


def title_from_filename(filename: str) -> str:
    """A title for a document that has none of its own: its file name, without extension, numbering or
    separators ("fetchmail-faq-017.md" -> "fetchmail faq")."""
    stem = PurePath(filename).stem
    words = [word for word in re.split(r"[\s_.-]+", stem) if word and not word.isdigit()]
    return " ".join(words)


def mean_direction(vectors: np.ndarray) -> np.ndarray:
    """The unit vector along the mean of ``vectors``: a document's vector, from its chunks' (cosine
    similarity to it is the chunks' mean similarity, scaled by how much they agree)."""
    mean = np.asarray(vectors, dtype=np.float32).mean(axis=0)
    norm = float(np.linalg.norm(mean))
    return mean / norm if norm > 0 else mean


def _on_pages(chunk: Chunk, pages: frozenset[int]) -> bool:
    if chunk.page is None:
        return False
    return any(page in pages for page in range(chunk.page, (chunk.page_end or chunk.page) + 1))


def chunk_metadata(record: DocumentRecord, chunk: Chunk) -> dict[str, MetadataValue]:
    metadata: dict[str, MetadataValue] = dict(record.metadata)  # the user's own metadata, flat scalars
    metadata.update(
        document_id=record.key,  # the version's storage key: the store hides and deletes versions by it
        collection=record.collection,
        filename=record.filename,
        chunk_index=chunk.index,
        start=chunk.start,
        end=chunk.end,
    )
    if chunk.context:
        metadata["context"] = chunk.context
    if chunk.page is not None:
        metadata["page"] = chunk.page
        metadata["page_end"] = chunk.page_end or chunk.page
    if chunk.ocr:
        metadata["ocr"] = True
    return metadata


class DocumentPipeline:
    def __init__(
        self,
        embedder: Embedder,
        store: ChunkStore,
        chunker: Chunker,
        write_batch_size: int,
        limits: IngestLimits | None = None,
        parse_pool: ParsePool | None = None,
        document_vector_max_chunks: int = 0,
        whole_document_vectors: bool = True,
        heading_weight: int = 0,
    ):
        self._embedder = embedder
        # A document of at most this many chunks also gets one vector of its own: it is written in one batch,
        # whatever the batch size, so that its every chunk vector is at hand. The vector is its whole text's
        # when that fits the embedder's window (``whole_document_vectors``), else the mean of its chunks'.
        self._document_vector_max_chunks = document_vector_max_chunks
        self._whole_document_vectors = whole_document_vectors
        self._heading_weight = heading_weight  # see Chunk.keyword_text
        # Processes to parse in, where parsing is the limit (a GPU embeds faster than one core parses);
        # None: parse in the calling thread, reporting pages as they are read.
        self._parse_pool = parse_pool
        self._store = store
        self._chunker = chunker
        self.batch_size = write_batch_size
        self._limits = limits or IngestLimits()

    def plan(
        self, path: Path, doc_type: DocType, filename: str | None = None, on_page: PageCallback | None = None
    ) -> Plan:
        if self._parse_pool is not None:
            parsed = self._parse_pool.parse(path, doc_type, self._limits, on_page)
        else:
            parsed = parse(path, doc_type, self._limits, on_page)
        chunks = self._chunker.split(parsed, fallback_title=title_from_filename(filename) if filename else None)
        if parsed.ocr_pages:
            chunks = [
                dataclasses.replace(chunk, ocr=True) if _on_pages(chunk, parsed.ocr_pages) else chunk
                for chunk in chunks
            ]
        if len(chunks) > self._limits.max_document_chunks:
            raise DocumentError(
                f"the document makes {len(chunks):,} chunks; at most {self._limits.max_document_chunks:,} are"
                " stored for one document (RAG_MAX_DOCUMENT_CHUNKS): split it into smaller files"
            )
        return Plan(pages=parsed.pages, chunks=chunks)

    def write_batch(
        self,
        record: DocumentRecord,
        chunks: list[Chunk],
        begin: int,
        *,
        write_guard: Callable[[], AbstractContextManager[object]],
        on_progress: Callable[[int], bool],
    ) -> int:
        """Embed and store the batch of ``chunks`` that starts at ``begin`` (a short document whole, with its
        document vector); returns where the next one starts.

        ``write_guard()`` is a context manager held around the store write; ``on_progress(n)`` records n
        chunks written and returns False when the document is no longer wanted (deleted, or the worker is
        stopping), which cancels it. A store failure raises StoreError with what to do about it.
        """
        whole = begin == 0 and len(chunks) <= self._document_vector_max_chunks
        batch = chunks if whole else chunks[begin : begin + self.batch_size]
        embeddings = self._embedder.embed([chunk.searchable_text for chunk in batch])
        document_vector = self.document_vector(batch, embeddings) if whole and batch else None
        with write_guard():
            # Checked under the guard, so a delete that ran meanwhile is never undone by this write.
            if not on_progress(begin):
                raise Cancelled(record.id)
            try:
                self._store.upsert(
                    record.collection,
                    ids=[chunk_id(record.key, chunk.index) for chunk in batch],
                    embeddings=embeddings,
                    texts=[chunk.text for chunk in batch],
                    metadatas=[chunk_metadata(record, chunk) for chunk in batch],
                    search_texts=[chunk.keyword_text(self._heading_weight) for chunk in batch],
                )
                if document_vector is not None:
                    self._store.upsert_document_vector(
                        record.collection, record.key, document_vector, chunks=len(batch)
                    )
            except Exception as exc:
                raise StoreError(
                    f"the store refused this document's chunks ({type(exc).__name__}: {exc}); nothing of it is"
                    " kept: check the vector store, then upload the file again"
                ) from exc
            on_progress(begin + len(batch))
        return begin + len(batch)

    def document_vector(self, chunks: list[Chunk], embeddings: np.ndarray) -> np.ndarray:
        """A short document's own vector: its whole text's, where that fits the embedder's window (one chunk's
        vector is that already), else the mean of its chunks' vectors."""
        if self._whole_document_vectors and len(chunks) > 1:
            text = document_text(chunks)
            if self._embedder.count_tokens(text) <= self._embedder.max_tokens:
                return self._embedder.embed([text])[0]
        return mean_direction(embeddings)

    def write(
        self,
        record: DocumentRecord,
        chunks: list[Chunk],
        *,
        write_guard: Callable[[], AbstractContextManager[object]],
        on_progress: Callable[[int], bool],
    ) -> None:
        """Every batch of ``chunks``, in order (see write_batch)."""
        begin = 0
        while begin < len(chunks):
            begin = self.write_batch(record, chunks, begin, write_guard=write_guard, on_progress=on_progress)
