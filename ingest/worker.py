"""The background worker: ingests queued documents off the request path, a batch of each in turn.

One worker per process is deliberate: embedding already uses every core through PyTorch's threads, so a
second embedding thread would only make both slower. Instead the worker holds a few documents at once
(``active_documents``) and writes one batch of each in turn, so a long document never holds up a short one
queued behind it: the short one is ready after a batch or two of the long one, not after all of it.
Documents are read meanwhile, each by a reader thread: parsed in a pool of processes (ingest/parsing/parse_pool.py;
a thread parsing in this process would hold the GIL the embedder needs between PyTorch calls), then
chunked, so the embedder rarely waits for a parser.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass

from ingest.errors import DocumentError, ReplaceConflict, StoreError
from ingest.parsing.detect import DocType
from ingest.pipeline import Cancelled, DocumentPipeline, Plan
from ingest.ports import Chunk, ChunkStore, IngestEvents, NoEvents
from ingest.service import IngestService, finish_delete
from ingest.storage.files import FileStore
from ingest.storage.records import DocumentRecord, DocumentRecords

log = logging.getLogger(__name__)

# How often an idle worker looks at the queue even when not woken (another process may have queued).
POLL_SECONDS = 2.0
# How often the pages read so far are recorded while a PDF is parsed.
PAGE_PROGRESS_SECONDS = 0.5


@dataclass(slots=True)
class _Job:
    """A claimed document: its plan (parsed and chunked in a reader thread), then how far it is written."""

    record: DocumentRecord
    plan: Future[Plan]
    chunks: list[Chunk] | None = None  # set once writing has started
    written: int = 0


@dataclass(frozen=True, slots=True)
class WorkerDeps:
    """What the worker works with, handed in: the queue (records), the kept originals, the chunk store, the
    lock every chunk write and delete of this process holds, the event uploads set to wake it, and the
    identity its claims carry."""

    records: DocumentRecords
    files: FileStore
    store: ChunkStore
    write_lock: threading.Lock
    wake: threading.Event
    identity: str

    @classmethod
    def of(cls, service: IngestService) -> WorkerDeps:
        """Those of an ingestion service in the same process (the uploads it commits wake the worker)."""
        return cls(
            service.records, service.files, service.store, service.write_lock, service.work_available, service.identity
        )


class IngestWorker:
    def __init__(
        self,
        deps: WorkerDeps,
        pipeline: DocumentPipeline,
        events: IngestEvents | None = None,
        *,
        active_documents: int = 4,
        lease_seconds: float = 60.0,
    ):
        self._deps = deps
        self._lease_seconds = lease_seconds
        self._me = deps.identity
        self._events = events or NoEvents()
        self._records = deps.records
        self._pipeline = pipeline
        self._active_documents = active_documents
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._renewal: threading.Thread | None = None
        self._renewal_lock = threading.Lock()

    def start(self) -> None:
        # Published only once started: a stop() racing this (the app shutting down while the model loads)
        # must not join a thread that has not started. A thread started after the stop exits at once.
        thread = threading.Thread(target=self._run, name="ingest-worker", daemon=True)
        thread.start()
        self._thread = thread

    def request_stop(self) -> None:
        self._stopping.set()
        self._deps.wake.set()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop after the current batch; interrupted documents go back to the queue."""
        self.request_stop()
        if self._thread is not None:
            self._thread.join(timeout)

    def _renewing_leases(self) -> None:
        """Starts the lease heartbeat, once, before the first claim: whoever drives the worker (its own thread,
        or a caller of drain() or run_once()) holds documents only while their leases are renewed. Without it
        a document that took longer than a lease was claimed again by the same drain and ingested twice."""
        with self._renewal_lock:
            if self._renewal is None:
                self._renewal = threading.Thread(target=self._renew_leases, name="ingest-lease", daemon=True)
                self._renewal.start()

    def _renew_leases(self) -> None:
        """Keep this process's claims alive while it works, so a long document is never taken over from a
        live worker; a worker that dies stops renewing, and its documents are claimed again once the lease
        runs out."""
        while not self._stopping.wait(self._lease_seconds / 3):
            try:
                self._records.renew_leases(self._me, lease_seconds=self._lease_seconds)
            except Exception:
                log.exception("could not renew the ingestion leases; retrying")

    def _run(self) -> None:
        while not self._stopping.is_set():
            if not self.drain():
                self._deps.wake.wait(POLL_SECONDS)
                self._deps.wake.clear()

    def run_once(self) -> bool:
        """Ingest the next queued document, if any, alone and to the end. Returns whether there was one."""
        record = self._claim()
        if record is None:
            return False
        planned: Future[Plan] = Future()
        try:
            planned.set_result(self._plan(record))
        except Exception as exc:
            planned.set_exception(exc)
        job = _Job(record, planned)
        while not self._advance(job):
            pass
        return True

    def drain(self) -> int:
        """Ingest queued documents until none is left, a batch of each active document in turn, claiming
        new ones as others finish. Returns how many were finished (ready, failed or deleted)."""
        done = 0
        active: list[_Job] = []
        readers = ThreadPoolExecutor(max_workers=self._active_documents, thread_name_prefix="ingest-read")
        try:
            while not self._stopping.is_set():
                while len(active) < self._active_documents:
                    record = self._claim()
                    if record is None:
                        break
                    active.append(_Job(record, readers.submit(self._plan, record)))
                if not active:
                    break
                job = next((job for job in active if job.plan.done()), None)
                if job is None:  # every active document is still being read: wait for one (or new work)
                    wait([job.plan for job in active], timeout=POLL_SECONDS, return_when=FIRST_COMPLETED)
                    continue
                active.remove(job)
                if self._advance(job):
                    done += 1
                else:
                    active.append(job)  # to the back: the others get their batch first
        finally:
            readers.shutdown(wait=False, cancel_futures=True)
            for job in active:
                self._put_back(job)
        return done

    def _claim(self) -> DocumentRecord | None:
        self._renewing_leases()
        return self._records.claim_next(self._me, lease_seconds=self._lease_seconds)

    def _plan(self, record: DocumentRecord) -> Plan:
        path = self._deps.files.path(record.key)
        if not path.exists():
            raise DocumentError("the uploaded file is missing from storage; upload it again")
        return self._pipeline.plan(path, DocType(record.content_type), record.filename, self._page_recorder(record.id))

    def _page_recorder(self, document_id: str) -> Callable[[int, int], None]:
        """Records pages read as a PDF is parsed, at most every PAGE_PROGRESS_SECONDS (one SQLite write)."""
        last = 0.0

        def record_pages(pages_parsed: int, pages: int) -> None:
            nonlocal last
            now = time.monotonic()
            if now - last >= PAGE_PROGRESS_SECONDS or pages_parsed == pages:
                last = now
                self._records.set_parsing(document_id, pages_parsed=pages_parsed, pages=pages, owner=self._me)

        return record_pages

    def _advance(self, job: _Job) -> bool:
        """Write the job's next batch (starting it first if need be). Returns whether it is finished."""
        record = job.record
        try:
            if job.chunks is None:
                log.info("ingesting %s (%s)", record.id, record.filename)
                plan = job.plan.result()
                if not self._records.set_plan(record.id, pages=plan.pages, chunks=len(plan.chunks), owner=self._me):
                    raise Cancelled(record.id)
                self._remove_chunks(record)  # leftovers of an interrupted earlier run, if any
                job.chunks = plan.chunks
            if job.written < len(job.chunks):
                job.written = self._pipeline.write_batch(
                    record,
                    job.chunks,
                    job.written,
                    write_guard=lambda: self._deps.write_lock,
                    on_progress=self._progress_recorder(record.id),
                )
                if job.written < len(job.chunks):
                    return False
            if record.replaces:
                self._swap_in(record)
            elif not self._records.mark_ready(record.id, owner=self._me):
                raise Cancelled(record.id)
            self._events.document_ready(len(job.chunks))
            log.info("document %s version %d ready: %d chunks", record.id, record.version, len(job.chunks))
        except Cancelled:
            if not self._stopping.is_set():
                log.info("document %s was deleted while being ingested", record.id)
            else:
                self._put_back(job)
        except (DocumentError, StoreError, ReplaceConflict) as exc:
            self._fail(record, str(exc))
        except Exception as exc:
            log.exception("ingesting %s failed", record.id)
            self._fail(record, f"internal error while ingesting: {type(exc).__name__}: {exc}")
        return True

    def _swap_in(self, version: DocumentRecord) -> None:
        """Make a new version, written whole, its document's current one (one transaction: retrieval sees the
        old chunks until then and the new ones after), then remove the old version's chunks and original."""
        retired = self._records.promote(version.id, owner=self._me)
        if retired is None:
            raise Cancelled(version.id)
        log.info("document %s is now version %d", version.replaces, version.version)
        try:
            deps = self._deps
            finish_delete(deps.records, deps.files, deps.store, deps.write_lock, retired)
        except Exception:  # hidden already; recovery at the next start removes it
            log.exception("could not remove the replaced version of %s; the next start will", version.replaces)

    def _put_back(self, job: _Job) -> None:
        """Return an interrupted document to the queue (the worker is stopping)."""
        job.plan.cancel()
        try:
            # Partial chunks go first, while the document is still ours: once queued, another worker may
            # claim it and start writing.
            if job.chunks is not None:
                self._remove_chunks(job.record)
        except Exception:
            log.exception("could not remove partial chunks of %s; the next start will", job.record.id)
            return  # still `processing`: recovery at the next start removes them and queues it again
        if self._records.requeue(job.record.id, owner=self._me):
            log.info("document %s interrupted by shutdown; queued again", job.record.id)

    def _progress_recorder(self, document_id: str) -> Callable[[int], bool]:
        def record_progress(written: int) -> bool:
            if self._stopping.is_set():
                return False
            return self._records.set_progress(document_id, written, owner=self._me)

        return record_progress

    def _remove_chunks(self, record: DocumentRecord) -> None:
        with self._deps.write_lock:
            self._deps.store.delete_document(record.collection, record.key)

    def _fail(self, record: DocumentRecord, reason: str) -> None:
        # Never leave a half-indexed document visible: its chunks go before the failure is recorded, and if
        # they cannot be removed it is recorded so that retrieval keeps hiding it.
        chunks_left = False
        try:
            self._remove_chunks(record)
        except Exception:
            log.exception("could not remove partial chunks of %s", record.id)
            chunks_left = True
        if self._records.mark_failed(record.id, reason, chunks_left=chunks_left, owner=self._me):
            self._events.document_failed()
        log.warning("document %s failed: %s", record.id, reason)
