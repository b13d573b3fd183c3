"""The HTTP API's request and response shapes; library types never leak into them."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from ingest.records import DocumentRecord, Status
from rag.store import ChunkHit


class UploadedDocument(BaseModel):
    id: str
    filename: str
    collection: str
    status: Status
    sha256: str
    duplicate: bool


class UploadResponse(BaseModel):
    documents: list[UploadedDocument]


class DocumentOut(BaseModel):
    id: str
    filename: str
    collection: str
    status: Status
    error: str | None
    content_type: str
    bytes: int
    sha256: str
    pages: int | None
    chunks: int | None
    progress: float
    metadata: dict[str, Any]
    created_at: str
    updated_at: str

    @classmethod
    def of(cls, record: DocumentRecord) -> DocumentOut:
        return cls(
            id=record.id,
            filename=record.filename,
            collection=record.collection,
            status=record.status,
            error=record.error,
            content_type=record.content_type,
            bytes=record.bytes,
            sha256=record.sha256,
            pages=record.pages,
            chunks=record.chunks,
            progress=record.progress,
            metadata=record.metadata,
            created_at=record.created_at,
            updated_at=record.updated_at,
        )


class DocumentList(BaseModel):
    documents: list[DocumentOut]
    total: int


class ChunkOut(BaseModel):
    id: str
    text: str
    chunk_index: int
    page: int | None
    page_end: int | None
    start: int
    end: int
    metadata: dict[str, Any]

    @classmethod
    def of(cls, hit: ChunkHit) -> ChunkOut:
        meta = hit.metadata
        return cls(
            id=hit.id,
            text=hit.text,
            chunk_index=meta["chunk_index"],
            page=meta.get("page"),
            page_end=meta.get("page_end"),
            start=meta["start"],
            end=meta["end"],
            metadata=meta,
        )


class ChunkList(BaseModel):
    document_id: str
    chunks: list[ChunkOut]
    total: int
    limit: int
    offset: int


class FileError(BaseModel):
    filename: str
    reason: str
