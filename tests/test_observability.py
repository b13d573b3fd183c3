"""Request ids on every response and log line, JSON logs from the real server, and keys never logged."""

from __future__ import annotations

import json
import os
import subprocess

import httpx
import pytest

from tests import documents as docs
from tests.helpers import UNREACHABLE_LLM, free_port, ingestion_ready, venv_script, wait_until

pytestmark = pytest.mark.slow
KEY = "s3cret-api-key-that-must-never-appear-in-logs"


def test_request_ids_structured_logs_and_no_keys_in_them(tmp_path):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = tmp_path / "server.log"
    env = {
        **os.environ,
        "RAG_DATA_DIR": str(tmp_path / "state"),
        "RAG_LLM_BASE_URL": UNREACHABLE_LLM,
        "RAG_API_KEYS": KEY,
        "RAG_LOG_FORMAT": "json",
    }
    with log_path.open("wb") as log:
        server = subprocess.Popen(
            [venv_script("rag"), "serve", "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT
        )
    try:
        wait_until(lambda: _ready(url), 120, "the server", interval=0.5)
        auth = {"Authorization": f"Bearer {KEY}"}
        client_id = "client-chosen-id-42"
        upload = httpx.post(
            f"{url}/v1/documents",
            files=[("files", ("weather.txt", docs.TEXT))],
            headers={**auth, "X-Request-ID": client_id},
        )
        assert upload.status_code == 202 and upload.headers["x-request-id"] == client_id
        refused = httpx.get(f"{url}/v1/documents", headers={"Authorization": "Bearer wrong-key-also-secret"})
        assert refused.status_code == 401
        generated = refused.headers["x-request-id"]
        assert len(generated) == 32 and generated != client_id
        for unsafe in ("spaces and {braces}", "x" * 500):
            assert httpx.get(f"{url}/healthz", headers={"X-Request-ID": unsafe}).headers["x-request-id"] != unsafe
        document_id = upload.json()["documents"][0]["id"]
        wait_until(
            lambda: httpx.get(f"{url}/v1/documents/{document_id}", headers=auth).json()["status"] == "ready",
            60,
            "ingestion",
        )
    finally:
        server.terminate()
        server.wait(30)

    text = log_path.read_text()
    assert KEY not in text and "wrong-key-also-secret" not in text
    lines = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    assert lines and all({"time", "level", "logger", "request_id", "message"} <= set(line) for line in lines)
    by_id = {line["request_id"] for line in lines}
    assert client_id in by_id and generated in by_id
    queued = [line for line in lines if "queued document" in line["message"]]
    assert queued and queued[0]["request_id"] == client_id  # the service's own log line, not only the access log


def _ready(url: str) -> bool:
    try:
        return ingestion_ready(httpx.get(f"{url}/readyz", timeout=5).json())
    except httpx.HTTPError:
        return False
