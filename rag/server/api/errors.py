"""Every error the API answers, in the shapes the schema declares.

- 422: FastAPI's documented validation shape, ``{"detail": [{"loc", "msg", "type"}]}``, whether pydantic or
  the service found the problem (a bad collection name, metadata, a prompt that does not fit).
- every other 4xx/5xx: ``{"detail": "the reason"}`` (plus ``files`` when an upload names its bad files).
- the OpenAI-compatible routes (OPENAI_PATHS), every status: OpenAI's own shape,
  ``{"error": {"message", "type", "param", "code"}}``, so OpenAI clients show the reason; a stream that
  fails after it started sends the same object as its last event.

Domain errors know nothing of HTTP; their status codes are in the tables below.
"""

from __future__ import annotations

import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from ingest.errors import (
    BatchTooLarge,
    DocumentBeingDeleted,
    DocumentError,
    DocumentTooLarge,
    EmptyDocument,
    InvalidRequest,
    QueueFull,
    ReplaceConflict,
    StoreError,
    UnsupportedDocument,
)
from rag.ports import EmbeddingModelMismatch, LLMRejected, LLMTimeout, LLMUnavailable, PageNotFound
from rag.runtime import ServiceNotReady
from rag.server.api.schemas import ErrorBody, OpenAIErrorBody
from rag.server.api.validation import validation_detail
from rag.server.auth import AuthError
from rag.services.documents import DocumentNotFound
from rag.services.prompting import PromptTooLong
from rag.services.retrieval import CollectionNotFound


class ApiError(Exception):
    def __init__(self, status_code: int, detail: str, **extra: Any):
        super().__init__(detail)
        self.status_code = status_code
        self.detail = detail
        self.extra = extra


_DESCRIPTIONS = {
    400: "Bad request: an empty file, or a malformed body",
    401: "Missing or invalid API key",
    403: "The API key may not use this collection, or holds only the read role where writing needs write",
    404: "No such document or collection (also for one this key may not see)",
    405: "Method not allowed",
    409: "Conflict: the same file is being deleted, a replacement is already under way, or the collection needs"
    " `rag reindex`",
    413: "Too large: the request, a file, or a batch larger than the queue",
    415: "Unsupported file type",
    422: "Validation error",
    429: "The ingestion queue is full: retry later",
    502: "The LLM refused the request",
    503: "Not ready (the model is loading, the LLM or the store is unreachable)",
    504: "The LLM timed out",
}


OPENAI_PATHS = frozenset({"/v1/chat/completions", "/v1/models"})
# OpenAI's error type, and a default code, for each status.
_OPENAI_KINDS = {
    400: ("invalid_request_error", "bad_request"),
    401: ("authentication_error", "invalid_api_key"),
    403: ("permission_error", "collection_not_allowed"),
    404: ("not_found_error", "not_found"),
    405: ("invalid_request_error", "method_not_allowed"),
    409: ("conflict_error", "conflict"),
    413: ("invalid_request_error", "request_too_large"),
    415: ("invalid_request_error", "unsupported_media_type"),
    422: ("invalid_request_error", "invalid_value"),
    429: ("rate_limit_error", "rate_limited"),
    502: ("api_error", "llm_refused"),
    503: ("server_error", "unavailable"),
    504: ("server_error", "llm_timeout"),
}


def openai_error(status_code: int, message: str, *, param: str | None = None, code: str | None = None) -> dict:
    fallback = ("server_error" if status_code >= 500 else "invalid_request_error", None)
    kind, default_code = _OPENAI_KINDS.get(status_code, fallback)
    return {"error": {"message": message, "type": kind, "param": param, "code": code or default_code}}


def status_of(exc: Exception) -> int:
    """The status a domain error answers with (500 for one this module does not know)."""
    return next((_PLAIN_ERRORS[kind][0] for kind in type(exc).__mro__ if kind in _PLAIN_ERRORS), 500)


def openai_error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses=`` of an OpenAI-compatible route: every error in OpenAI's shape."""
    return {code: {"model": OpenAIErrorBody, "description": _DESCRIPTIONS[code]} for code in codes}


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses=`` of a route: each error status it may answer, with its body's schema."""
    return {
        code: {"description": _DESCRIPTIONS[code]}
        if code == 422
        else {"model": ErrorBody, "description": _DESCRIPTIONS[code]}
        for code in codes
    }


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
    BatchTooLarge: (413, None),
    PageNotFound: (404, None),
    DocumentBeingDeleted: (409, None),
    ReplaceConflict: (409, None),
    EmbeddingModelMismatch: (409, None),
    QueueFull: (429, {"Retry-After": "30"}),
    ServiceNotReady: (503, {"Retry-After": "10"}),
    StoreError: (503, {"Retry-After": "10"}),
    LLMUnavailable: (503, {"Retry-After": "10"}),
    LLMRejected: (502, None),
    LLMTimeout: (504, None),
}
# Errors in the request's values: 422 in the validation shape, at this location.
_INVALID_VALUES: dict[type[Exception], tuple[str, ...]] = {
    InvalidRequest: ("body",),
    PromptTooLong: ("body", "max_tokens"),
}


