"""Parsing in worker processes, with the page progress a parse in this process gives, and a time limit.

Processes take parsing out of this process's GIL: a thread that parses here holds it most of the time, and
the embedder (whose PyTorch calls come back to Python between operations) and the API wait for it. Each
process reports pages read through one queue, handed to it when it starts; a thread here routes each report
to the callback of the document it is about.

Processes also make parsing stoppable, which a thread is not. A pathological document can cost far more to
parse than its size suggests (a 51 KB PDF once held pypdf for 380 s); past ``IngestLimits.parse_timeout_s``
its process is stopped and replaced, and the document fails with a reason that names RAG_PARSE_TIMEOUT_S.
The pool is pebble's: it times each task from when a process starts it (not while it waits its turn), and
stops and replaces only the process that ran over, or died, while the others go on with their documents.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
import time
import uuid
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

from pebble import ProcessExpired, ProcessPool

from ingest.errors import DocumentError
from ingest.parsing.detect import DocType
from ingest.parsing.limits import IngestLimits
from ingest.parsing.parsers import PageCallback, ParsedDocument, parse

log = logging.getLogger(__name__)

# How long a parse's last reports may trail its result (they travel apart, through the queue).
REPORTS_GRACE_SECONDS = 5.0


class ParseTimedOut(DocumentError):
    pass


class ParsePool:
    def __init__(self, processes: int):
        # spawn, not fork: this process already runs threads (the server, PyTorch's pools).
        self._context = multiprocessing.get_context("spawn")
        self.processes = processes
        self._reports = self._context.Queue()
        self._pool = self._new_pool()
        self._pool_lock = threading.Lock()
        self._listeners: dict[str, tuple[PageCallback | None, threading.Event]] = {}
        self._started: list[int] = []
        self._lock = threading.Lock()
        self._router = threading.Thread(target=self._route, name="parse-reports", daemon=True)
        self._router.start()

    def _new_pool(self) -> ProcessPool:
        return ProcessPool(
            max_workers=self.processes,
            initializer=_start_in_pool,
            initargs=(self._reports, os.getpid()),
            context=self._context,
        )

    def warm_up(self) -> None:
        """Start the processes now (a spawned one takes a second or two to import), not with the first
        document."""
        for _ in range(self.processes):
            self._pool.schedule(int)

    def process_ids(self) -> list[int]:
        """The pool's processes that are running now (a stopped one is replaced by a new one)."""
        with self._lock:
            self._started = [pid for pid in self._started if _running(pid)]
            return list(self._started)

    def parse(
        self, path: Path, doc_type: DocType, limits: IngestLimits, on_page: PageCallback | None = None
    ) -> ParsedDocument:
        """As parsers.parse, in one of the pool's processes; ``on_page`` runs in this process's router
        thread, in page order, every call before this returns.

        A process that dies (killed for memory, say) is replaced, and its document tried once more, so only a
        document that kills its process twice fails. One that runs past its time fails at once. A process that
        dies idle leaves pebble's pool broken ("All workers expired"): a new pool takes its place."""
        for _ in range(2):
            pool = self._pool
            try:
                return self._parse_in(pool, path, doc_type, limits, on_page)
            except ProcessExpired as exc:
                log.warning("a parsing process died while reading %s (%s); trying it once more", path.name, exc)
            except BrokenProcessPool:
                self._replace(pool, path)
        raise DocumentError("reading this document stopped the parsing process twice (out of memory?)")

    def _replace(self, broken: ProcessPool, path: Path) -> None:
        with self._pool_lock:
            if self._pool is broken:  # the first of its documents to get here starts the new one
                log.warning("the parsing pool broke while reading %s; starting it again", path.name)
                broken.stop()
                self._pool = self._new_pool()

    def _parse_in(
        self, pool: ProcessPool, path: Path, doc_type: DocType, limits: IngestLimits, on_page: PageCallback | None
    ) -> ParsedDocument:
        task = uuid.uuid4().hex
        reported = threading.Event()
        with self._lock:
            self._listeners[task] = (on_page, reported)
        try:
            try:
                future = pool.schedule(
                    _parse, args=(task, path, doc_type, limits, on_page is not None), timeout=limits.parse_timeout_s
                )
            except RuntimeError as exc:  # pebble's pool broke, or another document found it broken and stopped it
                raise BrokenProcessPool(str(exc)) from exc
            try:
                parsed = future.result()
            except TimeoutError:
                log.warning("parsing %s ran past %g s; its process was stopped", path.name, limits.parse_timeout_s)
                raise ParseTimedOut(
                    f"parsing the document took longer than {limits.parse_timeout_s:g} s, the most one document"
                    " may take (RAG_PARSE_TIMEOUT_S); it was stopped"
                ) from None
            if not reported.wait(REPORTS_GRACE_SECONDS):
                log.warning("the last reports of parsing %s did not arrive", path.name)
            return parsed
        finally:
            with self._lock:
                del self._listeners[task]

    def _route(self) -> None:
        while True:
            report = self._reports.get()
            if report is None:
                return
            task, kind, payload = report
            if kind == "started":
                with self._lock:
                    self._started.append(payload)
                continue
            with self._lock:
                listener = self._listeners.get(task)
            if listener is None:  # its parse has failed, and its caller has gone
                continue
            on_page, reported = listener
            try:
                if kind == "page" and on_page is not None:
                    on_page(*payload)
                elif kind == "end":
                    reported.set()
            except Exception:  # a callback's failure must not stop the reports of every other document
                log.exception("a parse report could not be handled")

    def shutdown(self) -> None:
        self._pool.stop()
        self._pool.join()
        self._reports.put(None)


def _running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except FileNotFoundError:
        return False


# --- in the pool's processes ----------------------------------------------------------------------------

_report_queue = None
# How often a pool process checks that the service that started it is still there.
PARENT_CHECK_SECONDS = 1.0


def _start_in_pool(queue, parent: int) -> None:
    """Each pool process's start: keep the report queue, and watch the service that started it.

    A service killed outright (kill -9, the OOM killer) cannot stop its pool, and the pool's processes hold
    both ends of their own queues, so they would wait for work forever: each leaves when its parent is gone,
    even if that happened while it was still starting (hence the parent's pid handed in, not read here).
    PR_SET_PDEATHSIG would follow the thread that started the process (a reader thread that comes and goes),
    not the service."""
    global _report_queue
    _report_queue = queue
    threading.Thread(target=_leave_with, args=(parent,), name="parent-watch", daemon=True).start()
    _report("", "started", os.getpid())


def _leave_with(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(PARENT_CHECK_SECONDS)
    os._exit(0)


def _report(task: str, kind: str, payload: object) -> None:
    _report_queue.put((task, kind, payload))


def _parse(task: str, path: Path, doc_type: DocType, limits: IngestLimits, report_pages: bool) -> ParsedDocument:
    on_page = (lambda number, pages: _report(task, "page", (number, pages))) if report_pages else None
    try:
        return parse(path, doc_type, limits, on_page)
    finally:
        _report(task, "end", None)
