"""Kill -9 the real server in the middle of ingesting a document, start it again, and count what is stored."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import httpx
import pytest

from ingest.storage.records import PARSE_SHARE
from rag.components.chroma_store import ChromaStore
from rag.settings import PACKAGED_EMBEDDING_MODEL, StorageConfig
from tests import documents as docs
from tests.documents import long_text
from tests.helpers import UNREACHABLE_LLM, free_port, ingestion_ready, venv_script, wait_until

pytestmark = pytest.mark.slow


def stored_chunks(data_dir: Path, document_id: str) -> int:
    """Count a document's chunks in the embedded store with a fresh client (no cached state of ours)."""
    from chromadb.api.client import SharedSystemClient

    SharedSystemClient.clear_system_cache()
    store = ChromaStore.from_config(StorageConfig(data_dir=data_dir), PACKAGED_EMBEDDING_MODEL)
    return store.count_document_chunks("default", document_id)


class Server:
    def __init__(self, data_dir: Path, log_path: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {
            **os.environ,
            "RAG_DATA_DIR": str(data_dir),
            "RAG_WRITE_BATCH_SIZE": "8",
            "RAG_CHUNK_TOKENS": "64",
            "RAG_CHUNK_OVERLAP_TOKENS": "8",
            "RAG_LLM_BASE_URL": UNREACHABLE_LLM,
        }
        env.pop("RAG_CHROMA_URL", None)
        self._log = log_path.open("ab")
        self.process = subprocess.Popen(
            [venv_script("rag"), "serve", "--port", str(self.port)], env=env, stdout=self._log, stderr=subprocess.STDOUT
        )
        wait_until(self._ready, 120, "the server to be ready", interval=0.5)

    def _ready(self) -> bool:
        assert self.process.poll() is None, "the server exited"
        try:
            return ingestion_ready(httpx.get(f"{self.url}/readyz", timeout=5).json())
        except httpx.HTTPError:
            return False

    def get(self, path: str) -> dict:
        return httpx.get(f"{self.url}{path}", timeout=10).json()

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(30)


def test_killed_mid_ingestion_the_next_start_finishes_with_no_orphan_or_duplicate_chunks(tmp_path):
    data_dir = tmp_path / "state"
    log = tmp_path / "server.log"
    server = Server(data_dir, log)
    try:
        response = httpx.post(
            f"{server.url}/v1/documents",
            files=[("files", ("relays.txt", long_text())), ("files", ("almanac.pdf", docs.ALMANAC_PDF))],
            timeout=30,
        )
        assert response.status_code == 202
        big, queued = (d["id"] for d in response.json()["documents"])

        def partly_written() -> bool:
            record = server.get(f"/v1/documents/{big}")
            # Past the parsing share: some chunks are written.
            return record["status"] == "processing" and PARSE_SHARE < record["progress"] < 0.5

        wait_until(partly_written, 120, "ingestion to be under way", interval=0.05)
    finally:
        server.kill()

    assert stored_chunks(data_dir, big) > 0  # the kill left partial chunks behind

    server = Server(data_dir, log)
    try:
        wait_until(
            lambda: all(server.get(f"/v1/documents/{i}")["status"] == "ready" for i in (big, queued)),
            300,
            "both documents to be ready after the restart",
            interval=0.5,
        )
        record = server.get(f"/v1/documents/{big}")
        listing = server.get(f"/v1/documents/{big}/chunks?limit=500")
    finally:
        server.stop()

    assert record["chunks"] > 50
    assert listing["total"] == record["chunks"]
    assert stored_chunks(data_dir, big) == record["chunks"]
    indexes = sorted(c["chunk_index"] for c in listing["chunks"])
    assert indexes == list(range(record["chunks"]))
    assert "interrupted mid-ingestion; queued again" in log.read_text()


def test_killed_mid_replace_the_next_start_leaves_one_version(tmp_path):
    """kill -9 while a new version is being written: after the restart, the document is its old version
    until the new one is written again, then the new one; never both, and no chunk of either is left over."""
    from ingest.chunk_ids import storage_key

    data_dir = tmp_path / "state"
    log = tmp_path / "server.log"
    old = "\n".join(f"Relay {i} of the old timetable leaves at dawn." for i in range(20)).encode()
    server = Server(data_dir, log)
    try:
        first = httpx.post(f"{server.url}/v1/documents", files=[("files", ("relays.txt", old))], timeout=30)
        document_id = first.json()["documents"][0]["id"]
        wait_until(lambda: server.get(f"/v1/documents/{document_id}")["status"] == "ready", 120, "version 1")
        old_chunks = server.get(f"/v1/documents/{document_id}")["chunks"]
        replacing = httpx.post(
            f"{server.url}/v1/documents",
            files=[("files", ("relays.txt", long_text(150)))],
            data={"replace": "true"},
            timeout=30,
        )
        assert replacing.json()["documents"][0]["version"] == 2

        def partly_written() -> bool:
            pending = server.get(f"/v1/documents/{document_id}")["next_version"]
            return pending is not None and pending["status"] == "processing" and PARSE_SHARE < pending["progress"] < 0.5

        wait_until(partly_written, 120, "the new version to be under way", interval=0.05)
    finally:
        server.kill()

    new_key = storage_key(document_id, 2)
    assert stored_chunks(data_dir, new_key) > 0 and stored_chunks(data_dir, document_id) == old_chunks

    server = Server(data_dir, log)
    try:
        restarted = server.get(f"/v1/documents/{document_id}")
        assert restarted["version"] == 1 and restarted["status"] == "ready"  # the old version, still whole
        wait_until(lambda: server.get(f"/v1/documents/{document_id}")["version"] == 2, 300, "version 2", interval=0.5)
        record = server.get(f"/v1/documents/{document_id}")
        listing = server.get(f"/v1/documents/{document_id}/chunks?limit=500")
    finally:
        server.stop()

    assert record["status"] == "ready" and record["next_version"] is None
    assert listing["total"] == record["chunks"] > 50
    assert stored_chunks(data_dir, new_key) == record["chunks"]
    assert stored_chunks(data_dir, document_id) == 0
    assert not (data_dir / "files" / document_id).exists() and (data_dir / "files" / new_key).exists()
