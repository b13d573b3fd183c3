"""Accepting, deleting and recovering documents. Knows nothing of HTTP; the API and the CLI both call it."""

from __future__ import annotations

import logging
import os
import re
import socket
import threading
import time
import unicodedata
import uuid
from dataclasses import dataclass
from pathlib import PurePosixPath, PureWindowsPath
from typing import Any, BinaryIO

from ingest.audit import AuditTrail
from ingest.errors import BatchTooLarge, InvalidRequest, StoreError
from ingest.parsing.detect import DocType, detect_type
from ingest.parsing.limits import IngestLimits
from ingest.ports import ChunkStore
from ingest.storage.files import FileStore, StagedFile
from ingest.storage.records import DocumentRecord, DocumentRecords, NewDocument, Status

log = logging.getLogger(__name__)

COLLECTION_PATTERN = r"^[A-Za-z0-9](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9])?$"
COLLECTION_NAME = re.compile(COLLECTION_PATTERN.removesuffix("$"))
MAX_FILENAME_CHARS = 255
MAX_SOURCE_CHARS = 1024
# The ids this service makes (uuid4 hex): an imported document keeps its id only when it is one of these.
KEPT_ID = re.compile(r"[0-9a-f]{32}")
# A half-copied upload this old belongs to a process that died (another live one may be copying now).
STALE_UPLOAD_SECONDS = 3600


@dataclass(frozen=True, slots=True)
class PreparedUpload:
    staged: StagedFile
    filename: str
    doc_type: DocType
    # An import keeps the document's id (where the target has no such id) and its version count.
    document_id: str | None = None
    version: int = 1


@dataclass(frozen=True, slots=True)
class Submitted:
    record: DocumentRecord  # the document, or the new version of one being ingested (``record.replaces``)
    duplicate: bool

    @property
    def document_id(self) -> str:
        return self.record.document_id


# Who made a write, for the audit trail, where no API key did: the CLI on this machine, or an open service.
LOCAL_ACTOR = "local"


def process_identity() -> str:
    """Who is working on a document: host, pid, and a token telling this run from an earlier one that had
    the same pid (in a container the service is often pid 1 at every start)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def owner_is_alive(owner: str | None, me: str, lease_until: float | None = None) -> bool:
    """Whether another live process may still be working on a document it claimed: on this host, whether its
    process runs; on another host (which cannot be asked), whether its lease still holds."""
    if not owner or owner == me:
        return False
    host, _, rest = owner.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname():
        return lease_until is not None and lease_until > time.time()
    if not pid.isdigit() or int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def validate_collection(name: str) -> str:
    if not COLLECTION_NAME.fullmatch(name):
        raise InvalidRequest(
            "collection names are 1-63 letters, digits, '-' or '_', starting and ending with a letter or digit",
            ("body", "collection"),
        )
    return name


def clean_filename(name: str | None) -> str:
    """The file's name as shown to users: the last path component, printable, bounded."""
    name = name or ""
    name = PureWindowsPath(PurePosixPath(name).name).name
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C").strip()
    return name[:MAX_FILENAME_CHARS] or "unnamed"


def clean_source(source: str) -> str:
    """A source as given at upload: printable, bounded, not blank (any path-like name is kept whole: a
    synced folder's relative paths tell its files apart)."""
    cleaned = "".join(ch for ch in source if unicodedata.category(ch)[0] != "C").strip()
    if not cleaned:
        raise InvalidRequest("a source must not be blank", ("body", "source"))
    if len(cleaned) > MAX_SOURCE_CHARS:
        raise InvalidRequest(f"a source has at most {MAX_SOURCE_CHARS} characters", ("body", "source"))
    return cleaned


def finish_delete(
    records: DocumentRecords, files: FileStore, store: ChunkStore, write_lock: threading.Lock, record: DocumentRecord
) -> None:
    """Remove what a document hidden as ``deleting`` (or a version retired by a swap) still holds: its
    chunks and vectors, its original, then its record (last: until then recovery finishes the job)."""
    with write_lock:
        store.delete_document(record.collection, record.key)
    files.remove(record.key)
    records.remove(record.id)


