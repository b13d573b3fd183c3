"""Accepting, deleting and recovering documents. Knows nothing of HTTP; the API and the CLI both call it."""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import threading
import unicodedata
import uuid
from dataclasses import dataclass
from pathlib import PurePosixPath, PureWindowsPath
from typing import Any, BinaryIO

from ingest.detect import DocType, detect_type
from ingest.errors import InvalidRequest, QueueFull
from ingest.files import FileStore, StagedFile
from ingest.pipeline import RESERVED_METADATA_KEYS
from ingest.ports import ChunkStore
from ingest.records import DocumentRecord, DocumentRecords, Status

log = logging.getLogger(__name__)

COLLECTION_NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9])?$")
MAX_FILENAME_CHARS = 255
# A half-copied upload this old belongs to a process that died (another live one may be copying now).
STALE_UPLOAD_SECONDS = 3600


@dataclass(frozen=True, slots=True)
class PreparedUpload:
    staged: StagedFile
    filename: str
    doc_type: DocType


@dataclass(frozen=True, slots=True)
class Submitted:
    record: DocumentRecord
    duplicate: bool


def process_identity() -> str:
    """Who is working on a document: host, pid, and a token telling this run from an earlier one that had
    the same pid (in a container the service is often pid 1 at every start)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def owner_is_alive(owner: str | None, me: str) -> bool:
    """Whether another live process on this host may still be working on a document it claimed."""
    if not owner or owner == me:
        return False
    host, _, rest = owner.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit() or int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def validate_collection(name: str) -> str:
    if not COLLECTION_NAME.match(name):
        raise InvalidRequest(
            "collection names are 1-63 letters, digits, '-' or '_', starting and ending with a letter or digit"
        )
    return name


def parse_metadata(raw: str | dict[str, Any] | None) -> dict[str, Any]:
    """User metadata: a flat JSON object of strings, numbers and booleans, stored on every chunk."""
    if raw is None or raw == "":
        return {}
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise InvalidRequest(f"metadata is not valid JSON: {exc.msg}") from exc
    if not isinstance(raw, dict):
        raise InvalidRequest("metadata must be a JSON object")
    for key, value in raw.items():
        if key in RESERVED_METADATA_KEYS:
            raise InvalidRequest(f"metadata key {key!r} is reserved")
        if not key or len(key) > 128:
            raise InvalidRequest("metadata keys must be 1-128 characters")
        if value is None or not isinstance(value, str | int | float | bool):
            raise InvalidRequest(f"metadata value for {key!r} must be a string, number or boolean")
    return raw


def clean_filename(name: str | None) -> str:
    """The file's name as shown to users: the last path component, printable, bounded."""
    name = name or ""
    name = PureWindowsPath(PurePosixPath(name).name).name
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C").strip()
    return name[:MAX_FILENAME_CHARS] or "unnamed"


class IngestService:
    def __init__(
        self,
        records: DocumentRecords,
        files: FileStore,
        store: ChunkStore,
        *,
        max_upload_bytes: int,
        queue_max: int,
    ):
        self.records = records
        self.files = files
        self.store = store
        self._max_upload_bytes = max_upload_bytes
        self._queue_max = queue_max
        # Held around every chunk write and every delete, so a delete never races a write.
        self.write_lock = threading.Lock()
        self.work_available = threading.Event()
        self.identity = process_identity()

    def check_capacity(self, incoming: int = 1) -> None:
        if self.records.count(Status.QUEUED) + incoming > self._queue_max:
            raise QueueFull(f"{self._queue_max} documents are already waiting to be ingested; retry later")

    def prepare(self, source: BinaryIO, filename: str | None) -> PreparedUpload:
        """Copy, hash, size-check and type-check an upload. Raises a DocumentError saying what is wrong."""
        name = clean_filename(filename)
        staged = self.files.stage(source, self._max_upload_bytes)
        try:
            doc_type = detect_type(staged.path, name)
        except BaseException:
            self.files.discard(staged)
            raise
        return PreparedUpload(staged, name, doc_type)

    def discard(self, prepared: PreparedUpload) -> None:
        self.files.discard(prepared.staged)

    def commit(self, prepared: PreparedUpload, collection: str, metadata: dict[str, Any]) -> Submitted:
        """Queue a prepared upload; the same bytes in the same collection return the existing document."""
        validate_collection(collection)
        staged = prepared.staged
        document_id = self.records.new_id()
        self.files.keep(staged, document_id)  # the file exists before any worker can claim its record
        try:
            record, duplicate = self.records.add_or_get(
                document_id=document_id,
                collection=collection,
                filename=prepared.filename,
                content_type=prepared.doc_type.value,
                size=staged.size,
                sha256=staged.sha256,
                metadata=metadata,
            )
        except BaseException:
            self.files.remove(document_id)
            raise
        if duplicate:
            self.files.remove(document_id)  # the content is already stored under the existing id
        elif record.id != document_id:
            # A failed earlier copy was queued again under its old id: it gets these (identical) bytes.
            self.files.rename(document_id, record.id)
        if not duplicate:
            self.work_available.set()
            log.info("queued document %s (%s) in %s", record.id, record.filename, collection)
        return Submitted(record, duplicate)

    def submit(self, source: BinaryIO, filename: str | None, collection: str, metadata: dict[str, Any]) -> Submitted:
        self.check_capacity()
        return self.commit(self.prepare(source, filename), collection, metadata)

    def delete(self, document_id: str) -> bool:
        """Remove a document and every one of its chunks. Returns False if there is no such document."""
        record = self.records.mark_deleting(document_id, self.identity)  # invisible to readers from here on
        if record is None:
            return False
        self._finish_delete(record)
        log.info("deleted document %s from %s", record.id, record.collection)
        return True

    def _finish_delete(self, record: DocumentRecord) -> None:
        with self.write_lock:
            self.store.delete_document(record.collection, record.id)
        self.files.remove(record.id)
        self.records.remove(record.id)

    def recover(self) -> None:
        """Put the state a killed process left behind in order. Run once before the worker starts.

        Deletes that were cut short are finished; documents cut short mid-ingestion lose their partial
        chunks and go back to the queue, to be ingested again from their kept original. Work that another
        live process on this host (a `rag ingest` beside `rag serve`) holds is left alone.
        """
        self.files.clear_staging(older_than_seconds=STALE_UPLOAD_SECONDS)
        for record in self.records.unfinished():
            if owner_is_alive(record.owner, self.identity):
                continue
            if record.status is Status.DELETING:
                self._finish_delete(record)
                log.warning("finished interrupted delete of %s", record.id)
                continue
            with self.write_lock:
                self.store.delete_document(record.collection, record.id)
            self.records.requeue(record.id)
            log.warning("document %s was interrupted mid-ingestion; queued again", record.id)
        # Originals a crash left without a record (copied, but never queued).
        for orphan in set(self.files.document_ids()) - self.records.ids():
            self.files.remove(orphan)
        if self.records.count(Status.QUEUED):
            self.work_available.set()
