"""/v1/documents: upload, list, read, chunks, delete. Thin: the work is in IngestService and DocumentReader."""

from __future__ import annotations

import dataclasses
from typing import Annotated, Literal

from fastapi import APIRouter, File, Form, Header, Path, Query, Response, UploadFile
from fastapi.exceptions import RequestValidationError

from ingest.errors import DocumentError
from ingest.metadata import parse_metadata
from ingest.service import PreparedUpload
from ingest.storage.records import Status
from rag.server.api.deps import IngestDep, PrincipalDep, ReaderDep, SettingsDep
from rag.server.api.errors import ApiError, error_responses, status_for_document_error
from rag.server.api.schemas import (
    MAX_OFFSET,
    BoxOut,
    ChunkList,
    ChunkOut,
    CollectionName,
    DocumentList,
    DocumentOut,
    FileError,
    PageBoxes,
    UploadedDocument,
    UploadResponse,
)
from rag.server.api.validation import invalid, validation_detail
from rag.server.auth import Role
from rag.services.documents import DocumentNotFound

router = APIRouter(prefix="/v1/documents", tags=["documents"])

UPLOAD_OPERATION = "upload_documents"


@router.post(
    "",
    status_code=202,
    response_model=UploadResponse,
    operation_id=UPLOAD_OPERATION,
    responses=error_responses(400, 401, 403, 409, 413, 415, 422, 429, 503),
)
def upload_documents(
    ingest: IngestDep,
    principal: PrincipalDep,
    files: Annotated[list[UploadFile], File(min_length=1, description="One or more documents.")],
    collection: Annotated[CollectionName, Form()] = "default",
    metadata: Annotated[
        str | None,
        Form(description="A JSON object of strings, numbers and booleans, stored with the document and its chunks."),
    ] = None,
    source: Annotated[
        str | None,
        Form(
            max_length=1024,
            description="The name the document keeps across versions (one file only); empty or absent: its file name.",
        ),
    ] = None,
    replace: Annotated[
        Literal["true", "false"],
        Form(
            description="When the collection holds a document of the same source with other content, this file"
            " becomes its next version: ingested beside it, and swapped in atomically when ready (the document"
            " keeps its id). If the new version fails, the old one stays and the failure shows on the document."
        ),
    ] = "false",
) -> UploadResponse:
    """Accept documents for ingestion and return at once; poll GET /v1/documents/{id} for progress.

    All files are checked before any is queued: one bad file refuses the request and stores nothing.
    """
    principal.require(collection, Role.WRITE)
    user_metadata = parse_metadata(metadata, ingest.limits)
    ingest.check_batch(len(files))
    prepared: list[PreparedUpload] = []
    errors: list[tuple[int, int, FileError]] = []
    try:
        for index, upload in enumerate(files):
            try:
                prepared.append(ingest.prepare(upload.file, upload.filename))
            except DocumentError as exc:
                error = FileError(filename=upload.filename or "", reason=str(exc))
                errors.append((index, status_for_document_error(exc), error))
        if errors:
            _refuse(errors)
        committed = ingest.commit(
            prepared, collection, user_metadata, source=source, replace=replace == "true", actor=principal.key_id
        )
        prepared = []
    finally:
        for leftover in prepared:
            ingest.discard(leftover)
    return UploadResponse(documents=[UploadedDocument.of(item.record, item.duplicate) for item in committed])


def _refuse(errors: list[tuple[int, int, FileError]]) -> None:
    """Refuse the whole upload, naming every bad file, with the status of the first one."""
    status_code = errors[0][1]
    if status_code == 422:
        raise RequestValidationError(
            [
                detail
                for index, _, e in errors
                for detail in validation_detail(f"{e.filename}: {e.reason}", ("body", "files", index))
            ]
        )
    raise ApiError(
        status_code,
        "; ".join(f"{error.filename}: {error.reason}" for _, _, error in errors),
        files=[error.model_dump() for _, _, error in errors],
    )


