"""The FastAPI application: routers, error handlers, and the runtime's start and stop."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI, Response, Security
from fastapi.exceptions import HTTPException
from fastapi.responses import JSONResponse
from fastapi.security import HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_fastapi_instrumentator import Instrumentator
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ingest.ports import Embedder
from rag.runtime import Runtime
from rag.server.api import collections, documents, health, openai_compat, query
from rag.server.api.deps import get_principal
from rag.server.api.errors import install_error_handlers
from rag.server.api.openapi import openapi_schema
from rag.server.auth import KeyRing
from rag.server.metrics import Metrics
from rag.server.observability import RequestIdMiddleware
from rag.server.web_pages import add_api_docs, add_web_page
from rag.settings import Settings


def create_app(settings: Settings, *, embedder: Embedder | None = None, run_worker: bool = True) -> FastAPI:
    """Build the app. ``embedder`` lets tests share one loaded model between apps; ``run_worker=False``
    serves the API only, beside `rag worker` processes."""

    keyring = KeyRing.from_settings(
        settings.access.api_keys.get_secret_value() if settings.access.api_keys else None, settings.access.api_keys_file
    )
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime = Runtime(settings, embedder=embedder, with_llm=True, events=metrics, answering_events=metrics)
        runtime.start(run_worker=run_worker)
        app.state.runtime = runtime
        try:
            yield
        finally:
            await runtime.aclose()

    docs = settings.server.api_docs
    app = FastAPI(
        title="rag",
        version="0.1.0",
        lifespan=lifespan,
        docs_url=None,  # served from this host by add_api_docs, not from a CDN
        redoc_url=None,
        openapi_url="/openapi.json" if docs else None,
    )
    app.openapi = lambda: openapi_schema(app, settings)
    app.state.keyring = keyring
    app.state.metrics = metrics
    install_error_handlers(app)
    app.add_middleware(RequestSizeLimit, max_bytes=settings.limits.max_request_bytes)
    app.add_middleware(RequestIdMiddleware)  # added last: outermost, so even refusals carry an id
    Instrumentator(excluded_handlers=["/metrics", "/healthz", "/readyz"], registry=metrics.registry).instrument(app)

    # Health and metrics stay open for probes and scrapers; everything else needs a key when keys are set.
    app.include_router(health.router)
    protected = [Depends(get_principal)]
    if keyring.enabled:  # declared in the schema only when it is asked for: an open service asks for nothing
        protected.append(Security(HTTPBearer(auto_error=False, description="An API key (RAG_API_KEYS)")))
    app.include_router(documents.router, dependencies=protected)
    app.include_router(query.router, dependencies=protected)
    app.include_router(openai_compat.router, dependencies=protected)
    app.include_router(collections.router, dependencies=protected)
    if docs:
        add_api_docs(app, title=app.title, openapi_url="/openapi.json")
    if settings.server.web_page:
        add_web_page(app)

    @app.get("/metrics", include_in_schema=False)
    def prometheus_metrics() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return app


class BodyTooLarge(HTTPException):
    def __init__(self, max_bytes: int):
        super().__init__(413, f"the request is larger than {max_bytes // (1024 * 1024)} MB (RAG_MAX_REQUEST_MB)")


class RequestSizeLimit:
    """Refuse a request body over the limit: at once when its Content-Length says so, and otherwise (a
    chunked body) as soon as the bytes read pass it, before they are all spooled to disk.

    Plain ASGI rather than @app.middleware("http"), which would buffer streamed responses.
    """

    def __init__(self, app: ASGIApp, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length", b"")
        if length.isdigit() and int(length) > self.max_bytes:
            await self._refuse(scope, receive, send)
            return
        received = 0
        started = False

        async def counted_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    # Raised inside the app's body parsing: FastAPI answers it as this 413.
                    raise BodyTooLarge(self.max_bytes)
            return message

        async def tracked_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted_receive, tracked_send)
        except BodyTooLarge:
            if started:
                raise
            await self._refuse(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        detail = BodyTooLarge(self.max_bytes).detail
        await JSONResponse({"detail": detail}, status_code=413, headers={"Connection": "close"})(scope, receive, send)
