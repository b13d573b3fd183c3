"""BM25 keyword search over chunks, with SQLite's FTS5 (in Python's standard library).

One FTS5 table per collection (and a plain table mapping its rows to chunk and document ids), in its own
SQLite file beside the records. It is written in the same calls
that write Chroma (see rag/components/hybrid_store.py), so it is always in step with the vectors: chunks added on
ingest, removed on delete, persisted, searched with FTS5's built-in bm25() ranking. FTS5 indexes
incrementally, which a rebuilt-on-change index (bm25s and friends) would not.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

from cachetools import TTLCache

from ingest.storage.db import Cursor, SqliteDatabase
from rag.ports import KeywordHit, WordFrequencies
from rag.words import keyword_text, query_words, search_words, selective_words

TOKENIZER = "porter unicode61 remove_diacritics 2"
# How many chunks hold each word, and how many chunks there are, only steer which words are searched (and
# which count as unknown). Looking them up cost a third of a keyword search at 100k chunks, so they are
# kept briefly: this process's writes to a collection start afresh at once, another process's show within
# STATS_SECONDS. Only words found are kept, so a word a new document brings is never reported unknown.
STATS_SECONDS = 30.0


def match_expression(query: str | list[str]) -> str | None:
    """An FTS5 query matching any of the query's words (each quoted, so user text is never syntax)."""
    words = query_words(query) if isinstance(query, str) else query
    if not words:
        return None
    return " OR ".join(f'"{word}"' for word in words)