def reply(status_code: int, detail: str, headers: dict[str, str] | None = None, **extra: Any) -> JSONResponse:
    return JSONResponse({"detail": detail, **extra}, status_code=status_code, headers=headers)


def _is_openai(request: Request) -> bool:
    return request.url.path in OPENAI_PATHS


def respond(
    request: Request, status_code: int, detail: str, headers: dict[str, str] | None = None, **extra: Any
) -> JSONResponse:
    if _is_openai(request):
        code = extra.get("code") if isinstance(extra.get("code"), str) else None
        return JSONResponse(openai_error(status_code, detail, code=code), status_code=status_code, headers=headers)
    extra.pop("code", None)
    return reply(status_code, detail, headers=headers, **extra)


def respond_invalid(request: Request, errors: list[dict[str, Any]]) -> JSONResponse:
    if _is_openai(request):
        first = errors[0] if errors else {}
        where = [str(part) for part in first.get("loc", [])[1:]]
        message = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', [])[1:]) or 'body'}: {e.get('msg', '')}" for e in errors
        )
        body = openai_error(422, message or "invalid request", param=".".join(where) or None, code=first.get("type"))
        return JSONResponse(body, status_code=422)
    return JSONResponse({"detail": errors}, status_code=422)


def _finite(value: Any) -> Any:
    """JSON has no NaN or Infinity: a request that sent them (Python's json accepts them) gets them back as
    strings in its 422, instead of a 422 that cannot be rendered."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value


def allowed_methods(app: FastAPI, scope: dict[str, Any]) -> list[str]:
    """Every method some route serves at this path (Starlette's own 405 names only the first route's)."""
    methods: set[str] = set()
    for route in app.router.routes:
        match, _ = route.matches(scope)
        route_methods = getattr(route, "methods", None)
        if match is not Match.NONE and route_methods:
            methods |= set(route_methods)
    return sorted(methods)


def install_error_handlers(app: FastAPI) -> None:
    async def plain_error(request: Request, exc: Exception) -> JSONResponse:
        status_code, headers = next(_PLAIN_ERRORS[kind] for kind in type(exc).__mro__ if kind in _PLAIN_ERRORS)
        return respond(request, status_code, str(exc), headers=headers)

    async def invalid_value(request: Request, exc: Exception) -> JSONResponse:
        loc = next(_INVALID_VALUES[kind] for kind in type(exc).__mro__ if kind in _INVALID_VALUES)
        return respond_invalid(request, validation_detail(str(exc), getattr(exc, "loc", None) or loc))

    for error in _PLAIN_ERRORS:
        app.add_exception_handler(error, plain_error)
    for error in _INVALID_VALUES:
        app.add_exception_handler(error, invalid_value)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError):
        return respond_invalid(request, _finite(jsonable_encoder(exc.errors())))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = ", ".join(allowed_methods(request.app, request.scope))
        return respond(request, exc.status_code, str(exc.detail), headers=headers)

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError):
        return respond(request, exc.status_code, exc.detail, **exc.extra)

    @app.exception_handler(DocumentNotFound)
    async def _not_found(request: Request, exc: DocumentNotFound):
        return respond(request, 404, f"no document with id {exc.args[0]!r}")

    @app.exception_handler(DocumentError)
    async def _document(_: Request, exc: DocumentError):
        status_code = status_for_document_error(exc)
        if status_code == 422:
            return JSONResponse({"detail": validation_detail(str(exc), ("body", "files"))}, 422)
        return reply(status_code, str(exc))

    @app.exception_handler(AuthError)
    async def _auth(request: Request, exc: AuthError):
        headers = {"WWW-Authenticate": "Bearer"} if exc.status_code == 401 else None
        return respond(request, exc.status_code, exc.detail, headers=headers)

    @app.exception_handler(CollectionNotFound)
    async def _unknown_collection(request: Request, exc: CollectionNotFound):
        return respond(request, 404, f"unknown collection {exc.args[0]!r}: it has no documents")
