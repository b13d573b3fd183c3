"""The worker's guarantees, observed mid-document: never half-visible, deletes win, shutdown and crash recovery.

The real embedding model does the work; a gate around it only pauses the worker between two batches so the
test can look at the state in between.
"""

from __future__ import annotations

import io
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from ingest.storage.records import Status
from rag.runtime import Runtime
from rag.services.documents import DocumentReader
from rag.services.retrieval import Retriever
from tests import documents as docs
from tests.conftest import REPO, STORE_MODES
from tests.helpers import RealTokenCounts, wait_until


class GatedEmbedder(RealTokenCounts):
    """The real embedder, pausing before its second call until the test opens the gate."""

    def __init__(self, embedder):
        super().__init__(embedder)
        self.calls = 0
        self.paused = threading.Event()
        self.gate = threading.Event()

    def embed(self, texts) -> np.ndarray:
        self.calls += 1
        if self.calls == 2:
            self.paused.set()
            self.gate.wait(60)
        return self._embedder.embed(texts)


@pytest.fixture(params=STORE_MODES)
def runtime_factory(request, make_settings, embedder):
    runtimes: list[Runtime] = []

    def build(gated: bool = True, **overrides) -> tuple[Runtime, GatedEmbedder]:
        gate = GatedEmbedder(embedder)
        # Batches of 2 chunks, to look between them: without document vectors, since a document short
        # enough for one is written whole, in one batch (tests/test_document_vectors.py).
        overrides.setdefault("document_vector_max_chunks", 0)
        settings = make_settings(
            request.param, write_batch_size=2, chunk_tokens=64, chunk_overlap_tokens=8, **overrides
        )
        runtime = Runtime(settings, embedder=gate if gated else embedder)
        runtimes.append(runtime)
        return runtime, gate

    yield build
    for runtime in runtimes:
        runtime.stop()
    if request.param == "server":
        from tests.conftest import _clear_chroma

        _clear_chroma(request.getfixturevalue("chroma_server"))


def submit(runtime: Runtime, name: str, content: bytes):
    return runtime.ingest.submit(io.BytesIO(content), name, "default", {}).record


def run_worker_in_background(runtime: Runtime) -> threading.Thread:
    thread = threading.Thread(target=runtime.worker.run_once, daemon=True)
    thread.start()
    return thread


def test_a_document_is_invisible_to_retrieval_until_every_chunk_is_written(runtime_factory, embedder):
    runtime, gate = runtime_factory()
    runtime.start(run_worker=False, wait=True)
    retrievers = {
        mode: Retriever(runtime.records, runtime.store, embedder, runtime.keywords, mode=mode)
        for mode in ("dense", "bm25", "hybrid")
    }
    record = submit(runtime, "almanac.pdf", docs.ALMANAC_PDF)
    worker = run_worker_in_background(runtime)
    assert gate.paused.wait(60)

    # Half-way: the first batch is in Chroma, but retrieval must not see it.
    midway = runtime.records.get(record.id)
    assert midway.status is Status.PROCESSING and 0 < midway.progress < 1
    assert runtime.store.count_document_chunks("default", record.id) == 2
    assert runtime.keywords.count("default", record.id) == 2
    for retriever in retrievers.values():
        assert retriever.search("default", "Quillhaven harbour almanac", k=5) == []

    gate.gate.set()
    worker.join(60)
    assert runtime.records.get(record.id).status is Status.READY
    for mode, retriever in retrievers.items():
        hits = retriever.search("default", "When was the Quillhaven lighthouse first lit?", k=3)
        assert hits and hits[0].metadata["document_id"] == record.id, mode
        assert hits[0].metadata["page"] == 2 and "14 March 1887" in hits[0].text, mode


def test_delete_during_ingestion_leaves_no_chunk_behind(runtime_factory):
    runtime, gate = runtime_factory()
    runtime.start(run_worker=False, wait=True)
    record = submit(runtime, "manual.pdf", docs.MANUAL_PDF)
    worker = run_worker_in_background(runtime)
    assert gate.paused.wait(60)
    assert runtime.store.count_document_chunks("default", record.id) > 0

    assert runtime.ingest.delete(record.id)
    gate.gate.set()
    worker.join(60)
    assert runtime.records.get(record.id) is None
    assert runtime.store.count_document_chunks("default", record.id) == 0
    assert runtime.keywords.count("default", record.id) == 0
    assert not runtime.files.path(record.id).exists()


