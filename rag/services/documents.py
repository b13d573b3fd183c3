"""Reading documents and their chunks, for the API and the CLI. No HTTP here."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from ingest.chunk_ids import chunk_id, document_of
from ingest.parsing.detect import DocType
from ingest.storage.files import FileStore
from ingest.storage.records import DocumentRecord, DocumentRecords, Status
from rag.ports import Box, ChunkHit, PageDrawer, PageNotFound, VectorStore, page_etag


class DocumentNotFound(LookupError):
    pass


@dataclass(frozen=True, slots=True)
class ChunkPage:
    document: DocumentRecord
    chunks: list[ChunkHit]
    total: int


class DocumentReader:
    def __init__(
        self,
        records: DocumentRecords,
        store: VectorStore,
        files: FileStore | None = None,
        page_images: PageDrawer | None = None,
    ):
        self._records = records
        self._store = store
        self._files = files
        self._page_images = page_images

    def get(
        self, document_id: str, *, within: frozenset[str] | None = None, being_deleted: bool = False
    ) -> DocumentRecord:
        """The document; DocumentNotFound also when it is outside the collections ``within`` (a scoped key
        learns nothing of documents it may not see, not even that they exist). ``being_deleted``: one being
        deleted is found too."""
        record = self._records.get(document_id, being_deleted=being_deleted)
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

    def next_versions(self, records: list[DocumentRecord]) -> dict[str, DocumentRecord]:
        """The new version being ingested (or failed) of each of these documents that has one, by id."""
        return self._records.pending_versions([record.id for record in records])

    def collections(self, *, within: frozenset[str] | None = None) -> list[tuple[str, int]]:
        """Each collection (within those named, if any) and how many documents it holds."""
        names = [name for name in self._records.collections() if within is None or name in within]
        counted = [(name, self._records.list(collection=name, limit=1)[1]) for name in names]
        return [(name, count) for name, count in counted if count]  # not those whose last document is going

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
        ids = [chunk_id(record.key, index) for index in range(offset, min(offset + limit, total))]
        return ChunkPage(record, public_hits(self._store.get_chunks(record.collection, ids)), total)

    def page_image(
        self,
        document_id: str,
        number: int,
        *,
        width: int,
        within: frozenset[str] | None = None,
        unless: str | None = None,
    ) -> tuple[str, bytes | None]:
        """Page ``number`` (from 1) of a PDF document, drawn ``width`` pixels wide as a PNG, with its ETag. The ETag is
        known before drawing: when it is ``unless`` (the one the caller has), nothing is drawn (None)."""
        record, path = self._pdf(document_id, within)
        etag = page_etag(record.sha256, number, width)
        if etag == unless:
            return etag, None
        return etag, self._page_images.page(path, record.sha256, number, width)

    def page_boxes(
        self, document_id: str, number: int, text: str, *, within: frozenset[str] | None = None
    ) -> list[Box]:
        """Where ``text`` (a citation's quote) lies on page ``number`` of a PDF document."""
        _, path = self._pdf(document_id, within)
        return self._page_images.boxes(path, number, text)

    def _pdf(self, document_id: str, within: frozenset[str] | None) -> tuple[DocumentRecord, Path]:
        if self._files is None or self._page_images is None:
            raise RuntimeError("this reader was built without the files and page images")
        record = self.get(document_id, within=within)
        if record.content_type != DocType.PDF:
            raise PageNotFound(f"{record.filename} is not a PDF: it has no pages to draw")
        path = self._files.path(record.key)
        if not path.exists():  # (a document being deleted is already not found by get)
            raise DocumentNotFound(document_id)
        return record, path


def public_hits(hits: list[ChunkHit]) -> list[ChunkHit]:
    """Chunks as users see them: the store names a version's storage key as ``document_id``
    (ingest/chunk_ids.py); callers get the document's id."""
    return [
        dataclasses.replace(hit, metadata={**hit.metadata, "document_id": document_of(key)})
        if isinstance(key := hit.metadata.get("document_id"), str) and key != document_of(key)
        else hit
        for hit in hits
    ]


def joined_text(chunks: list[ChunkHit]) -> str:
    """A document's text again, from its chunks in reading order: each chunk's offsets (``start``, ``end``)
    say where it lies, so the overlap between neighbours is written once. A gap (the separator between two
    sections, which no chunk holds) becomes a blank line."""
    parts: list[str] = []
    written = 0
    for chunk in chunks:
        start, end = chunk.metadata.get("start"), chunk.metadata.get("end")
        if start is None or end is None:  # stored before offsets existed: no overlap to remove
            parts.append(chunk.text if not parts else "\n\n" + chunk.text)
            continue
        if start > written and parts:
            parts.append("\n\n")
        skip = max(0, written - start)
        parts.append(chunk.text[skip:])
        written = max(written, end)
    return "".join(parts)


class WholeDocuments:
    """The documents a question is scoped to, whole, when there are few enough of them to try."""

    def __init__(self, records: DocumentRecords, store: VectorStore, *, max_documents: int):
        self._records = records
        self._store = store
        self._max_documents = max_documents

    def in_scope(self, collection: str, document_ids: list[str] | None, max_chunks: int) -> list[DocumentRecord] | None:
        """The ready documents the question may draw on (those named, or the whole collection), or None when
        there are more than RAG_WHOLE_DOCUMENTS_MAX_DOCUMENTS, or more chunks than could ever fit."""
        if document_ids is not None:
            if len(document_ids) > self._max_documents:
                return None
            found = [self._records.get(document_id) for document_id in document_ids]
            records = [r for r in found if r is not None and r.collection == collection and r.status is Status.READY]
        else:
            records, total = self._records.list(
                collection=collection, status=Status.READY, limit=self._max_documents + 1
            )
            if total > self._max_documents:
                return None
        if not records or sum(r.chunks or 0 for r in records) > max_chunks:
            return None
        return records

    def text(self, record: DocumentRecord) -> str:
        ids = [chunk_id(record.key, index) for index in range(record.chunks or 0)]
        return joined_text(self._store.get_chunks(record.collection, ids))
