"""Helpers the tests share (fixtures live in conftest.py)."""

from __future__ import annotations

import shutil
import socket
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import uvicorn
from fastapi.testclient import TestClient

from rag.server.app import create_app
from rag.settings import Settings

DATA = Path(__file__).parent / "data"
# Nothing listens on the discard port: an LLM that is down.
UNREACHABLE_LLM = "http://127.0.0.1:9/v1"


def ingestion_ready(readyz: dict) -> bool:
    """Store and embedding model ready (the LLM is not needed to ingest)."""
    checks = readyz.get("checks", {})
    return checks.get("store") == "ok" and checks.get("embedder") == "ok"


def error_reason(response) -> str:
    """An error response's reason: ``detail`` itself, the messages of a 422's validation errors, or the
    message of an OpenAI-shaped error (the OpenAI-compatible routes)."""
    body = response.json()
    if "error" in body:
        return body["error"]["message"]
    detail = body["detail"]
    return detail if isinstance(detail, str) else "; ".join(error["msg"] for error in detail)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def venv_script(name: str) -> str:
    """A console script installed beside the running interpreter (works without an activated venv)."""
    candidate = Path(sys.executable).parent / name
    return str(candidate) if candidate.exists() else (shutil.which(name) or name)


def wait_until(check: Callable[[], bool], timeout: float, what: str, interval: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def wait_for_document(client: TestClient, document_id: str, timeout: float = 120) -> dict:
    """Poll until the document is ready or failed; return its record."""
    record: dict = {}

    def finished() -> bool:
        nonlocal record
        record = client.get(f"/v1/documents/{document_id}").json()
        return record.get("status") in ("ready", "failed")

    wait_until(finished, timeout, f"document {document_id}", interval=0.1)
    return record


def upload(client: TestClient, *files: tuple[str, bytes], collection: str = "default", metadata: str | None = None):
    data = {"collection": collection}
    if metadata is not None:
        data["metadata"] = metadata
    return client.post("/v1/documents", files=[("files", (name, content)) for name, content in files], data=data)


class LiveServer:
    """The real app served by uvicorn on a real port, in a thread: for HTTP clients that need a socket."""

    def __init__(self, settings: Settings, embedder, *, need_llm: bool = True):
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.app = create_app(settings, embedder=embedder)
        self._server = uvicorn.Server(uvicorn.Config(self.app, host="127.0.0.1", port=port, log_level="warning"))
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        wait_until(lambda: self._server.started, 60, "uvicorn to start")
        if need_llm:
            wait_until(lambda: httpx.get(f"{self.url}/readyz", timeout=10).status_code == 200, 120, "readiness")
        else:
            wait_until(lambda: ingestion_ready(httpx.get(f"{self.url}/readyz", timeout=10).json()), 120, "readiness")

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(30)


class RealTokenCounts:
    """Token counts from the real embedding model, for test embedders that only change what ``embed`` does."""

    def __init__(self, embedder):
        self._embedder = embedder

    def count_tokens(self, text: str) -> int:
        return self._embedder.count_tokens(text)

    @property
    def max_tokens(self) -> int:
        return self._embedder.max_tokens