def test_shutdown_mid_document_puts_it_back_in_the_queue(runtime_factory):
    runtime, gate = runtime_factory()
    runtime.start(wait=True)
    record = submit(runtime, "manual.pdf", docs.MANUAL_PDF)
    assert gate.paused.wait(60)
    runtime.worker.request_stop()
    gate.gate.set()
    runtime.worker.stop()
    requeued = runtime.records.get(record.id)
    assert requeued.status is Status.QUEUED and requeued.progress == 0
    assert runtime.store.count_document_chunks("default", record.id) == 0


def test_restart_recovers_interrupted_ingestion_and_deletes(runtime_factory, embedder):
    # State as a killed process leaves it: one document mid-ingestion with some chunks written, one
    # mid-delete with its chunks still there, one still queued.
    crashed, gate = runtime_factory()
    crashed.start(run_worker=False, wait=True)
    interrupted = submit(crashed, "manual.pdf", docs.MANUAL_PDF)
    abandoned = run_worker_in_background(crashed)
    assert gate.paused.wait(60)
    partial = crashed.store.count_document_chunks("default", interrupted.id)
    assert partial > 0

    doomed = submit(crashed, "orchard.pdf", docs.ORCHARD_PDF)
    crashed.records.mark_deleting(doomed.id, crashed.ingest.identity)
    crashed.store.upsert(
        "default",
        ids=[f"{doomed.id}-000000"],
        embeddings=np.zeros((1, embedder.dimension), dtype=np.float32) + 0.05,
        texts=["left behind"],
        metadatas=[{"document_id": doomed.id}],
    )
    waiting = submit(crashed, "weather.txt", docs.TEXT)
    # The "crash": this runtime is abandoned, its worker paused, and a new one starts on the same state.

    restarted, _ = runtime_factory(gated=False)
    restarted.start(wait=True)
    gate.gate.set()  # the abandoned worker wakes to find its document taken over and writes nothing
    wait_until(
        lambda: all(restarted.records.get(i).status is Status.READY for i in (interrupted.id, waiting.id)),
        120,
        "both documents to be ingested",
    )
    done = restarted.records.get(interrupted.id)
    assert restarted.store.count_document_chunks("default", interrupted.id) == done.chunks > partial
    assert restarted.records.get(doomed.id) is None
    assert restarted.store.count_document_chunks("default", doomed.id) == 0
    assert not restarted.files.path(doomed.id).exists()
    abandoned.join(60)  # it woke up, found its document taken over, and wrote nothing
    assert restarted.store.count_document_chunks("default", interrupted.id) == done.chunks


def test_recovery_leaves_alone_what_a_live_process_holds(runtime_factory):
    runtime, _ = runtime_factory(gated=False)
    record = submit(runtime, "weather.txt", docs.TEXT)
    other = subprocess.Popen(["sleep", "60"])  # stands in for a `rag ingest` running beside the server
    try:
        assert runtime.records.claim_next(f"{socket.gethostname()}:{other.pid}:0badc0de").id == record.id
        runtime.ingest.recover()
        assert runtime.records.get(record.id).status is Status.PROCESSING
    finally:
        other.kill()
        other.wait()
    runtime.ingest.recover()
    assert runtime.records.get(record.id).status is Status.QUEUED


@pytest.mark.parametrize("processes", [0, 1], ids=["in-threads", "in-a-process"])
def test_progress_moves_while_a_pdf_is_parsed(runtime_factory, monkeypatch, processes):
    import ingest.worker

    monkeypatch.setattr(ingest.worker, "PAGE_PROGRESS_SECONDS", 0.0)  # record every page
    runtime, _ = runtime_factory(gated=False, parse_processes=processes)
    runtime.start(run_worker=False, wait=True)
    record = submit(runtime, "almanac.pdf", docs.ALMANAC_PDF)
    seen = []
    set_parsing = runtime.records.set_parsing

    def watch(document_id, **values):
        assert set_parsing(document_id, **values)
        seen.append(runtime.records.get(document_id))
        return True

    monkeypatch.setattr(runtime.records, "set_parsing", watch)
    runtime.worker.run_once()
    # Before a single chunk exists, the record already says how many pages there are and how far it got.
    assert [(r.pages_parsed, r.pages, r.chunks) for r in seen] == [(1, 3, None), (2, 3, None), (3, 3, None)]
    assert [r.progress for r in seen] == sorted(r.progress for r in seen) and 0 < seen[0].progress < seen[-1].progress
    assert seen[-1].progress <= 0.1
    done = runtime.records.get(record.id)
    assert done.status is Status.READY and done.progress == 1.0 and done.pages_parsed == 3


