"""Document records, in SQLite or PostgreSQL (ingest/storage/db.py): the source of truth for what exists and in
which state.

The table doubles as the ingestion queue (status ``queued``), so the queue survives restarts and every
process that opens the same database sees the same jobs. A worker claims a document with a lease
(RAG_JOB_LEASE_SECONDS) that it renews while it works; a document whose lease ran out (its worker died) is
claimed again by the next worker that looks. Every write a worker makes names it as the owner, so a worker
that lost its lease can no longer move the document.
"""

from __future__ import annotations

import enum
import json
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ingest.chunk_ids import storage_key
from ingest.errors import DocumentBeingDeleted, QueueFull, ReplaceConflict
from ingest.storage.db import Cursor, Database, SqliteDatabase
from ingest.storage.migrations import migrate


class Status(enum.StrEnum):
    QUEUED = "queued"
    PROCESSING = "processing"
    READY = "ready"
    FAILED = "failed"
    # Internal: chunks are being removed; the record disappears when that is done.
    DELETING = "deleting"


# The share of a document's progress that is parsing; the rest is embedding and writing its chunks, which
# takes most of the time on a CPU (pypdf reads ~40 pages/s on one core; the embedder takes ~3-10 a second).
PARSE_SHARE = 0.1

# Documents whose chunks may be in the store without being complete: retrieval must not see them.
NOT_VISIBLE = (Status.PROCESSING, Status.DELETING)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


@dataclass(frozen=True, slots=True)
class NewDocument:
    """An upload about to be queued (its file already kept under ``document_id``)."""

    document_id: str
    collection: str
    filename: str
    content_type: str
    size: int
    sha256: str
    metadata: dict[str, Any]
    source: str = ""  # stable across versions; the file name when empty
    replace: bool = False  # take the place of the document of the same source (a new version of it)
    version: int = 1  # an imported document keeps its count

    @property
    def source_name(self) -> str:
        return self.source or self.filename


@dataclass(frozen=True, slots=True)
class DocumentRecord:
    id: str
    collection: str
    filename: str
    content_type: str
    bytes: int
    sha256: str
    status: Status
    error: str | None
    pages: int | None
    chunks: int | None
    chunks_written: int
    metadata: dict[str, Any] = field(default_factory=dict)
    pages_parsed: int = 0
    owner: str | None = None  # the process working on it (see ingest.service.process_identity)
    created_at: str = ""
    updated_at: str = ""
    lease_until: float | None = None  # seconds since the epoch: the owner's claim on a processing document
    source: str = ""  # the name that stays across versions (by default the file name)
    version: int = 1
    storage_key: str | None = None  # where this version's chunks and original are stored (None: under the id)
    replaces: str | None = None  # a new version being ingested: the id of the document it will replace

    @property
    def document_id(self) -> str:
        """The document this row is (or, for a new version under way, will become)."""
        return self.replaces or self.id

    @property
    def key(self) -> str:
        """The storage key of this version (ingest/chunk_ids.py): its chunks' ids, its vectors, its original."""
        return self.storage_key or self.id

    @property
    def worker(self) -> str | None:
        """``host:pid`` of the worker processing it, for operators; None when no worker holds it."""
        if self.status is not Status.PROCESSING or not self.owner:
            return None
        host, _, rest = self.owner.partition(":")
        return f"{host}:{rest.partition(':')[0]}"

    @property
    def progress(self) -> float:
        """Fraction of the document's work done: 1.0 when ready. Reading a PDF's pages counts for the first
        PARSE_SHARE of it (so a long PDF shows progress while it is parsed), writing its chunks for the rest."""
        if self.status is Status.READY:
            return 1.0
        if self.status is not Status.PROCESSING:
            return 0.0
        if self.chunks:  # parsed and chunked: writing
            return round(PARSE_SHARE + (1 - PARSE_SHARE) * self.chunks_written / self.chunks, 4)
        return round(PARSE_SHARE * self.pages_parsed / self.pages, 4) if self.pages else 0.0

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> DocumentRecord:
        values = dict(row)
        values["status"] = Status(values["status"])
        values["metadata"] = json.loads(values["metadata"])
        values["source"] = values.get("source") or values["filename"]
        return cls(**values)


