"""The FastAPI application: routers, error handlers, and the runtime's start and stop."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from ingest.ports import Embedder
from rag.api import documents, health
from rag.api.errors import install_error_handlers
from rag.runtime import Runtime
from rag.settings import Settings


def create_app(settings: Settings, *, embedder: Embedder | None = None) -> FastAPI:
    """Build the app. ``embedder`` lets tests share one loaded model between apps."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime = Runtime(settings, embedder=embedder)
        runtime.start()
        app.state.runtime = runtime
        try:
            yield
        finally:
            runtime.stop()

    app = FastAPI(title="rag", version="0.1.0", lifespan=lifespan)
    install_error_handlers(app)

    @app.middleware("http")
    async def refuse_oversized_requests(request: Request, call_next):
        # Refuse before the multipart body is read and spooled to disk.
        length = request.headers.get("content-length")
        if length and length.isdigit() and int(length) > settings.max_request_bytes:
            return JSONResponse({"detail": f"the request is larger than {settings.max_request_mb} MB"}, status_code=413)
        return await call_next(request)

    app.include_router(health.router)
    app.include_router(documents.router)
    return app
