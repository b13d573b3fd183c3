"""The FastAPI application: routers, error handlers, and the runtime's start and stop."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Scope, Send

from ingest.ports import Embedder
from rag.api import documents, health, openai_compat, query
from rag.api.errors import install_error_handlers
from rag.llm import OpenAICompatibleLLM
from rag.prompting import TokenCountCache
from rag.runtime import Runtime
from rag.settings import Settings


def create_app(settings: Settings, *, embedder: Embedder | None = None) -> FastAPI:
    """Build the app. ``embedder`` lets tests share one loaded model between apps."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime = Runtime(settings, embedder=embedder, with_llm=True)
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
    install_error_handlers(app)

    app.add_middleware(RequestSizeLimit, max_bytes=settings.max_request_bytes)
    app.include_router(health.router)
    app.include_router(documents.router)
    app.include_router(query.router)
    app.include_router(openai_compat.router)
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
