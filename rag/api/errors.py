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


def install_error_handlers(app: FastAPI) -> None:
    def reply(status_code: int, detail: str, headers: dict[str, str] | None = None, **extra: Any):
        return JSONResponse({"detail": detail, **extra}, status_code=status_code, headers=headers)

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError):
        return reply(exc.status_code, exc.detail, **exc.extra)

    @app.exception_handler(DocumentNotFound)
    async def _not_found(_: Request, exc: DocumentNotFound):
        return reply(404, f"no document with id {exc.args[0]!r}")

    @app.exception_handler(InvalidRequest)
    async def _invalid(_: Request, exc: InvalidRequest):
        return reply(422, str(exc))

    @app.exception_handler(DocumentError)
    async def _document(_: Request, exc: DocumentError):
        return reply(status_for_document_error(exc), str(exc))

    @app.exception_handler(QueueFull)
    async def _queue_full(_: Request, exc: QueueFull):
        return reply(429, str(exc), headers={"Retry-After": "30"})

    @app.exception_handler(DocumentBeingDeleted)
    async def _being_deleted(_: Request, exc: DocumentBeingDeleted):
        return reply(409, str(exc))

    @app.exception_handler(AuthError)
    async def _auth(_: Request, exc: AuthError):
        headers = {"WWW-Authenticate": "Bearer"} if exc.status_code == 401 else None
        return reply(exc.status_code, exc.detail, headers=headers)

    @app.exception_handler(CollectionNotFound)
    async def _unknown_collection(_: Request, exc: CollectionNotFound):
        return reply(404, f"unknown collection {exc.args[0]!r}: it has no documents")

    @app.exception_handler(PromptTooLong)
    async def _too_long(_: Request, exc: PromptTooLong):
        return reply(422, str(exc))

    @app.exception_handler(ServiceNotReady)
    async def _not_ready(_: Request, exc: ServiceNotReady):
        return reply(503, str(exc), headers={"Retry-After": "10"})

    @app.exception_handler(LLMUnavailable)
    async def _llm_down(_: Request, exc: LLMUnavailable):
        return reply(503, str(exc), headers={"Retry-After": "10"})

    @app.exception_handler(LLMTimeout)
    async def _llm_timeout(_: Request, exc: LLMTimeout):
        return reply(504, str(exc))

    @app.exception_handler(LLMRejected)
    async def _llm_rejected(_: Request, exc: LLMRejected):
        return reply(502, str(exc))