class IngestService:
    def __init__(
        self,
        records: DocumentRecords,
        files: FileStore,
        store: ChunkStore,
        limits: IngestLimits,
        audit: AuditTrail | None = None,
    ):
        self.records = records
        self.audit = audit or AuditTrail()
        self.files = files
        self.store = store
        self.limits = limits
        # Held around every chunk write and every delete, so a delete never races a write.
        self.write_lock = threading.Lock()
        self.work_available = threading.Event()
        self.identity = process_identity()

    def check_batch(self, count: int) -> None:
        """Refuse at once a batch that could never fit in the queue (retrying it would never help)."""
        if count > self.limits.queue_max:
            raise BatchTooLarge(
                f"this upload has {count} files but the ingestion queue holds at most {self.limits.queue_max}"
                " (RAG_INGEST_QUEUE_MAX); send them in smaller batches"
            )

    def prepare(
        self, content: BinaryIO, filename: str | None, *, document_id: str | None = None, version: int = 1
    ) -> PreparedUpload:
        """Copy, hash, size-check and type-check an upload. Raises a DocumentError saying what is wrong."""
        name = clean_filename(filename)
        staged = self.files.stage(content, self.limits.max_upload_bytes)
        try:
            doc_type = detect_type(staged.path, name)
        except BaseException:
            self.files.discard(staged)
            raise
        return PreparedUpload(staged, name, doc_type, document_id, version)

    def discard(self, prepared: PreparedUpload) -> None:
        self.files.discard(prepared.staged)

    def commit(
        self,
        prepared: list[PreparedUpload],
        collection: str,
        metadata: dict[str, Any],
        *,
        source: str | None = None,
        replace: bool = False,
        actor: str = LOCAL_ACTOR,
        action: str = "upload",
    ) -> list[Submitted]:
        """Queue prepared uploads, all or none; the same bytes in the same collection return the existing
        document. Raises QueueFull (nothing queued) when they do not fit in the queue.

        ``source`` names the document across versions (by default each file's name; one source for one
        file). With ``replace``, a file whose source names a document of the collection becomes its next
        version: ingested beside it and swapped in when ready (ReplaceConflict while another is under way).
        """
        if source is not None and len(prepared) > 1:
            raise InvalidRequest("a source names one document: send one file with it", ("body", "source"))
        validate_collection(collection)
        self.check_batch(len(prepared))
        uploads = []
        try:
            for item in prepared:
                document_id = item.document_id
                if document_id is None or not KEPT_ID.fullmatch(document_id) or self.records.id_taken(document_id):
                    document_id = self.records.new_id()
                self.files.keep(item.staged, document_id)  # the file exists before any worker can claim it
                uploads.append(
                    NewDocument(
                        document_id=document_id,
                        collection=collection,
                        filename=item.filename,
                        content_type=item.doc_type.value,
                        size=item.staged.size,
                        sha256=item.staged.sha256,
                        metadata=metadata,
                        source=clean_source(source) if source is not None else item.filename,
                        replace=replace,
                        version=item.version,
                    )
                )
            added = self.records.add_many(uploads, queue_max=self.limits.queue_max)
        except BaseException:
            for upload in uploads:
                self.files.remove(upload.document_id)
            for item in prepared[len(uploads) :]:
                self.files.discard(item.staged)
            raise
        submitted = []
        for upload, (record, duplicate) in zip(uploads, added, strict=True):
            if duplicate:
                self.files.remove(upload.document_id)  # the content is already stored under the existing id
            elif record.key != upload.document_id:
                # Queued under an earlier id (a failed copy tried again, or a new version): the bytes go there.
                self.files.rename(upload.document_id, record.key)
            item = Submitted(record, duplicate)
            if not duplicate:
                log.info(
                    "queued document %s (%s, version %d) in %s",
                    item.document_id,
                    record.filename,
                    record.version,
                    collection,
                )
                self.audit.record("replace" if record.replaces else action, record, actor=actor)
            submitted.append(item)
        if any(not item.duplicate for item in submitted):
            self.work_available.set()
        return submitted

    def submit(
        self,
        content: BinaryIO,
        filename: str | None,
        collection: str,
        metadata: dict[str, Any],
        *,
        source: str | None = None,
        replace: bool = False,
        actor: str = LOCAL_ACTOR,
    ) -> Submitted:
        prepared = [self.prepare(content, filename)]
        return self.commit(prepared, collection, metadata, source=source, replace=replace, actor=actor)[0]

    def delete(self, document_id: str, *, within: frozenset[str] | None = None, actor: str = LOCAL_ACTOR) -> bool:
        """Remove a document (and a new version of it being ingested) with every one of its chunks. Returns
        False if there is no such document (or it is in none of the collections ``within``, when given)."""
        records = self.records.mark_deleting(document_id, self.identity, within=within)  # hidden from here on
        if not records:
            return False
        document = records[0]
        self.audit.record("delete", document, actor=actor)
        for record in records:
            try:
                self._finish_delete(record)
            except Exception as exc:
                log.exception("deleting %s failed", record.id)
                raise StoreError(
                    f"the store could not remove the chunks of document {document.id} ({type(exc).__name__}:"
                    f" {exc}); it is hidden from retrieval and the delete is retried at the next start"
                ) from exc
        log.info("deleted document %s from %s", document.id, document.collection)
        return True

    def reindex(self, collection: str) -> list[str]:
        """Drop the collection's chunks and queue all its documents again, to be embedded anew from their kept
        originals (after a change of embedding model or chunking). Returns the ids queued."""
        with self.write_lock:
            self.store.drop_collection(collection)
            queued = self.records.requeue_collection(collection)
        self.work_available.set()
        log.info("collection %s: %d documents queued to be embedded again", collection, len(queued))
        return queued

    def _finish_delete(self, record: DocumentRecord) -> None:
        finish_delete(self.records, self.files, self.store, self.write_lock, record)

    def recover(self) -> None:
        """Put the state a killed process left behind in order. Run once before the worker starts.

        Deletes that were cut short are finished; documents cut short mid-ingestion lose their partial
        chunks and go back to the queue, to be ingested again from their kept original. Work that another
        live process on this host (a `rag ingest` beside `rag serve`) holds is left alone. A document that
        cannot be put in order (its store fails) is logged and left hidden; it never stops the start.
        """
        self.files.clear_staging(older_than_seconds=STALE_UPLOAD_SECONDS)
        for record in self.records.unfinished():
            if owner_is_alive(record.owner, self.identity, record.lease_until):
                continue
            try:
                self._recover(record)
            except Exception as exc:
                log.exception("could not recover document %s", record.id)
                if record.status is Status.PROCESSING:
                    self.records.mark_failed(
                        record.id,
                        f"interrupted, and its partial chunks could not be removed ({type(exc).__name__}: {exc});"
                        " delete it and upload it again",
                        chunks_left=True,
                    )
        # Originals a crash left without a record (copied, but never queued).
        kept = self.files.document_ids(older_than_seconds=STALE_UPLOAD_SECONDS)
        for orphan in set(kept) - self.records.storage_keys():
            self.files.remove(orphan)
        if self.records.count(Status.QUEUED):
            self.work_available.set()

    def _recover(self, record: DocumentRecord) -> None:
        if record.status is Status.DELETING:
            self._finish_delete(record)  # on failure it stays hidden in `deleting`, retried at the next start
            log.warning("finished interrupted delete of %s", record.id)
            return
        with self.write_lock:
            self.store.delete_document(record.collection, record.key)
        self.records.requeue(record.id)
        log.warning("document %s was interrupted mid-ingestion; queued again", record.id)
