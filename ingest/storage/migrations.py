"""Versioned schema migrations for the records database, SQLite or PostgreSQL.

Each migration runs once, in its own transaction, and is recorded in ``schema_migrations``; a database is
brought up to date when it is opened. Migrations are only ever appended: a released one is never edited, so
any earlier release's database upgrades. On PostgreSQL an advisory lock lets many processes start together.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from ingest.storage.db import Cursor, Database, Dialect

_DOCUMENTS = """
CREATE TABLE IF NOT EXISTS documents (
    id TEXT PRIMARY KEY,
    collection TEXT NOT NULL,
    filename TEXT NOT NULL,
    content_type TEXT NOT NULL,
    bytes BIGINT NOT NULL,
    sha256 TEXT NOT NULL,
    status TEXT NOT NULL,
    error TEXT,
    pages INTEGER,
    chunks INTEGER,
    chunks_written INTEGER NOT NULL DEFAULT 0,
    pages_parsed INTEGER NOT NULL DEFAULT 0,
    metadata TEXT NOT NULL DEFAULT '{}',
    owner TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    UNIQUE (collection, sha256)
)"""


def _documents(cursor: Cursor, dialect: Dialect) -> None:
    cursor.execute(_DOCUMENTS)
    if dialect == "sqlite":
        # A file from before migrations were versioned may lack the newest column of that time.
        columns = {row["name"] for row in cursor.execute("PRAGMA table_info(documents)").fetchall()}
        if "pages_parsed" not in columns:
            cursor.execute("ALTER TABLE documents ADD COLUMN pages_parsed INTEGER NOT NULL DEFAULT 0")
    cursor.execute("CREATE INDEX IF NOT EXISTS documents_status ON documents (status, created_at)")
    cursor.execute("CREATE INDEX IF NOT EXISTS documents_collection ON documents (collection, created_at)")


def _leases(cursor: Cursor, dialect: Dialect) -> None:
    # Seconds since the epoch until which the owner holds a processing document; past it, anyone may take it.
    cursor.execute("ALTER TABLE documents ADD COLUMN lease_until DOUBLE PRECISION")


def _chunk_keywords(cursor: Cursor, dialect: Dialect) -> None:
    if dialect != "postgresql":  # SQLite keeps its keyword index in FTS5 tables of its own file
        return
    cursor.execute(
        "CREATE TABLE IF NOT EXISTS chunk_keywords (collection TEXT NOT NULL, chunk_id TEXT NOT NULL,"
        " document_id TEXT NOT NULL, words TSVECTOR NOT NULL, length INTEGER NOT NULL,"
        " PRIMARY KEY (collection, chunk_id))"
    )
    cursor.execute("CREATE INDEX IF NOT EXISTS chunk_keywords_words ON chunk_keywords USING GIN (words)")
    cursor.execute("CREATE INDEX IF NOT EXISTS chunk_keywords_document ON chunk_keywords (collection, document_id)")


def _versions(cursor: Cursor, dialect: Dialect) -> None:
    # source: the name that stays across versions (the file name until now). version: how many times it was
    # replaced. storage_key: where the current version's chunks and original are (NULL: under the id).
    # replaces: set on a new version being ingested beside the document it will replace (hidden until then).
    cursor.execute("ALTER TABLE documents ADD COLUMN source TEXT")
    cursor.execute("UPDATE documents SET source = filename")
    cursor.execute("ALTER TABLE documents ADD COLUMN version INTEGER NOT NULL DEFAULT 1")
    cursor.execute("ALTER TABLE documents ADD COLUMN storage_key TEXT")
    cursor.execute("ALTER TABLE documents ADD COLUMN replaces TEXT")
    cursor.execute("CREATE INDEX IF NOT EXISTS documents_source ON documents (collection, source)")
    cursor.execute("CREATE INDEX IF NOT EXISTS documents_replaces ON documents (replaces)")
    # Bumped in the transaction that swaps a new version in: a search that read which documents are hidden
    # before a swap, and the store after it, sees the number move and searches again (never neither version).
    cursor.execute(
        "CREATE TABLE IF NOT EXISTS collection_generations (collection TEXT PRIMARY KEY, generation INTEGER NOT NULL)"
    )


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    apply: Callable[[Cursor, Dialect], None]


MIGRATIONS = [
    Migration(1, "documents", _documents),
    Migration(2, "job leases", _leases),
    Migration(3, "keyword index (PostgreSQL)", _chunk_keywords),
    Migration(4, "document versions", _versions),
]


def migrate(db: Database) -> list[int]:
    """Apply the migrations this database lacks, oldest first. Returns the versions applied."""
    with db.transaction() as cursor:
        if db.dialect == "postgresql":
            cursor.execute("SELECT pg_advisory_xact_lock(7402)")  # one migrating process at a time
        cursor.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL,"
            " applied_at TEXT NOT NULL)"
        )
    applied = []
    for migration in MIGRATIONS:
        with db.transaction() as cursor:
            if db.dialect == "postgresql":
                cursor.execute("SELECT pg_advisory_xact_lock(7402)")  # one migrating process at a time
            done = cursor.execute("SELECT 1 FROM schema_migrations WHERE version = ?", (migration.version,))
            if done.fetchone() is not None:
                continue
            migration.apply(cursor, db.dialect)
            cursor.execute(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                (migration.version, migration.name, datetime.now(UTC).isoformat(timespec="seconds")),
            )
            applied.append(migration.version)
    return applied


def schema_version(db: Database) -> int:
    with db.read() as cursor:
        row = cursor.execute("SELECT MAX(version) AS version FROM schema_migrations").fetchone()
    return int(row["version"] or 0) if row else 0
