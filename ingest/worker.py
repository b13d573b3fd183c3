"""The background worker: takes queued documents one at a time and ingests them off the request path.

One worker per process is deliberate: embedding already uses every core through PyTorch's threads, so a
second document in parallel would only make both slower.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

from ingest.detect import DocType
from ingest.errors import DocumentError
from ingest.pipeline import Cancelled, DocumentPipeline, Plan
from ingest.ports import IngestEvents, NoEvents
from ingest.records import DocumentRecord
from ingest.service import IngestService

log = logging.getLogger(__name__)

# How often an idle worker looks at the queue even when not woken (another process may have queued).
POLL_SECONDS = 2.0


class IngestWorker:
    def __init__(self, service: IngestService, pipeline: DocumentPipeline, events: IngestEvents | None = None):
        self._service = service
        self._events = events or NoEvents()
        self._records = service.records
        self._pipeline = pipeline
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="ingest-worker", daemon=True)
        self._thread.start()

    def request_stop(self) -> None:
        self._stopping.set()
        self._service.work_available.set()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop after the current batch; an interrupted document goes back to the queue."""
        self.request_stop()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stopping.is_set():
            if not self.drain():
                self._service.work_available.wait(POLL_SECONDS)
                self._service.work_available.clear()

    def run_once(self) -> bool:
        """Ingest the next queued document, if any, without reading ahead. Returns whether there was one."""
        record = self._records.claim_next(self._service.identity)
        if record is None:
            return False
        self._ingest(record, lambda: self._plan(record))
        return True

    def drain(self) -> int:
        """Ingest queued documents until none is left, reading the next one while this one embeds.

        Parsing and chunking are Python (they hold the GIL); embedding is PyTorch (it mostly does not), so
        reading document N+1 in a second thread overlaps with embedding document N. Returns how many.
        """
        done = 0
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="ingest-read") as reader:
            upcoming = self._claim_ahead(reader)
            while upcoming is not None:
                record, planned = upcoming
                if self._stopping.is_set():
                    planned.cancel()
                    self._records.requeue(record.id)  # claimed but not started: back to the queue
                    break
                upcoming = self._claim_ahead(reader)
                self._ingest(record, planned.result)
                done += 1
        return done

    def _claim_ahead(self, reader: ThreadPoolExecutor) -> tuple[DocumentRecord, Future[Plan]] | None:
        record = self._records.claim_next(self._service.identity)
        return None if record is None else (record, reader.submit(self._plan, record))

    def _plan(self, record: DocumentRecord) -> Plan:
        path = self._service.files.path(record.id)
        if not path.exists():
            raise DocumentError("the uploaded file is missing from storage; upload it again")
        return self._pipeline.plan(path, DocType(record.content_type))

    def _ingest(self, record: DocumentRecord, load_plan: Callable[[], Plan]) -> None:
        log.info("ingesting %s (%s)", record.id, record.filename)
        try:
            plan = load_plan()
            if not self._records.set_plan(record.id, pages=plan.pages, chunks=len(plan.chunks)):
                raise Cancelled(record.id)
            self._remove_chunks(record)  # leftovers of an interrupted earlier run, if any
            self._pipeline.write(
                record,
                plan.chunks,
                write_guard=lambda: self._service.write_lock,
                on_progress=self._progress_recorder(record.id),
            )
            if not self._records.mark_ready(record.id):
                raise Cancelled(record.id)
            self._events.document_ready(len(plan.chunks))
            log.info("document %s ready: %d chunks", record.id, len(plan.chunks))
        except Cancelled:
            if not self._stopping.is_set():
                log.info("document %s was deleted while being ingested", record.id)
                return
            # Partial chunks go first, while the document is still ours: once queued, another worker may
            # claim it and start writing.
            self._remove_chunks(record)
            if self._records.requeue(record.id):
                log.info("document %s interrupted by shutdown; queued again", record.id)
        except DocumentError as exc:
            self._fail(record, str(exc))
        except Exception as exc:
            log.exception("ingesting %s failed", record.id)
            self._fail(record, f"internal error while ingesting: {type(exc).__name__}: {exc}")

    def _progress_recorder(self, document_id: str) -> Callable[[int], bool]:
        def record_progress(written: int) -> bool:
            if self._stopping.is_set():
                return False
            return self._records.set_progress(document_id, written)

        return record_progress

    def _remove_chunks(self, record: DocumentRecord) -> None:
        with self._service.write_lock:
            self._service.store.delete_document(record.collection, record.id)

    def _fail(self, record: DocumentRecord, reason: str) -> None:
        # Never leave a half-indexed document behind: its chunks go before the failure is recorded.
        try:
            self._remove_chunks(record)
        except Exception:
            log.exception("could not remove partial chunks of %s", record.id)
        if self._records.mark_failed(record.id, reason):
            self._events.document_failed()
        log.warning("document %s failed: %s", record.id, reason)
