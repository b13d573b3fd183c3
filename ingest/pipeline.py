"""One document from stored file to stored chunks: parse, chunk, embed in batches, write."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ingest.chunking import Chunker
from ingest.detect import DocType
from ingest.parsers import parse
from ingest.ports import Chunk, ChunkStore, Embedder, MetadataValue
from ingest.records import DocumentRecord


class Cancelled(Exception):
    """The document was deleted, or the worker is stopping, while it was being ingested."""


@dataclass(frozen=True, slots=True)
class Plan:
    pages: int | None
    chunks: list[Chunk]


def chunk_id(document_id: str, index: int) -> str:
    # Deterministic ids: writing the same chunk twice overwrites it instead of duplicating it.
    return f"{document_id}-{index:06d}"


def chunk_metadata(record: DocumentRecord, chunk: Chunk) -> dict[str, MetadataValue]:
    metadata: dict[str, MetadataValue] = dict(record.metadata)  # the user's own metadata, flat scalars
    metadata.update(
        document_id=record.id,
        collection=record.collection,
        filename=record.filename,
        chunk_index=chunk.index,
        start=chunk.start,
        end=chunk.end,
    )
    if chunk.page is not None:
        metadata["page"] = chunk.page
        metadata["page_end"] = chunk.page_end or chunk.page
    return metadata


# Keys the pipeline writes into every chunk's metadata; user metadata may not use them.
RESERVED_METADATA_KEYS = frozenset(
    {"document_id", "collection", "filename", "chunk_index", "start", "end", "page", "page_end"}
)


class DocumentPipeline:
    def __init__(self, embedder: Embedder, store: ChunkStore, chunker: Chunker, write_batch_size: int):
        self._embedder = embedder
        self._store = store
        self._chunker = chunker
        self._batch = write_batch_size

    def plan(self, path: Path, doc_type: DocType) -> Plan:
        parsed = parse(path, doc_type)
        return Plan(pages=parsed.pages, chunks=self._chunker.split(parsed))

    def write(
        self,
        record: DocumentRecord,
        chunks: list[Chunk],
        *,
        write_guard: Callable[[], object],
        on_progress: Callable[[int], bool],
    ) -> None:
        """Embed and store ``chunks`` batch by batch.

        ``write_guard()`` is a context manager held around each store write; ``on_progress(n)`` records
        n chunks written and returns False when the document is no longer wanted (deleted, or the worker
        is stopping), which cancels the rest.
        """
        for begin in range(0, len(chunks), self._batch):
            batch = chunks[begin : begin + self._batch]
            embeddings = self._embedder.embed([chunk.text for chunk in batch])
            with write_guard():
                # Checked under the guard, so a delete that ran meanwhile is never undone by this write.
                if not on_progress(begin):
                    raise Cancelled(record.id)
                self._store.upsert(
                    record.collection,
                    ids=[chunk_id(record.id, chunk.index) for chunk in batch],
                    embeddings=embeddings,
                    texts=[chunk.text for chunk in batch],
                    metadatas=[chunk_metadata(record, chunk) for chunk in batch],
                )
                on_progress(begin + len(batch))
