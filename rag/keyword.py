"""BM25 keyword search over chunks, with SQLite's FTS5 (in Python's standard library).

One FTS5 table per collection (and a plain table mapping its rows to chunk and document ids), in its own
SQLite file beside the records. It is written in the same calls
that write Chroma (see HybridChunkStore), so it is always in step with the vectors: chunks added on
ingest, removed on delete, persisted, searched with FTS5's built-in bm25() ranking. FTS5 indexes
incrementally, which a rebuilt-on-change index (bm25s and friends) would not.
"""

from __future__ import annotations

import re
import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ingest.ports import MetadataValue

# Words too common to help ranking; dropping them keeps the OR query short.
_STOPWORD_TEXT = """a an and are as at be by can do does for from how i if in is it its me my of on or so that the
their them then there these this to was what when where which who why will with would you your"""
STOPWORDS = frozenset(_STOPWORD_TEXT.split())
_WORD = re.compile(r"\w+", re.UNICODE)
TOKENIZER = "porter unicode61 remove_diacritics 2"
# A term in more than this share of a collection's chunks (and in more than MIN_COMMON chunks) hardly
# ranks anything (its IDF is near zero) but makes FTS5 score most of the collection: it is left out.
COMMON_SHARE = 0.05
MIN_COMMON = 1000
MAX_TERMS = 16


@dataclass(frozen=True, slots=True)
class KeywordHit:
    chunk_id: str
    document_id: str
    score: float  # BM25, higher is better


def query_words(query: str) -> list[str]:
    return list(dict.fromkeys(w for w in _WORD.findall(query.lower()) if w not in STOPWORDS))


def match_expression(query: str | list[str]) -> str | None:
    """An FTS5 query matching any of the query's words (each quoted, so user text is never syntax)."""
    words = query_words(query) if isinstance(query, str) else query
    if not words:
        return None
    return " OR ".join(f'"{word}"' for word in words)


