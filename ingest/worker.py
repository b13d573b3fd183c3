"""The background worker: takes queued documents one at a time and ingests them off the request path.

One worker per process is deliberate: embedding already uses every core through PyTorch's threads, so a
second document in parallel would only make both slower.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from ingest.detect import DocType
from ingest.errors import DocumentError
from ingest.pipeline import Cancelled, DocumentPipeline
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
            if not self.run_once():
                self._service.work_available.wait(POLL_SECONDS)
                self._service.work_available.clear()

    def run_once(self) -> bool:
        """Ingest the next queued document, if any. Returns whether there was one."""
        record = self._records.claim_next(self._service.identity)
        if record is None:
            return False
        self._ingest(record)
        return True

    def _ingest(self, record: DocumentRecord) -> None:
        log.info("ingesting %s (%s)", record.id, record.filename)
        try:
            path = self._service.files.path(record.id)
            if not path.exists():
                raise DocumentError("the uploaded file is missing from storage; upload it again")
            plan = self._pipeline.plan(path, DocType(record.content_type))
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