class DocumentRecords:
    def __init__(self, db: Database | Path):
        self._db = db if not isinstance(db, Path) else SqliteDatabase(db)
        migrate(self._db)

    @property
    def database(self) -> Database:
        return self._db

    def close(self) -> None:
        self._db.close()

    def _fetch_one(self, sql: str, params: Sequence[Any] = ()) -> DocumentRecord | None:
        with self._db.read() as cursor:
            row = cursor.execute(sql, params).fetchone()
        return DocumentRecord.from_row(row) if row else None

    def _scalar(self, sql: str, params: Sequence[Any] = ()) -> Any:
        with self._db.read() as cursor:
            row = cursor.execute(sql, params).fetchone()
        return next(iter(row.values())) if row else None

    # --- creation and lookup -------------------------------------------------------------------------

    @staticmethod
    def new_id() -> str:
        return uuid.uuid4().hex

    def add_many(self, uploads: Sequence[NewDocument], *, queue_max: int) -> list[tuple[DocumentRecord, bool]]:
        """Queue documents in one transaction; each that has the same content in its collection as an existing
        one returns that one instead. Returns (record, duplicate) per upload, in order.

        All or nothing: if the documents this adds to the queue would take it past ``queue_max``, none is
        added (QueueFull). The count is taken inside the write transaction, so concurrent uploads cannot
        overshoot the bound together. A failed earlier copy is queued again under its old id, since the user
        uploading it again is asking for another try. An upload with ``replace`` whose source names a document
        is queued as that document's next version (see _add_version).
        """
        now = _now()
        results: list[tuple[DocumentRecord, bool]] = []
        with self._db.transaction() as cursor:
            if self._db.dialect == "postgresql":
                # Uploads on other API processes count the queue too: one at a time, as SQLite's write lock.
                cursor.execute("SELECT pg_advisory_xact_lock(7401)")
            waiting = cursor.execute(
                "SELECT COUNT(*) AS n FROM documents WHERE status = ?", (Status.QUEUED,)
            ).fetchone()["n"]
            for upload in uploads:
                results.append(self._add_one(cursor, upload, now))
            queued = sum(1 for _, duplicate in results if not duplicate)
            if waiting + queued > queue_max:
                raise QueueFull(
                    f"the ingestion queue holds at most {queue_max} documents (RAG_INGEST_QUEUE_MAX) and"
                    f" {waiting} are waiting, so these {queued} do not fit; retry later"
                )
        return results

    def _add_one(self, cursor: Cursor, upload: NewDocument, now: str) -> tuple[DocumentRecord, bool]:
        existing = cursor.execute(
            "SELECT * FROM documents WHERE collection = ? AND sha256 = ?", (upload.collection, upload.sha256)
        ).fetchone()
        if existing is not None and existing["status"] == Status.DELETING:
            raise DocumentBeingDeleted(
                f"{upload.filename}: the same file is being deleted from this collection; retry shortly"
            )
        if existing is not None and existing["status"] != Status.FAILED:
            return DocumentRecord.from_row(existing), True
        if existing is not None:
            document_id = existing["id"]
            self._queue_again(cursor, document_id, upload, now)
        elif upload.replace and (current := self._by_source(cursor, upload)) is not None:
            document_id = self._add_version(cursor, current, upload, now)
        else:
            document_id = upload.document_id
            self._insert(cursor, document_id, upload, now)
        record = self._fetch_row(cursor, document_id)
        assert record is not None  # written in this transaction
        return record, False

    @staticmethod
    def _insert(
        cursor: Cursor,
        document_id: str,
        upload: NewDocument,
        now: str,
        *,
        version: int | None = None,
        replaces: str | None = None,
    ) -> None:
        cursor.execute(
            "INSERT INTO documents (id, collection, filename, content_type, bytes, sha256, status, metadata, source,"
            " version, replaces, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                document_id,
                upload.collection,
                upload.filename,
                upload.content_type,
                upload.size,
                upload.sha256,
                Status.QUEUED,
                json.dumps(upload.metadata),
                upload.source_name,
                version or upload.version,
                replaces,
                now,
                now,
            ),
        )

    @staticmethod
    def _queue_again(cursor: Cursor, document_id: str, upload: NewDocument, now: str) -> None:
        """A failed document (or failed new version) gets this upload's content and goes back in the queue."""
        cursor.execute(
            "UPDATE documents SET status = ?, error = NULL, chunks = NULL, chunks_written = 0, filename = ?,"
            " content_type = ?, bytes = ?, sha256 = ?, metadata = ?, updated_at = ? WHERE id = ?",
            (
                Status.QUEUED,
                upload.filename,
                upload.content_type,
                upload.size,
                upload.sha256,
                json.dumps(upload.metadata),
                now,
                document_id,
            ),
        )

    @staticmethod
    def _by_source(cursor: Cursor, upload: NewDocument) -> DocumentRecord | None:
        rows = cursor.execute(
            "SELECT * FROM documents WHERE collection = ? AND source = ? AND replaces IS NULL AND status != ?",
            (upload.collection, upload.source_name, Status.DELETING),
        ).fetchall()
        if len(rows) > 1:
            raise ReplaceConflict(
                f"{upload.source_name}: {len(rows)} documents in {upload.collection!r} have this source, so which"
                " one to replace is unclear; delete all but one"
            )
        return DocumentRecord.from_row(rows[0]) if rows else None

    def _add_version(self, cursor: Cursor, current: DocumentRecord, upload: NewDocument, now: str) -> str:
        """Queue ``upload`` as the next version of ``current``: a hidden row of its own (its id is the new
        version's storage key), ingested beside the current version until promote() swaps it in. Returns its id."""
        if current.status in (Status.QUEUED, Status.PROCESSING):
            raise ReplaceConflict(
                f"{upload.source_name}: document {current.id} is being ingested; replace it once it is ready"
            )
        pending = cursor.execute(
            "SELECT * FROM documents WHERE replaces = ? AND status != ?", (current.id, Status.DELETING)
        ).fetchone()
        if pending is not None and pending["status"] != Status.FAILED:
            raise ReplaceConflict(
                f"{upload.source_name}: version {pending['version']} of document {current.id} is being ingested;"
                " replace it again once that is done"
            )
        if pending is not None:  # a new version that failed: this one takes its place in the queue
            self._queue_again(cursor, pending["id"], upload, now)
            return pending["id"]
        version = current.version + 1
        document_id = storage_key(current.id, version)
        self._insert(cursor, document_id, upload, now, version=version, replaces=current.id)
        return document_id

    def get(self, document_id: str, *, being_deleted: bool = False) -> DocumentRecord | None:
        """The document (never a new version of one); one being deleted only when ``being_deleted``."""
        sql, params = "SELECT * FROM documents WHERE id = ? AND replaces IS NULL", [document_id]
        if not being_deleted:
            sql += " AND status != ?"
            params.append(Status.DELETING)
        return self._fetch_one(sql, params)

    def pending_versions(self, document_ids: Sequence[str]) -> dict[str, DocumentRecord]:
        """The new version being ingested (or failed) of each of these documents that has one, by document id."""
        if not document_ids:
            return {}
        with self._db.read() as cursor:
            rows = cursor.execute(
                f"SELECT * FROM documents WHERE replaces IN ({','.join('?' * len(document_ids))}) AND status != ?",
                (*document_ids, Status.DELETING),
            ).fetchall()
        return {row["replaces"]: DocumentRecord.from_row(row) for row in rows}

    def list(
        self,
        *,
        collection: str | None = None,
        status: Status | None = None,
        limit: int = 100,
        offset: int = 0,
        within: frozenset[str] | None = None,
    ) -> tuple[list[DocumentRecord], int]:
        """Documents, oldest first; ``within`` limits them to those collections (a scoped API key)."""
        where, params = ["status != ?", "replaces IS NULL"], [Status.DELETING]
        if collection is not None:
            where.append("collection = ?")
            params.append(collection)
        if within is not None:
            where.append(f"collection IN ({','.join('?' * len(within))})" if within else "1 = 0")
            params.extend(sorted(within))
        if status is not None:
            where.append("status = ?")
            params.append(status)
        clause = " AND ".join(where)
        with self._db.read() as cursor:
            total = cursor.execute(f"SELECT COUNT(*) AS n FROM documents WHERE {clause}", params).fetchone()["n"]
            rows = cursor.execute(
                f"SELECT * FROM documents WHERE {clause} ORDER BY created_at, id LIMIT ? OFFSET ?",
                [*params, limit, offset],
            ).fetchall()
        return [DocumentRecord.from_row(row) for row in rows], total

    def count(self, status: Status) -> int:
        return int(self._scalar("SELECT COUNT(*) AS n FROM documents WHERE status = ?", (status,)))

    def id_taken(self, document_id: str) -> bool:
        """Whether a record has this id, or stores a version under it."""
        found = self._scalar(
            "SELECT 1 AS found FROM documents WHERE id = ? OR storage_key = ? LIMIT 1", (document_id, document_id)
        )
        return found is not None

    def storage_keys(self) -> set[str]:
        """Every storage key a record names (the kept originals are stored under these)."""
        with self._db.read() as cursor:
            rows = cursor.execute("SELECT id, storage_key FROM documents").fetchall()
        return {row["id"] for row in rows} | {row["storage_key"] for row in rows if row["storage_key"]}

    def collection_exists(self, collection: str) -> bool:
        found = self._scalar(
            "SELECT 1 AS found FROM documents WHERE collection = ? AND status != ? AND replaces IS NULL LIMIT 1",
            (collection, Status.DELETING),
        )
        return found is not None

    def hidden_document_ids(self, collection: str) -> list[str]:
        """Storage keys whose chunks may be partly in the store, or belong to a version not (or no longer)
        current: retrieval filters these out. A failed document keeps ``chunks_written`` above 0 only when its
        partial chunks could not be removed."""
        with self._db.read() as cursor:
            rows = cursor.execute(
                "SELECT COALESCE(storage_key, id) AS storage_key FROM documents WHERE collection = ? AND"
                f" (status IN ({','.join('?' * len(NOT_VISIBLE))}) OR (status = ? AND chunks_written > 0))",
                (collection, *NOT_VISIBLE, Status.FAILED),
            ).fetchall()
        return [row["storage_key"] for row in rows]

    def current_storage_keys(self, document_ids: Sequence[str]) -> list[str]:
        """Where the current versions of these documents are stored (those that exist)."""
        if not document_ids:
            return []
        with self._db.read() as cursor:
            rows = cursor.execute(
                "SELECT COALESCE(storage_key, id) AS storage_key FROM documents WHERE replaces IS NULL AND"
                f" id IN ({','.join('?' * len(document_ids))})",
                tuple(document_ids),
            ).fetchall()
        return [row["storage_key"] for row in rows]

    def generation(self, collection: str) -> int:
        """How many new versions were swapped into the collection: a search compares it before and after."""
        return int(
            self._scalar("SELECT generation FROM collection_generations WHERE collection = ?", (collection,)) or 0
        )

    # --- the queue -----------------------------------------------------------------------------------

    def claim_next(self, owner: str, *, lease_seconds: float = 60.0) -> DocumentRecord | None:
        """Atomically move the oldest queued document (or one whose worker's lease ran out) to
        ``processing`` for ``owner``, leased for ``lease_seconds``, and return it. Concurrent claimers on
        PostgreSQL skip each other's locked rows instead of waiting."""
        now = time.time()
        with self._db.transaction() as cursor:
            row = cursor.execute(
                "SELECT id, status FROM documents WHERE status = ? OR (status = ? AND lease_until < ?)"
                f" ORDER BY created_at, id LIMIT 1{self._db.skip_locked}",
                (Status.QUEUED, Status.PROCESSING, now),
            ).fetchone()
            if row is None:
                return None
            cursor.execute(
                "UPDATE documents SET status = ?, chunks = NULL, chunks_written = 0, pages_parsed = 0, owner = ?,"
                " lease_until = ?, updated_at = ? WHERE id = ?",
                (Status.PROCESSING, owner, now + lease_seconds, _now(), row["id"]),
            )
            claimed = cursor.execute("SELECT * FROM documents WHERE id = ?", (row["id"],)).fetchone()
        return DocumentRecord.from_row(claimed)

    def renew_leases(self, owner: str, *, lease_seconds: float) -> int:
        """Extend the lease on every document ``owner`` is processing; how many it holds."""
        with self._db.transaction() as cursor:
            return cursor.execute(
                "UPDATE documents SET lease_until = ? WHERE owner = ? AND status = ?",
                (time.time() + lease_seconds, owner, Status.PROCESSING),
            ).rowcount

    def unfinished(self) -> list[DocumentRecord]:
        """Documents a previous process left mid-way (processing, or being deleted)."""
        with self._db.read() as cursor:
            rows = cursor.execute(
                "SELECT * FROM documents WHERE status IN (?, ?)", (Status.PROCESSING, Status.DELETING)
            ).fetchall()
        return [DocumentRecord.from_row(row) for row in rows]

    def _update(self, document_id: str, only_if: Status | None = None, owner: str | None = None, **values: Any) -> bool:
        values["updated_at"] = _now()
        assignments = ", ".join(f"{name} = ?" for name in values)
        sql = f"UPDATE documents SET {assignments} WHERE id = ?"
        params: list[Any] = [*values.values(), document_id]
        if only_if is not None:
            sql += " AND status = ?"
            params.append(only_if)
        if owner is not None:  # the fence: a worker whose lease was taken over moves nothing
            sql += " AND owner = ?"
            params.append(owner)
        with self._db.transaction() as cursor:
            return cursor.execute(sql, params).rowcount == 1

    def set_parsing(self, document_id: str, *, pages_parsed: int, pages: int, owner: str | None = None) -> bool:
        return self._update(document_id, Status.PROCESSING, owner, pages=pages, pages_parsed=pages_parsed)

    def set_plan(self, document_id: str, *, pages: int | None, chunks: int, owner: str | None = None) -> bool:
        return self._update(
            document_id, Status.PROCESSING, owner, pages=pages, pages_parsed=pages or 0, chunks=chunks, chunks_written=0
        )

    def set_progress(self, document_id: str, chunks_written: int, *, owner: str | None = None) -> bool:
        return self._update(document_id, Status.PROCESSING, owner, chunks_written=chunks_written)

    def mark_ready(self, document_id: str, *, owner: str | None = None) -> bool:
        return self._update(document_id, Status.PROCESSING, owner, status=Status.READY, error=None)

    def mark_failed(
        self, document_id: str, reason: str, *, chunks_left: bool = False, owner: str | None = None
    ) -> bool:
        """``chunks_left``: its partial chunks could not be removed, so it stays hidden from retrieval."""
        return self._update(
            document_id, Status.PROCESSING, owner, status=Status.FAILED, error=reason, chunks_written=int(chunks_left)
        )

    def requeue(self, document_id: str, *, owner: str | None = None) -> bool:
        return self._update(document_id, Status.PROCESSING, owner, status=Status.QUEUED, chunks_written=0)

    def requeue_collection(self, collection: str) -> list[str]:
        """Queue every ready or failed document of the collection again (to embed it anew); their ids."""
        with self._db.transaction() as cursor:
            rows = cursor.execute(
                "SELECT id FROM documents WHERE collection = ? AND status IN (?, ?)",
                (collection, Status.READY, Status.FAILED),
            ).fetchall()
            cursor.execute(
                "UPDATE documents SET status = ?, error = NULL, chunks = NULL, chunks_written = 0, updated_at = ?"
                " WHERE collection = ? AND status IN (?, ?)",
                (Status.QUEUED, _now(), collection, Status.READY, Status.FAILED),
            )
        return [row["id"] for row in rows]

    def collections(self) -> list[str]:
        with self._db.read() as cursor:
            rows = cursor.execute("SELECT DISTINCT collection FROM documents ORDER BY collection").fetchall()
        return [row["collection"] for row in rows]

    def mark_deleting(
        self, document_id: str, owner: str, *, within: frozenset[str] | None = None
    ) -> list[DocumentRecord]:
        """Hide the document at once, with any new version of it being ingested, and return them (the document
        first); none if it does not exist (or is outside ``within``).

        A document already being deleted is returned too: deleting it again retries a delete whose store
        failed (removing chunks twice is harmless).
        """
        with self._db.transaction() as cursor:
            row = cursor.execute(
                f"SELECT * FROM documents WHERE id = ? AND replaces IS NULL{self._db.skip_locked}", (document_id,)
            ).fetchone()
            if row is None or (within is not None and row["collection"] not in within):
                return []
            versions = cursor.execute("SELECT * FROM documents WHERE replaces = ?", (document_id,)).fetchall()
            cursor.execute(
                "UPDATE documents SET status = ?, owner = ?, updated_at = ? WHERE id = ? OR replaces = ?",
                (Status.DELETING, owner, _now(), document_id, document_id),
            )
        return [DocumentRecord.from_row(row) for row in (row, *versions)]

    def promote(self, version_id: str, *, owner: str) -> DocumentRecord | None:
        """Swap a new version, written whole, in for the document it replaces, in one transaction: the document
        keeps its id and takes the version's content, storage key and counts; the version's row now names the
        old storage key, as ``deleting``, so that retrieval hides the old chunks from the same instant it shows
        the new ones. The collection's generation moves on (see generation()).

        Returns that row, for the caller to remove the old chunks and original and then the row (recovery
        finishes it after a crash); None when the version is no longer this owner's to swap (it was deleted,
        or its lease taken over). Raises ReplaceConflict when the document is not ready or failed (a
        re-index queued it meanwhile).
        """
        now = _now()
        with self._db.transaction() as cursor:
            row = cursor.execute(
                "SELECT * FROM documents WHERE id = ? AND status = ? AND owner = ? AND replaces IS NOT NULL",
                (version_id, Status.PROCESSING, owner),
            ).fetchone()
            if row is None:
                return None
            new = DocumentRecord.from_row(row)
            current = self._fetch_row(cursor, new.replaces)
            if current is None or current.status not in (Status.READY, Status.FAILED):
                raise ReplaceConflict(
                    f"document {new.replaces} was queued again (re-indexed) while its version {new.version} was"
                    " ingested; upload the new version again once it is ready"
                )
            # The version's row first gives up its content hash (unique per collection) and names the old key.
            cursor.execute(
                "UPDATE documents SET status = ?, storage_key = ?, sha256 = ?, updated_at = ? WHERE id = ?",
                (Status.DELETING, current.key, f"retired:{new.id}", now, new.id),
            )
            cursor.execute(
                "UPDATE documents SET status = ?, error = NULL, storage_key = ?, version = ?, filename = ?,"
                " content_type = ?, bytes = ?, sha256 = ?, pages = ?, pages_parsed = ?, chunks = ?,"
                " chunks_written = ?, metadata = ?, owner = NULL, lease_until = NULL, updated_at = ? WHERE id = ?",
                (
                    Status.READY,
                    new.key,
                    new.version,
                    new.filename,
                    new.content_type,
                    new.bytes,
                    new.sha256,
                    new.pages,
                    new.pages_parsed,
                    new.chunks,
                    new.chunks,
                    json.dumps(new.metadata),
                    now,
                    current.id,
                ),
            )
            cursor.execute(
                "INSERT INTO collection_generations (collection, generation) VALUES (?, 1) ON CONFLICT (collection)"
                " DO UPDATE SET generation = collection_generations.generation + 1",
                (current.collection,),
            )
            return self._fetch_row(cursor, new.id)

    @staticmethod
    def _fetch_row(cursor: Cursor, document_id: str | None) -> DocumentRecord | None:
        row = cursor.execute("SELECT * FROM documents WHERE id = ?", (document_id,)).fetchone()
        return DocumentRecord.from_row(row) if row else None

    def remove(self, document_id: str) -> None:
        with self._db.transaction() as cursor:
            cursor.execute("DELETE FROM documents WHERE id = ?", (document_id,))
