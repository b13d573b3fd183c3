"""The records and the ingestion queue on both databases: SQLite (the default) and a real PostgreSQL."""

from __future__ import annotations

import sqlite3
import threading
import time

import pytest

from ingest.storage.db import open_database
from ingest.storage.migrations import MIGRATIONS, schema_version
from ingest.storage.records import DocumentRecords, NewDocument, Status


@pytest.fixture(params=["sqlite", "postgresql"])
def records(request, tmp_path):
    url = request.getfixturevalue("postgres").new_database() if request.param == "postgresql" else None
    records = DocumentRecords(open_database(url, tmp_path / "records.sqlite3"))
    yield records
    records.close()


def queue(records: DocumentRecords, count: int, collection: str = "default") -> list[str]:
    uploads = [
        NewDocument(records.new_id(), collection, f"d{i}.txt", "text/plain", 10, f"sha{i}-{collection}", {})
        for i in range(count)
    ]
    return [record.id for record, _ in records.add_many(uploads, queue_max=1000)]


def test_the_schema_is_versioned_and_opening_again_changes_nothing(records):
    assert schema_version(records.database) == MIGRATIONS[-1].version
    again = DocumentRecords(records.database)
    assert schema_version(again.database) == MIGRATIONS[-1].version


def test_concurrent_claims_never_take_the_same_document(records):
    ids = queue(records, 12)
    claimed: list[str] = []
    lock = threading.Lock()

    def claim_all(owner: str) -> None:
        while (record := records.claim_next(owner, lease_seconds=60)) is not None:
            with lock:
                claimed.append(record.id)

    threads = [threading.Thread(target=claim_all, args=(f"host:{n}:x",)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(claimed) == sorted(ids)


def test_an_expired_lease_is_taken_over_and_fences_out_its_old_owner(records):
    [document_id] = queue(records, 1)
    first = records.claim_next("host-a:101:aa", lease_seconds=0.5)
    assert first.id == document_id and first.worker == "host-a:101"
    assert records.claim_next("host-b:202:bb", lease_seconds=60) is None  # held
    time.sleep(0.7)
    second = records.claim_next("host-b:202:bb", lease_seconds=60)
    assert second is not None and second.id == document_id and second.worker == "host-b:202"
    # The first owner, back from a stall, can no longer move it.
    assert not records.set_progress(document_id, 3, owner="host-a:101:aa")
    assert not records.mark_ready(document_id, owner="host-a:101:aa")
    assert records.mark_ready(document_id, owner="host-b:202:bb")
    assert records.get(document_id).status is Status.READY and records.get(document_id).worker is None


def test_a_renewed_lease_is_not_taken(records):
    [document_id] = queue(records, 1)
    records.claim_next("host-a:101:aa", lease_seconds=0.6)
    for _ in range(3):
        time.sleep(0.3)
        assert records.renew_leases("host-a:101:aa", lease_seconds=0.6) == 1
        assert records.claim_next("host-b:202:bb", lease_seconds=60) is None
    assert records.get(document_id).owner == "host-a:101:aa"


def test_a_sqlite_file_from_before_versioned_migrations_is_upgraded(tmp_path):
    path = tmp_path / "documents.sqlite3"
    legacy = sqlite3.connect(path)
    legacy.executescript(
        """CREATE TABLE documents (id TEXT PRIMARY KEY, collection TEXT NOT NULL, filename TEXT NOT NULL,
        content_type TEXT NOT NULL, bytes INTEGER NOT NULL, sha256 TEXT NOT NULL, status TEXT NOT NULL,
        error TEXT, pages INTEGER, chunks INTEGER, chunks_written INTEGER NOT NULL DEFAULT 0,
        metadata TEXT NOT NULL DEFAULT '{}', owner TEXT, created_at TEXT NOT NULL, updated_at TEXT NOT NULL,
        UNIQUE (collection, sha256));
        INSERT INTO documents VALUES ('old', 'default', 'a.txt', 'text/plain', 3, 'abc', 'ready', NULL, NULL, 2, 2,
        '{}', NULL, '2026-01-01T00:00:00', '2026-01-01T00:00:00');"""
    )
    legacy.close()
    records = DocumentRecords(path)
    assert schema_version(records.database) == MIGRATIONS[-1].version
    old = records.get("old")
    assert old.status is Status.READY and old.pages_parsed == 0 and old.lease_until is None
    records.close()
