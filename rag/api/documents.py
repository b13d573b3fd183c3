"""/v1/documents: upload, list, read, chunks, delete. Thin: the work is in IngestService and DocumentReader."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, Query, Response, UploadFile

from ingest.errors import DocumentError
from ingest.records import Status
from ingest.service import PreparedUpload, parse_metadata, validate_collection
from rag.api.deps import IngestDep, PrincipalDep, ReaderDep
from rag.api.errors import ApiError, status_for_document_error
from rag.api.schemas import ChunkList, ChunkOut, DocumentList, DocumentOut, FileError, UploadedDocument, UploadResponse

router = APIRouter(prefix="/v1/documents", tags=["documents"])


@router.post("", status_code=202, response_model=UploadResponse)
def upload_documents(
    ingest: IngestDep,
    principal: PrincipalDep,
    files: Annotated[list[UploadFile], File(description="One or more documents.")],
    collection: Annotated[str, Form()] = "default",
    metadata: Annotated[str | None, Form(description="A JSON object stored with every chunk.")] = None,
) -> UploadResponse:
    """Accept documents for ingestion and return at once; poll GET /v1/documents/{id} for progress.

    All files are checked before any is queued: one bad file refuses the request and stores nothing.
    """
    validate_collection(collection)
    principal.require(collection)
    user_metadata = parse_metadata(metadata)
    ingest.check_capacity(len(files))
    prepared: list[PreparedUpload] = []
    errors: list[tuple[int, FileError]] = []
    try:
        for upload in files:
            try:
                prepared.append(ingest.prepare(upload.file, upload.filename))
            except DocumentError as exc:
                errors.append(
                    (status_for_document_error(exc), FileError(filename=upload.filename or "", reason=str(exc)))
                )
        if errors:
            raise ApiError(
                errors[0][0],
                "; ".join(f"{error.filename}: {error.reason}" for _, error in errors),
                files=[error.model_dump() for _, error in errors],
            )
        committed = []
        while prepared:
            committed.append(ingest.commit(prepared.pop(0), collection, user_metadata))
    finally:
        for leftover in prepared:
            ingest.discard(leftover)
    return UploadResponse(
        documents=[
            UploadedDocument(
                id=item.record.id,
                filename=item.record.filename,
                collection=item.record.collection,
                status=item.record.status,
                sha256=item.record.sha256,
                duplicate=item.duplicate,
            )
            for item in committed
        ]
    )


@router.get("", response_model=DocumentList)
def list_documents(
    reader: ReaderDep,
    principal: PrincipalDep,
    collection: str | None = None,
    status: Status | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> DocumentList:
    if collection is not None:
        principal.require(collection)
    records, total = reader.list(
        collection=collection, status=status, limit=limit, offset=offset, within=principal.collections
    )
    return DocumentList(documents=[DocumentOut.of(record) for record in records], total=total)


@router.get("/{document_id}", response_model=DocumentOut)
def get_document(reader: ReaderDep, principal: PrincipalDep, document_id: str) -> DocumentOut:
    record = reader.get(document_id)
    principal.require(record.collection)
    return DocumentOut.of(record)


@router.get("/{document_id}/chunks", response_model=ChunkList)
def get_document_chunks(
    reader: ReaderDep,
    principal: PrincipalDep,
    document_id: str,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> ChunkList:
    principal.require(reader.get(document_id).collection)
    page = reader.chunks(document_id, limit=limit, offset=offset)
    return ChunkList(
        document_id=document_id,
        chunks=[ChunkOut.of(hit) for hit in page.chunks],
        total=page.total,
        limit=limit,
        offset=offset,
    )


@router.delete("/{document_id}", status_code=204, response_class=Response)
def delete_document(ingest: IngestDep, reader: ReaderDep, principal: PrincipalDep, document_id: str) -> Response:
    principal.require(reader.get(document_id).collection)
    if not ingest.delete(document_id):
        raise ApiError(404, f"no document with id {document_id!r}")
    return Response(status_code=204)
