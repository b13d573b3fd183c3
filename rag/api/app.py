"""The FastAPI application: routers, error handlers, and the runtime's start and stop."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_fastapi_instrumentator import Instrumentator
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Scope, Send

from ingest.ports import Embedder
from rag.api import documents, health, openai_compat, query
from rag.api.deps import get_principal
from rag.api.errors import install_error_handlers
from rag.auth import KeyRing
from rag.llm import OpenAICompatibleLLM
from rag.metrics import Metrics
from rag.observability import RequestIdMiddleware
from rag.prompting import TokenCountCache
from rag.runtime import Runtime
from rag.settings import Settings


def create_app(settings: Settings, *, embedder: Embedder | None = None) -> FastAPI:
    """Build the app. ``embedder`` lets tests share one loaded model between apps."""

    keyring = KeyRing.from_settings(
        settings.api_keys.get_secret_value() if settings.api_keys else None, settings.api_keys_file
    )
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime = Runtime(settings, embedder=embedder, with_llm=True, events=metrics)
        runtime.start()
        app.state.runtime = runtime
        app.state.llm = OpenAICompatibleLLM(
            runtime.llm_base_url,
            model=runtime.llm_model,
            api_key=settings.llm_api_key.get_secret_value(),
            timeout_s=settings.llm_timeout_s,
            connect_timeout_s=settings.llm_connect_timeout_s,
        )
        app.state.token_counts = TokenCountCache()
        try:
            yield
        finally:
            await app.state.llm.close()
            await run_in_threadpool(runtime.stop)

    app = FastAPI(title="rag", version="0.1.0", lifespan=lifespan)
    app.state.keyring = keyring
    app.state.metrics = metrics
    install_error_handlers(app)
    app.add_middleware(RequestSizeLimit, max_bytes=settings.max_request_bytes)
    app.add_middleware(RequestIdMiddleware)  # added last: outermost, so even refusals carry an id
    Instrumentator(excluded_handlers=["/metrics", "/healthz", "/readyz"], registry=metrics.registry).instrument(app)

    # Health and metrics stay open for probes and scrapers; everything else needs a key when keys are set.
    app.include_router(health.router)
    protected = [Depends(get_principal)]
    app.include_router(documents.router, dependencies=protected)
    app.include_router(query.router, dependencies=protected)
    app.include_router(openai_compat.router, dependencies=protected)

    @app.get("/metrics", include_in_schema=False)
    def prometheus_metrics() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return app


class RequestSizeLimit:
    """Refuse a request whose declared body is too large before it is read and spooled to disk.

    Plain ASGI rather than @app.middleware("http"), which would buffer streamed responses.
    """

    def __init__(self, app: ASGIApp, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            length = dict(scope["headers"]).get(b"content-length", b"")
            if length.isdigit() and int(length) > self.max_bytes:
                detail = f"the request is larger than {self.max_bytes // (1024 * 1024)} MB"
                await JSONResponse({"detail": detail}, status_code=413)(scope, receive, send)
                return
        await self.app(scope, receive, send)
