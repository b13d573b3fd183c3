"""One small access layer over SQLite (the embedded default) and PostgreSQL (RAG_DATABASE_URL).

Statements are written once, with ``?`` placeholders; the PostgreSQL side turns them into psycopg's
``%s``. Rows come back as dicts either way. ``transaction()`` is a write transaction that serialises
writers (SQLite: BEGIN IMMEDIATE on the one connection; PostgreSQL: a pooled connection's transaction, with
row locks where a statement asks for them); ``read()`` runs statements outside one.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal, Protocol

Dialect = Literal["sqlite", "postgresql"]


class Cursor(Protocol):
    def execute(self, sql: str, params: Sequence[Any] = ()) -> Result: ...


class Result(Protocol):
    rowcount: int

    def fetchone(self) -> dict[str, Any] | None: ...

    def fetchall(self) -> list[dict[str, Any]]: ...


class Database(Protocol):
    dialect: Dialect
    # Appended to a SELECT that claims rows: other transactions skip them instead of waiting.
    skip_locked: str

    def transaction(self) -> Iterator[Cursor]: ...

    def read(self) -> Iterator[Cursor]: ...

    def close(self) -> None: ...


class _SqliteResult:
    def __init__(self, cursor: sqlite3.Cursor):
        self._cursor = cursor
        self.rowcount = cursor.rowcount
        self.lastrowid = cursor.lastrowid

    def fetchone(self) -> dict[str, Any] | None:
        row = self._cursor.fetchone()
        return dict(row) if row is not None else None

    def fetchall(self) -> list[dict[str, Any]]:
        return [dict(row) for row in self._cursor.fetchall()]


class _SqliteCursor:
    def __init__(self, conn: sqlite3.Connection):
        self._conn = conn

    def execute(self, sql: str, params: Sequence[Any] = ()) -> _SqliteResult:
        return _SqliteResult(self._conn.execute(sql, tuple(params)))

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        self._conn.executemany(sql, rows)


class SqliteDatabase:
    """One connection shared by the process's threads under a lock; WAL lets other processes read."""

    dialect: Dialect = "sqlite"
    skip_locked = ""  # BEGIN IMMEDIATE already serialises writers

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
        self._conn.row_factory = sqlite3.Row
        self._lock = threading.RLock()
        with self._lock:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")

    @contextmanager
    def transaction(self) -> Iterator[_SqliteCursor]:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")  # the write lock now: no stale-snapshot upgrade later
            try:
                yield _SqliteCursor(self._conn)
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    @contextmanager
    def read(self) -> Iterator[_SqliteCursor]:
        with self._lock:
            yield _SqliteCursor(self._conn)

    def close(self) -> None:
        with self._lock:
            self._conn.close()


class _PostgresCursor:
    def __init__(self, conn):
        self._conn = conn

    def execute(self, sql: str, params: Sequence[Any] = ()):
        # Our statements hold no literal '?' or '%': the placeholders are all there is to translate.
        return self._conn.execute(sql.replace("?", "%s"), tuple(params))


class PostgresDatabase:
    """A psycopg 3 connection pool; each transaction or read borrows a connection."""

    dialect: Dialect = "postgresql"
    skip_locked = " FOR UPDATE SKIP LOCKED"

    def __init__(self, url: str, *, max_connections: int = 10):
        from psycopg.rows import dict_row
        from psycopg_pool import ConnectionPool

        self._pool = ConnectionPool(
            url,
            min_size=1,
            max_size=max_connections,
            kwargs={"autocommit": True, "row_factory": dict_row},
            open=True,
            name="rag",
        )
        self._pool.wait(timeout=30)

    @contextmanager
    def transaction(self) -> Iterator[_PostgresCursor]:
        with self._pool.connection() as conn, conn.transaction():
            yield _PostgresCursor(conn)

    @contextmanager
    def read(self) -> Iterator[_PostgresCursor]:
        with self._pool.connection() as conn:
            yield _PostgresCursor(conn)

    def close(self) -> None:
        self._pool.close()


def open_database(url: str | None, sqlite_path: Path) -> Database:
    """PostgreSQL when ``url`` names it, else the SQLite file at ``sqlite_path``."""
    if url:
        if not url.startswith(("postgresql://", "postgres://")):
            raise ValueError("RAG_DATABASE_URL must be a postgresql:// URL (unset, the SQLite file is used)")
        return PostgresDatabase(url)
    return SqliteDatabase(sqlite_path)
