"""Past one machine: two API processes (`rag serve --no-worker`) and two ingestion workers (`rag worker`)
sharing a real PostgreSQL, a real `chroma run` server and one files directory. A worker is killed with
kill -9 in the middle of a document; the other takes it over when the lease runs out and finishes it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
from pathlib import Path

import chromadb
import httpx
import pytest

from ingest.chunk_ids import chunk_id
from ingest.storage.records import PARSE_SHARE
from rag.components.chroma_store import CHROMA_PREFIX
from tests import documents as docs
from tests.documents import long_text
from tests.helpers import UNREACHABLE_LLM, free_port, ingestion_ready, venv_script, wait_until

pytestmark = pytest.mark.slow
LEASE_SECONDS = 4


class Process:
    def __init__(self, args: list[str], env: dict[str, str], log: Path):
        self._log = log.open("ab")
        self.process = subprocess.Popen(
            [venv_script("rag"), *args], env=env, stdout=self._log, stderr=subprocess.STDOUT
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.alive():
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()


class Api(Process):
    def __init__(self, env: dict[str, str], log: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        super().__init__(["serve", "--no-worker", "--port", str(self.port)], env, log)

    def ready(self) -> bool:
        assert self.alive(), "the API process exited"
        try:
            return ingestion_ready(httpx.get(f"{self.url}/readyz", timeout=5).json())
        except httpx.HTTPError:
            return False

    def get(self, path: str) -> httpx.Response:
        return httpx.get(f"{self.url}{path}", timeout=30)


@pytest.fixture
def fleet(tmp_path, postgres, chroma_server):
    shared_files = tmp_path / "files"
    env = {
        **os.environ,
        "RAG_DATABASE_URL": postgres.new_database(),
        "RAG_CHROMA_URL": chroma_server,
        "RAG_FILES_DIR": str(shared_files),
        "RAG_JOB_LEASE_SECONDS": str(LEASE_SECONDS),
        "RAG_LLM_BASE_URL": UNREACHABLE_LLM,
        "RAG_WRITE_BATCH_SIZE": "8",
        "RAG_CHUNK_TOKENS": "64",
        "RAG_CHUNK_OVERLAP_TOKENS": "8",
        "OMP_NUM_THREADS": "1",  # four processes on a small machine: one PyTorch thread each
    }
    processes: list[Process] = []

    def own_state(name: str) -> dict[str, str]:
        # Nothing is shared through local state: each process gets a data directory of its own.
        return {**env, "RAG_DATA_DIR": str(tmp_path / name)}

    try:
        apis = [Api(own_state(f"api{n}"), tmp_path / f"api{n}.log") for n in (1, 2)]
        workers = [Process(["worker"], own_state(f"worker{n}"), tmp_path / f"worker{n}.log") for n in (1, 2)]
        processes += [*apis, *workers]
        for api in apis:
            wait_until(api.ready, 180, "the API processes to be ready", interval=0.5)
        yield apis, workers, tmp_path
    finally:
        for process in processes:
            process.stop()
        client = chromadb.HttpClient(host="127.0.0.1", port=int(chroma_server.rsplit(":", 1)[1]))
        for collection in client.list_collections():
            client.delete_collection(collection.name)


def stored_ids(chroma_url: str, document_id: str) -> list[str]:
    client = chromadb.HttpClient(host="127.0.0.1", port=int(chroma_url.rsplit(":", 1)[1]))
    collection = client.get_collection(CHROMA_PREFIX + "default")
    return sorted(collection.get(where={"document_id": document_id}, include=[])["ids"])


def test_two_apis_and_two_workers_share_everything_and_a_killed_worker_is_taken_over(fleet, chroma_server):
    (first, second), workers, tmp_path = fleet
    response = httpx.post(
        f"{first.url}/v1/documents",
        files=[("files", ("relays.txt", long_text(600))), ("files", ("almanac.pdf", docs.ALMANAC_PDF))],
        timeout=60,
    )
    assert response.status_code == 202
    big, small = (d["id"] for d in response.json()["documents"])

    # Uploaded through one API, seen through the other, with the worker that holds it named.
    holder: dict = {}

    def under_way() -> bool:
        record = second.get(f"/v1/documents/{big}").json()
        holder.update(record)
        return record["status"] == "processing" and PARSE_SHARE < record["progress"] < 0.5  # chunks written

    wait_until(under_way, 240, "the long document to be under way", interval=0.05)
    host, pid = holder["worker"].split(":")
    assert host == socket.gethostname()
    victim = next(w for w in workers if w.pid == int(pid))
    survivor = next(w for w in workers if w is not victim)
    victim.kill()

    def ready(document_id: str) -> bool:
        record = second.get(f"/v1/documents/{document_id}").json()
        assert record["status"] != "failed", record
        return record["status"] == "ready"

    wait_until(lambda: ready(big) and ready(small), 300, "the survivor to finish both documents", interval=0.5)
    record = first.get(f"/v1/documents/{big}").json()
    assert record["worker"] is None and record["chunks"] > 100
    # No orphan and no duplicate: exactly the document's chunk ids, once each.
    assert stored_ids(chroma_server, big) == sorted(chunk_id(big, i) for i in range(record["chunks"]))
    assert second.get(f"/v1/documents/{big}/chunks?limit=1").json()["total"] == record["chunks"]
    assert survivor.alive()
    survivor_log = (tmp_path / f"worker{workers.index(survivor) + 1}.log").read_text()
    assert f"ingesting {big}" in survivor_log  # taken over, not restarted by the killed one

    # Retrieval through either API finds what the workers wrote (keywords in PostgreSQL too).
    for api in (first, second):
        hits = httpx.post(
            f"{api.url}/v1/retrieve", json={"query": "relay at milestone 1500 inspected", "top_k": 3}, timeout=60
        ).json()["chunks"]
        assert hits and hits[0]["document_id"] == big

    # A delete through one API is seen by the other, and leaves nothing behind.
    assert httpx.delete(f"{first.url}/v1/documents/{small}", timeout=60).status_code == 204
    assert second.get(f"/v1/documents/{small}").status_code == 404
    assert stored_ids(chroma_server, small) == []
    assert second.get("/v1/documents").json()["total"] == 1
