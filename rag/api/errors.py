"""Map domain errors to HTTP answers: always a 4xx/5xx with a ``detail`` that says why."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from ingest.errors import (
    DocumentBeingDeleted,
    DocumentError,
    DocumentTooLarge,
    EmptyDocument,
    InvalidRequest,
    QueueFull,
    UnsupportedDocument,
)
from rag.auth import AuthError
from rag.documents import DocumentNotFound
from rag.llm import LLMRejected, LLMTimeout, LLMUnavailable
from rag.prompting import PromptTooLong
from rag.retrieval import CollectionNotFound
from rag.runtime import ServiceNotReady


class ApiError(Exception):
    def __init__(self, status_code: int, detail: str, **extra: Any):
        super().__init__(detail)
        self.status_code = status_code
        self.detail = detail
        self.extra = extra


def status_for_document_error(error: DocumentError) -> int:
    match error:
        case EmptyDocument():
            return 400
        case DocumentTooLarge():
            return 413
        case UnsupportedDocument():
            return 415
        case _:
            return 422


# Errors whose own message is the reason: their status, and headers that tell a client when to retry.
_PLAIN_ERRORS: dict[type[Exception], tuple[int, dict[str, str] | None]] = {
    InvalidRequest: (422, None),
    PromptTooLong: (422, None),
    DocumentBeingDeleted: (409, None),
    QueueFull: (429, {"Retry-After": "30"}),
    ServiceNotReady: (503, {"Retry-After": "10"}),
    LLMUnavailable: (503, {"Retry-After": "10"}),
    LLMRejected: (502, None),
    LLMTimeout: (504, None),
}


def reply(status_code: int, detail: str, headers: dict[str, str] | None = None, **extra: Any) -> JSONResponse:
    return JSONResponse({"detail": detail, **extra}, status_code=status_code, headers=headers)


async def _plain_error(_: Request, exc: Exception) -> JSONResponse:
    status_code, headers = _PLAIN_ERRORS[type(exc)]
    return reply(status_code, str(exc), headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    for error in _PLAIN_ERRORS:
        app.add_exception_handler(error, _plain_error)

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError):
        return reply(exc.status_code, exc.detail, **exc.extra)

    @app.exception_handler(DocumentNotFound)
    async def _not_found(_: Request, exc: DocumentNotFound):
        return reply(404, f"no document with id {exc.args[0]!r}")

    @app.exception_handler(DocumentError)
    async def _document(_: Request, exc: DocumentError):
        return reply(status_for_document_error(exc), str(exc))

    @app.exception_handler(AuthError)
    async def _auth(_: Request, exc: AuthError):
        headers = {"WWW-Authenticate": "Bearer"} if exc.status_code == 401 else None
        return reply(exc.status_code, exc.detail, headers=headers)

    @app.exception_handler(CollectionNotFound)
    async def _unknown_collection(_: Request, exc: CollectionNotFound):
        return reply(404, f"unknown collection {exc.args[0]!r}: it has no documents")