@router.get("", response_model=DocumentList, responses=error_responses(401, 403, 422))
def list_documents(
    reader: ReaderDep,
    principal: PrincipalDep,
    collection: str | None = None,
    status: Status | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> DocumentList:
    if collection is not None:
        principal.require(collection)
    records, total = reader.list(
        collection=collection, status=status, limit=limit, offset=offset, within=principal.collections
    )
    next_versions = reader.next_versions(records)
    return DocumentList(
        documents=[DocumentOut.of(record, next_versions.get(record.id)) for record in records], total=total
    )


@router.get("/{document_id}", response_model=DocumentOut, responses=error_responses(401, 404))
def get_document(reader: ReaderDep, principal: PrincipalDep, document_id: str) -> DocumentOut:
    record = reader.get(document_id, within=principal.collections)
    return DocumentOut.of(record, reader.next_versions([record]).get(record.id))


@router.get("/{document_id}/chunks", response_model=ChunkList, responses=error_responses(401, 404, 422, 503))
def get_document_chunks(
    reader: ReaderDep,
    principal: PrincipalDep,
    document_id: str,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> ChunkList:
    page = reader.chunks(document_id, limit=limit, offset=offset, within=principal.collections)
    return ChunkList(
        document_id=document_id,
        chunks=[ChunkOut.of(hit) for hit in page.chunks],
        total=page.total,
        limit=limit,
        offset=offset,
    )


@router.get(
    "/{document_id}/pages/{number}.png",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}, "description": "The page as a PNG."}}
    | error_responses(401, 404, 422),
)
def get_page_image(
    reader: ReaderDep,
    principal: PrincipalDep,
    settings: SettingsDep,
    document_id: str,
    number: Annotated[int, Path(ge=1, le=1_000_000, description="The page, from 1 (a citation's `page`).")],
    width: Annotated[int | None, Query(ge=100, le=4000, description="Pixels (RAG_PAGE_IMAGE_WIDTH).")] = None,
    if_none_match: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> Response:
    """Page ``number`` of a PDF document, drawn as a PNG: to show a person the page an answer cites."""
    if width is not None and width > settings.server.page_image_max_width:
        raise invalid(
            f"at most {settings.server.page_image_max_width} pixels wide (RAG_PAGE_IMAGE_MAX_WIDTH)",
            ("query", "width"),
            "less_than_equal",
        )
    etag, png = reader.page_image(
        document_id,
        number,
        width=width or settings.server.page_image_width,
        within=principal.collections,
        unless=(if_none_match or "").strip('"') or None,
    )
    # The image of a page never changes for a given file; a browser may keep it (per key: Vary).
    headers = {"ETag": f'"{etag}"', "Cache-Control": "private, max-age=86400", "Vary": "Authorization"}
    if png is None:
        return Response(status_code=304, headers=headers)
    return Response(png, media_type="image/png", headers=headers)


@router.get("/{document_id}/pages/{number}/boxes", response_model=PageBoxes, responses=error_responses(401, 404, 422))
def get_page_boxes(
    reader: ReaderDep,
    principal: PrincipalDep,
    document_id: str,
    number: Annotated[int, Path(ge=1, le=1_000_000, description="The page, from 1.")],
    text: Annotated[str, Query(min_length=1, max_length=4000, description="The text to find: a citation's quote.")],
) -> PageBoxes:
    """Where the text lies on the page, one box per line, to highlight on the drawn page; no boxes when
    it is not found there."""
    boxes = reader.page_boxes(document_id, number, text, within=principal.collections)
    return PageBoxes(page=number, boxes=[BoxOut(**dataclasses.asdict(box)) for box in boxes])


@router.delete(
    "/{document_id}", status_code=204, response_class=Response, responses=error_responses(401, 403, 404, 503)
)
def delete_document(ingest: IngestDep, reader: ReaderDep, principal: PrincipalDep, document_id: str) -> Response:
    """Remove the document, with its chunks, vectors, keyword entries, original, and any new version of it."""
    # A key that may read the collection learns that its role falls short; one that may not, nothing.
    # A document whose earlier delete the store refused is hidden, being deleted: deleting it again retries.
    document = reader.get(document_id, within=principal.collections, being_deleted=True)
    principal.require(document.collection, Role.WRITE)
    if not ingest.delete(document_id, within=principal.writable, actor=principal.key_id):
        raise DocumentNotFound(document_id)
    return Response(status_code=204)