def test_documents_parsed_in_a_process_pool_come_out_the_same(runtime_factory):
    # A GPU host parses in processes (the embedder outruns one core of pypdf); the chunks must not change,
    # and a document's error must still come back with its reason.
    chunk_lists = {}
    for processes in (0, 2, None):  # None: the default, a process per core (2 to RAG_INGEST_ACTIVE_DOCUMENTS)
        runtime, _ = runtime_factory(gated=False, parse_processes=processes)
        runtime.start(run_worker=False, wait=True)
        assert (runtime._parse_pool is not None) == (processes != 0)
        good = submit(runtime, "almanac.pdf", docs.ALMANAC_PDF)
        bad = submit(runtime, "truncated.pdf", docs.ALMANAC_PDF[: len(docs.ALMANAC_PDF) // 3])
        runtime.worker.drain()
        assert runtime.records.get(good.id).status is Status.READY
        failed = runtime.records.get(bad.id)
        assert failed.status is Status.FAILED and "PDF" in failed.error, failed.error
        page = DocumentReader(runtime.records, runtime.store).chunks(good.id, limit=1000, offset=0)
        chunk_lists[processes] = [chunk.text for chunk in page.chunks]
        runtime.stop()
    assert chunk_lists[0] and chunk_lists[0] == chunk_lists[2] == chunk_lists[None]


def test_a_parsing_process_that_dies_is_replaced_and_its_document_tried_again(runtime_factory):
    # A parse process killed (for memory, say): without a new one, every later document would fail.
    runtime, _ = runtime_factory(gated=False, parse_processes=1)
    runtime.start(run_worker=False, wait=True)
    pool = runtime._parse_pool
    first = submit(runtime, "first.pdf", docs.ALMANAC_PDF)
    runtime.worker.drain()
    (killed,) = pool.process_ids()
    os.kill(killed, signal.SIGKILL)
    second = submit(runtime, "second.pdf", docs.MANUAL_PDF)
    runtime.worker.drain()
    for record in (first, second):
        assert runtime.records.get(record.id).status is Status.READY, runtime.records.get(record.id).error
    assert killed not in pool.process_ids() and len(pool.process_ids()) == 1


def test_a_document_slower_than_its_lease_is_claimed_once_when_drained(runtime_factory):
    # drain() (the eval harness, the benches) holds documents without the worker's own thread: their leases
    # must still be renewed, or the same drain claims a slow document again and ingests it twice.
    runtime, gate = runtime_factory(job_lease_seconds=2)
    runtime.start(run_worker=False, wait=True)
    record = submit(runtime, "manual.pdf", docs.MANUAL_PDF)
    claims = []
    claim_next = runtime.records.claim_next

    def counted(owner, **options):
        claimed = claim_next(owner, **options)
        if claimed is not None:
            claims.append(claimed.id)
        return claimed

    runtime.records.claim_next = counted
    drained = threading.Thread(target=runtime.worker.drain, daemon=True)
    drained.start()
    assert gate.paused.wait(60)
    time.sleep(5)  # mid-document, past two leases
    gate.gate.set()
    drained.join(120)
    done = runtime.records.get(record.id)
    assert claims == [record.id]
    assert done.status is Status.READY and done.chunks == done.chunks_written and done.chunks > 2


def test_parsing_processes_leave_when_the_service_is_killed_outright():
    # kill -9 or the OOM killer give the service no chance to stop its pool; its processes must not stay
    # behind waiting for work (each crash would leave them running).
    script = (
        "import time\n"
        "from ingest.parsing.parse_pool import ParsePool\n"
        "pool = ParsePool(2)\n"
        "pool.warm_up()\n"
        "while len(pool.process_ids()) < 2: time.sleep(0.1)\n"
        "print(*pool.process_ids(), flush=True)\n"
        "time.sleep(600)\n"
    )
    service = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, cwd=REPO)
    try:
        children = [int(pid) for pid in service.stdout.readline().split()]
        assert len(children) == 2 and all(Path(f"/proc/{pid}").exists() for pid in children)
    finally:
        service.kill()
        service.wait()

    def gone(pid: int) -> bool:
        try:
            return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"  # a zombie has left
        except FileNotFoundError:
            return True

    wait_until(lambda: all(gone(pid) for pid in children), 15, "the parsing processes to leave")
