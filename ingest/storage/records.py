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

from ingest.errors import DocumentBeingDeleted, QueueFull
from ingest.storage.db import Database, SqliteDatabase
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
        uploading it again is asking for another try.
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
            queued = 0
            for upload in uploads:
                existing = cursor.execute(
                    "SELECT * FROM documents WHERE collection = ? AND sha256 = ?", (upload.collection, upload.sha256)
                ).fetchone()
                if existing is not None and existing["status"] == Status.DELETING:
                    raise DocumentBeingDeleted(
                        f"{upload.filename}: the same file is being deleted from this collection; retry shortly"
                    )
                if existing is not None and existing["status"] != Status.FAILED:
                    results.append((DocumentRecord.from_row(existing), True))
                    continue
                if existing is not None:
                    cursor.execute(
                        "UPDATE documents SET status = ?, error = NULL, chunks = NULL, chunks_written = 0,"
                        " filename = ?, metadata = ?, updated_at = ? WHERE id = ?",
                        (Status.QUEUED, upload.filename, json.dumps(upload.metadata), now, existing["id"]),
                    )
                    document_id = existing["id"]
                else:
                    document_id = upload.document_id
                    cursor.execute(
                        "INSERT INTO documents (id, collection, filename, content_type, bytes, sha256, status,"
                        " metadata, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (
                            document_id,
                            upload.collection,
                            upload.filename,
                            upload.content_type,
                            upload.size,
                            upload.sha256,
                            Status.QUEUED,
                            json.dumps(upload.metadata),
                            now,
                            now,
                        ),
                    )
                queued += 1
                row = cursor.execute("SELECT * FROM documents WHERE id = ?", (document_id,)).fetchone()
                results.append((DocumentRecord.from_row(row), False))
            if waiting + queued > queue_max:
                raise QueueFull(
                    f"the ingestion queue holds at most {queue_max} documents (RAG_INGEST_QUEUE_MAX) and"
                    f" {waiting} are waiting, so these {queued} do not fit; retry later"
                )
        return results

    def get(self, document_id: str) -> DocumentRecord | None:
        return self._fetch_one("SELECT * FROM documents WHERE id = ? AND status != ?", (document_id, Status.DELETING))

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
        where, params = ["status != ?"], [Status.DELETING]
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

    def ids(self) -> set[str]:
        with self._db.read() as cursor:
            return {row["id"] for row in cursor.execute("SELECT id FROM documents").fetchall()}

    def collection_exists(self, collection: str) -> bool:
        found = self._scalar(
            "SELECT 1 AS found FROM documents WHERE collection = ? AND status != ? LIMIT 1",
            (collection, Status.DELETING),
        )
        return found is not None

    def hidden_document_ids(self, collection: str) -> list[str]:
        """Documents whose chunks may be partly in the store: retrieval filters these out. A failed document
        keeps ``chunks_written`` above 0 only when its partial chunks could not be removed."""
        with self._db.read() as cursor:
            rows = cursor.execute(
                f"SELECT id FROM documents WHERE collection = ? AND (status IN ({','.join('?' * len(NOT_VISIBLE))})"
                " OR (status = ? AND chunks_written > 0))",
                (collection, *NOT_VISIBLE, Status.FAILED),
            ).fetchall()
        return [row["id"] for row in rows]

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
    ) -> DocumentRecord | None:
        """Hide the document at once and return it; None if it does not exist (or is outside ``within``).

        A document already being deleted is returned too: deleting it again retries a delete whose store
        failed (removing chunks twice is harmless).
        """
        with self._db.transaction() as cursor:
            row = cursor.execute(
                f"SELECT * FROM documents WHERE id = ?{self._db.skip_locked}", (document_id,)
            ).fetchone()
            if row is None or (within is not None and row["collection"] not in within):
                return None
            cursor.execute(
                "UPDATE documents SET status = ?, owner = ?, updated_at = ? WHERE id = ?",
                (Status.DELETING, owner, _now(), document_id),
            )
        return DocumentRecord.from_row(row)

    def remove(self, document_id: str) -> None:
        with self._db.transaction() as cursor:
            cursor.execute("DELETE FROM documents WHERE id = ?", (document_id,))
