"""The HTTP API's request and response shapes; library types never leak into them."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, Field

from ingest.records import DocumentRecord, Status
from rag.retrieval import Filters
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


# --- retrieval and answers -----------------------------------------------------------------------------

MetadataFilterValue = str | int | float | bool


class FiltersIn(BaseModel):
    document_ids: list[str] | None = Field(default=None, description="Only chunks of these documents.")
    metadata: dict[str, MetadataFilterValue] = Field(
        default_factory=dict, description="Only chunks whose metadata (given at upload) equals these values."
    )

    def to_filters(self) -> Filters:
        return Filters(document_ids=self.document_ids, metadata=dict(self.metadata))


def _not_blank(text: str) -> str:
    if not text.strip():
        raise ValueError("must not be empty")
    return text.strip()


NonBlank = Annotated[str, Field(min_length=1, max_length=20_000), AfterValidator(_not_blank)]
TopK = Annotated[int, Field(ge=1, le=50)]


class RetrieveRequest(BaseModel):
    query: NonBlank
    collection: str = "default"
    top_k: TopK = 5
    filters: FiltersIn = Field(default_factory=FiltersIn)


class RetrievedChunk(BaseModel):
    id: str
    text: str
    score: float
    document_id: str
    filename: str
    page: int | None
    chunk_index: int

    @classmethod
    def of(cls, hit: ChunkHit) -> RetrievedChunk:
        meta = hit.metadata
        return cls(
            id=hit.id,
            text=hit.text,
            score=round(hit.score, 4),
            document_id=meta["document_id"],
            filename=meta["filename"],
            page=meta.get("page"),
            chunk_index=meta["chunk_index"],
        )


class RetrieveResponse(BaseModel):
    chunks: list[RetrievedChunk]


class QueryRequest(BaseModel):
    question: NonBlank
    collection: str = "default"
    top_k: TopK | None = None
    filters: FiltersIn = Field(default_factory=FiltersIn)
    stream: bool = False
    max_tokens: Annotated[int, Field(ge=1)] | None = None
    temperature: Annotated[float, Field(ge=0, le=2)] | None = None


class CitationOut(BaseModel):
    n: int
    document_id: str
    filename: str
    page: int | None
    text: str
    score: float


class QueryResponse(BaseModel):
    answer: str
    citations: list[CitationOut]
    model: str
    usage: dict[str, int]
    abstained: bool
    finish_reason: str | None
    timings: dict[str, float]