class KeywordIndex:
    def __init__(self, path: Path):
        self._db = SqliteDatabase(path)
        self._known: set[str] = set()
        self._stats: TTLCache = TTLCache(maxsize=100_000, ttl=STATS_SECONDS)
        self._generation: dict[str, int] = {}  # per FTS table, bumped by each write here: old entries unread
        self._stats_lock = threading.Lock()
        with self._db.read() as cursor:
            # A scratch table with the same tokenizer tells which indexed term (stem) each query word is.
            cursor.execute(f"CREATE VIRTUAL TABLE temp.query_words USING fts5(word, tokenize='{TOKENIZER}')")
            cursor.execute("CREATE VIRTUAL TABLE temp.query_terms USING fts5vocab(temp, query_words, 'instance')")

    def close(self) -> None:
        self._db.close()

    @staticmethod
    def _tables(collection: str) -> tuple[str, str]:
        # Collection names are [A-Za-z0-9_-]; hex keeps "a-b" and "a_b" apart and the names always valid.
        suffix = collection.encode().hex()
        return f"kw_{suffix}", f"kwmap_{suffix}"

    def _ensure(self, cursor: Cursor, collection: str) -> tuple[str, str]:
        fts, chunks = self._tables(collection)
        if fts not in self._known:
            # The FTS table holds only the text; a plain table maps its rowids to chunk and document ids,
            # with the indexes FTS5 columns cannot have (replacing a chunk, deleting a document).
            cursor.execute(
                f"CREATE TABLE IF NOT EXISTS {chunks} "
                "(rowid INTEGER PRIMARY KEY, chunk_id TEXT NOT NULL UNIQUE, document_id TEXT NOT NULL)"
            )
            cursor.execute(f"CREATE INDEX IF NOT EXISTS {chunks}_document ON {chunks} (document_id)")
            cursor.execute(f"CREATE VIRTUAL TABLE IF NOT EXISTS {fts} USING fts5(text, tokenize='{TOKENIZER}')")
            cursor.execute(f"CREATE VIRTUAL TABLE IF NOT EXISTS {fts}_terms USING fts5vocab({fts}, 'row')")
            self._known.add(fts)
        return fts, chunks

    def _exists(self, cursor: Cursor, collection: str) -> bool:
        fts, _ = self._tables(collection)
        if fts not in self._known:
            if cursor.execute("SELECT 1 FROM sqlite_master WHERE name = ?", (fts,)).fetchone() is None:
                return False
            self._ensure(cursor, collection)
        return True

    def _frequencies(self, cursor: Cursor, fts: str, words: list[str]) -> dict[str, int]:
        """How many chunks of the collection hold each word (as its stem, by the index's own tokenizer)."""
        with self._stats_lock:
            generation = self._generation.get(fts, 0)
            known = {word: self._cached((fts, generation, word)) for word in words}
        frequency = {word: count for word, count in known.items() if count is not None}
        missing = [word for word in words if word not in frequency]
        if missing:
            cursor.execute("DELETE FROM temp.query_words")
            cursor.executemany(
                "INSERT INTO temp.query_words (rowid, word) VALUES (?, ?)", list(enumerate(missing, start=1))
            )
            rows = cursor.execute("SELECT term, doc FROM temp.query_terms").fetchall()
            stems = {row["doc"]: row["term"] for row in rows}
            for index, word in enumerate(missing, start=1):
                row = cursor.execute(f"SELECT doc FROM {fts}_terms WHERE term = ?", (stems.get(index, ""),)).fetchone()
                frequency[word] = row["doc"] if row else 0
            with self._stats_lock:
                for word in missing:
                    if frequency[word]:
                        self._stats[(fts, generation, word)] = frequency[word]
        return frequency

    def _chunk_count(self, cursor: Cursor, fts: str, chunks: str) -> int:
        with self._stats_lock:
            key = (fts, self._generation.get(fts, 0), None)
            total = self._cached(key)
        if total is not None:
            return total
        total = cursor.execute(f"SELECT count(*) AS n FROM {chunks}").fetchone()["n"]
        with self._stats_lock:
            self._stats[key] = total
        return total

    def _cached(self, key: tuple) -> int | None:
        # Not TTLCache.get: it tests then reads, and an entry can expire in between (KeyError).
        try:
            return self._stats[key]
        except KeyError:
            return None

    def _written(self, fts: str) -> None:
        with self._stats_lock:
            self._generation[fts] = self._generation.get(fts, 0) + 1

    def unknown_words(self, collection: str, query: str) -> list[str]:
        """The query's words that no chunk of the collection holds (a question about something else, often)."""
        words = [word for word in query_words(query) if not word.isdigit()]
        with self._db.read() as cursor:
            if not words or not self._exists(cursor, collection):
                return words
            fts, _ = self._tables(collection)
            frequency = self._frequencies(cursor, fts, words)
        return [word for word in words if not frequency[word]]

    def word_frequencies(self, collection: str, query: str) -> WordFrequencies:
        words = query_words(query)
        with self._db.read() as cursor:
            if not words or not self._exists(cursor, collection):
                return WordFrequencies({}, 0)
            fts, chunks = self._tables(collection)
            return WordFrequencies(self._frequencies(cursor, fts, words), self._chunk_count(cursor, fts, chunks))

    def _selective_words(self, cursor: Cursor, fts: str, chunks: str, words: list[str]) -> list[str]:
        """The query's words minus those too common in this collection to rank anything (rarest first)."""
        return selective_words(words, self._frequencies(cursor, fts, words), self._chunk_count(cursor, fts, chunks))

    def upsert(self, collection: str, ids: Sequence[str], texts: Sequence[str], document_ids: Sequence[str]) -> None:
        with self._db.transaction() as cursor:
            fts, chunks = self._ensure(cursor, collection)
            for chunk_id, text, document_id in zip(ids, texts, document_ids, strict=True):
                old = cursor.execute(f"SELECT rowid FROM {chunks} WHERE chunk_id = ?", (chunk_id,)).fetchone()
                if old is not None:
                    cursor.execute(f"DELETE FROM {fts} WHERE rowid = ?", (old["rowid"],))
                    cursor.execute(f"DELETE FROM {chunks} WHERE rowid = ?", (old["rowid"],))
                rowid = cursor.execute(
                    f"INSERT INTO {chunks} (chunk_id, document_id) VALUES (?, ?)", (chunk_id, document_id)
                ).lastrowid
                cursor.execute(f"INSERT INTO {fts} (rowid, text) VALUES (?, ?)", (rowid, keyword_text(text)))
        self._written(fts)

    def delete_document(self, collection: str, document_id: str) -> None:
        with self._db.transaction() as cursor:
            if not self._exists(cursor, collection):
                return
            fts, chunks = self._tables(collection)
            cursor.execute(
                f"DELETE FROM {fts} WHERE rowid IN (SELECT rowid FROM {chunks} WHERE document_id = ?)", (document_id,)
            )
            cursor.execute(f"DELETE FROM {chunks} WHERE document_id = ?", (document_id,))
        self._written(fts)

    def drop_collection(self, collection: str) -> None:
        with self._db.read() as cursor:
            fts, chunks = self._tables(collection)
            self._known.discard(fts)
            for table in (f"{fts}_terms", fts, chunks):
                cursor.execute(f"DROP TABLE IF EXISTS {table}")
        self._written(fts)

    def count(self, collection: str, document_id: str) -> int:
        with self._db.read() as cursor:
            if not self._exists(cursor, collection):
                return 0
            _, chunks = self._tables(collection)
            return cursor.execute(
                f"SELECT COUNT(*) AS n FROM {chunks} WHERE document_id = ?", (document_id,)
            ).fetchone()["n"]

    def search(
        self,
        collection: str,
        query: str,
        k: int,
        *,
        exclude_documents: Sequence[str] = (),
        only_documents: Sequence[str] | None = None,
    ) -> list[KeywordHit]:
        words = search_words(query)
        if not words or k <= 0:
            return []
        with self._db.read() as cursor:
            if not self._exists(cursor, collection):
                return []
            fts, chunks = self._tables(collection)
            expression = match_expression(self._selective_words(cursor, fts, chunks, words))
            if expression is None:
                return []
            # Ranked and cut to k inside FTS5 first, then joined: joining every match before the cut cost
            # 40% more at 100k chunks. The document filters are rowid sets FTS5 checks as it goes.
            filters, params = "", [expression]
            if exclude_documents:
                filters += (
                    f" AND rowid NOT IN (SELECT rowid FROM {chunks} "
                    f"WHERE document_id IN ({','.join('?' * len(exclude_documents))}))"
                )
                params.extend(exclude_documents)
            if only_documents is not None:
                filters += (
                    f" AND rowid IN (SELECT rowid FROM {chunks} "
                    f"WHERE document_id IN ({','.join('?' * len(only_documents))}))"
                )
                params.extend(only_documents)
            sql = (
                f"SELECT c.chunk_id, c.document_id, hit.rank FROM "
                f"(SELECT rowid, bm25({fts}) AS rank FROM {fts} WHERE {fts} MATCH ?{filters} ORDER BY rank LIMIT ?) "
                f"AS hit JOIN {chunks} AS c ON c.rowid = hit.rowid ORDER BY hit.rank"
            )
            params.append(k)
            rows = cursor.execute(sql, params).fetchall()
        # FTS5's bm25() is lower-is-better; flip it so every score in the service reads the same way.
        return [KeywordHit(row["chunk_id"], row["document_id"], -row["rank"]) for row in rows]