class KeywordIndex:
    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
        self._lock = threading.Lock()
        self._known: set[str] = set()
        with self._lock:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            # A scratch table with the same tokenizer tells which indexed term (stem) each query word is.
            self._conn.execute(f"CREATE VIRTUAL TABLE temp.query_words USING fts5(word, tokenize='{TOKENIZER}')")
            self._conn.execute("CREATE VIRTUAL TABLE temp.query_terms USING fts5vocab(temp, query_words, 'instance')")

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    @staticmethod
    def _tables(collection: str) -> tuple[str, str]:
        # Collection names are [A-Za-z0-9_-]; hex keeps "a-b" and "a_b" apart and the names always valid.
        suffix = collection.encode().hex()
        return f"kw_{suffix}", f"kwmap_{suffix}"

    def _ensure(self, collection: str) -> tuple[str, str]:
        fts, chunks = self._tables(collection)
        if fts not in self._known:
            # The FTS table holds only the text; a plain table maps its rowids to chunk and document ids,
            # with the indexes FTS5 columns cannot have (replacing a chunk, deleting a document).
            self._conn.execute(
                f"CREATE TABLE IF NOT EXISTS {chunks} "
                "(rowid INTEGER PRIMARY KEY, chunk_id TEXT NOT NULL UNIQUE, document_id TEXT NOT NULL)"
            )
            self._conn.execute(f"CREATE INDEX IF NOT EXISTS {chunks}_document ON {chunks} (document_id)")
            self._conn.execute(f"CREATE VIRTUAL TABLE IF NOT EXISTS {fts} USING fts5(text, tokenize='{TOKENIZER}')")
            self._conn.execute(f"CREATE VIRTUAL TABLE IF NOT EXISTS {fts}_terms USING fts5vocab({fts}, 'row')")
            self._known.add(fts)
        return fts, chunks

    def _exists(self, collection: str) -> bool:
        fts, _ = self._tables(collection)
        if fts not in self._known:
            if self._conn.execute("SELECT 1 FROM sqlite_master WHERE name = ?", (fts,)).fetchone() is None:
                return False
            self._ensure(collection)
        return True

    def _frequencies(self, fts: str, words: list[str]) -> dict[str, int]:
        """How many chunks of the collection hold each word (as its stem, by the index's own tokenizer)."""
        self._conn.execute("DELETE FROM temp.query_words")
        self._conn.executemany(
            "INSERT INTO temp.query_words (rowid, word) VALUES (?, ?)", list(enumerate(words, start=1))
        )
        stems = {doc: term for term, doc, *_ in self._conn.execute("SELECT term, doc FROM temp.query_terms")}
        frequency = {}
        for index, word in enumerate(words, start=1):
            row = self._conn.execute(f"SELECT doc FROM {fts}_terms WHERE term = ?", (stems.get(index, ""),)).fetchone()
            frequency[word] = row[0] if row else 0
        return frequency

    def unknown_words(self, collection: str, query: str) -> list[str]:
        """The query's words that no chunk of the collection holds (a question about something else, often)."""
        words = [word for word in query_words(query) if not word.isdigit()]
        with self._lock:
            if not words or not self._exists(collection):
                return words
            fts, _ = self._tables(collection)
            frequency = self._frequencies(fts, words)
        return [word for word in words if not frequency[word]]

    def _selective_words(self, fts: str, chunks: str, words: list[str]) -> list[str]:
        """The query's words minus those too common in this collection to rank anything (rarest first)."""
        frequency = self._frequencies(fts, words)
        total = self._conn.execute(f"SELECT count(*) FROM {chunks}").fetchone()[0]
        common = max(MIN_COMMON, COMMON_SHARE * total)
        present = sorted((w for w in words if frequency[w]), key=lambda w: frequency[w])
        selective = [w for w in present if frequency[w] <= common]
        # If every word is common, the two rarest still rank something.
        return (selective or present[:2])[:MAX_TERMS]

    def upsert(self, collection: str, ids: Sequence[str], texts: Sequence[str], document_ids: Sequence[str]) -> None:
        with self._lock:
            fts, chunks = self._ensure(collection)
            self._conn.execute("BEGIN IMMEDIATE")  # take the write lock now: no stale-snapshot upgrade
            try:
                for chunk_id, text, document_id in zip(ids, texts, document_ids, strict=True):
                    old = self._conn.execute(f"SELECT rowid FROM {chunks} WHERE chunk_id = ?", (chunk_id,)).fetchone()
                    if old is not None:
                        self._conn.execute(f"DELETE FROM {fts} WHERE rowid = ?", old)
                        self._conn.execute(f"DELETE FROM {chunks} WHERE rowid = ?", old)
                    rowid = self._conn.execute(
                        f"INSERT INTO {chunks} (chunk_id, document_id) VALUES (?, ?)", (chunk_id, document_id)
                    ).lastrowid
                    self._conn.execute(f"INSERT INTO {fts} (rowid, text) VALUES (?, ?)", (rowid, text))
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def delete_document(self, collection: str, document_id: str) -> None:
        with self._lock:
            if not self._exists(collection):
                return
            fts, chunks = self._tables(collection)
            self._conn.execute("BEGIN IMMEDIATE")  # take the write lock now: no stale-snapshot upgrade
            try:
                self._conn.execute(
                    f"DELETE FROM {fts} WHERE rowid IN (SELECT rowid FROM {chunks} WHERE document_id = ?)",
                    (document_id,),
                )
                self._conn.execute(f"DELETE FROM {chunks} WHERE document_id = ?", (document_id,))
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def drop_collection(self, collection: str) -> None:
        with self._lock:
            fts, chunks = self._tables(collection)
            self._known.discard(fts)
            for table in (f"{fts}_terms", fts, chunks):
                self._conn.execute(f"DROP TABLE IF EXISTS {table}")

    def count(self, collection: str, document_id: str) -> int:
        with self._lock:
            if not self._exists(collection):
                return 0
            _, chunks = self._tables(collection)
            return self._conn.execute(
                f"SELECT COUNT(*) FROM {chunks} WHERE document_id = ?", (document_id,)
            ).fetchone()[0]

    def search(
        self,
        collection: str,
        query: str,
        k: int,
        *,
        exclude_documents: Sequence[str] = (),
        only_documents: Sequence[str] | None = None,
    ) -> list[KeywordHit]:
        words = query_words(query)
        if not words or k <= 0:
            return []
        with self._lock:
            if not self._exists(collection):
                return []
            fts, chunks = self._tables(collection)
            expression = match_expression(self._selective_words(fts, chunks, words))
            if expression is None:
                return []
            sql = (
                f"SELECT c.chunk_id, c.document_id, bm25({fts}) AS rank FROM {fts} "
                f"JOIN {chunks} AS c ON c.rowid = {fts}.rowid WHERE {fts} MATCH ?"
            )
            params: list[object] = [expression]
            if exclude_documents:
                sql += f" AND c.document_id NOT IN ({','.join('?' * len(exclude_documents))})"
                params.extend(exclude_documents)
            if only_documents is not None:
                sql += f" AND c.document_id IN ({','.join('?' * len(only_documents))})"
                params.extend(only_documents)
            sql += " ORDER BY rank LIMIT ?"
            params.append(k)
            rows = self._conn.execute(sql, params).fetchall()
        # FTS5's bm25() is lower-is-better; flip it so every score in the service reads the same way.
        return [KeywordHit(chunk_id, document_id, -score) for chunk_id, document_id, score in rows]


class HybridChunkStore:
    """The ChunkStore ingestion writes to: Chroma for vectors and the keyword index, written together."""

    def __init__(self, vectors, keywords: KeywordIndex):
        self.vectors = vectors
        self.keywords = keywords

    def upsert(
        self,
        collection: str,
        ids: Sequence[str],
        embeddings: np.ndarray,
        texts: Sequence[str],
        metadatas: Sequence[dict[str, MetadataValue]],
        search_texts: Sequence[str] | None = None,
    ) -> None:
        self.vectors.upsert(collection, ids, embeddings, texts, metadatas)
        self.keywords.upsert(collection, ids, search_texts or texts, [str(m["document_id"]) for m in metadatas])

    def delete_document(self, collection: str, document_id: str) -> None:
        self.vectors.delete_document(collection, document_id)
        self.keywords.delete_document(collection, document_id)

    def count_document_chunks(self, collection: str, document_id: str) -> int:
        return self.vectors.count_document_chunks(collection, document_id)

    def drop_collection(self, collection: str) -> None:
        self.vectors.drop_collection(collection)
        self.keywords.drop_collection(collection)
