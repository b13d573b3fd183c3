"""Keyword search over chunks in PostgreSQL's full text search: the KeywordIndex of RAG_DATABASE_URL.

One table for every collection (``chunk_keywords``, migration 3), a ``tsvector`` per chunk under a GIN
index, ranked with ``ts_rank_cd`` (cover density) over an OR of the query's selective words, stemmed by
the ``english`` configuration. The interface and the word selection are KeywordIndex's (rag/keyword.py),
so hybrid retrieval reads either the same way.
"""

from __future__ import annotations

from collections.abc import Sequence

from ingest.db import Database
from rag.keyword import COMMON_SHARE, MAX_TERMS, MIN_COMMON, KeywordHit, query_words

CONFIG = "english"


def _tsquery(words: list[str]) -> str:
    # Words are \w+ runs (query_words): quoted, they are never tsquery syntax.
    return " | ".join(f"'{word}'" for word in words)


class PostgresKeywordIndex:
    def __init__(self, db: Database):
        self._db = db

    def close(self) -> None:  # the records own the connection pool
        pass

    def _frequencies(self, cursor, collection: str, words: list[str]) -> dict[str, int]:
        frequency = {}
        for word in words:
            row = cursor.execute(
                f"SELECT COUNT(*) AS n FROM chunk_keywords WHERE collection = ? AND words @@ to_tsquery('{CONFIG}', ?)",
                (collection, _tsquery([word])),
            ).fetchone()
            frequency[word] = int(row["n"])
        return frequency

    def unknown_words(self, collection: str, query: str) -> list[str]:
        words = [word for word in query_words(query) if not word.isdigit()]
        if not words:
            return words
        with self._db.read() as cursor:
            frequency = self._frequencies(cursor, collection, words)
        return [word for word in words if not frequency[word]]

    def upsert(self, collection: str, ids: Sequence[str], texts: Sequence[str], document_ids: Sequence[str]) -> None:
        with self._db.transaction() as cursor:
            for chunk_id, text, document_id in zip(ids, texts, document_ids, strict=True):
                cursor.execute(
                    "INSERT INTO chunk_keywords (collection, chunk_id, document_id, words)"
                    f" VALUES (?, ?, ?, to_tsvector('{CONFIG}', ?))"
                    " ON CONFLICT (collection, chunk_id) DO UPDATE SET document_id = EXCLUDED.document_id,"
                    " words = EXCLUDED.words",
                    (collection, chunk_id, document_id, text),
                )

    def delete_document(self, collection: str, document_id: str) -> None:
        with self._db.transaction() as cursor:
            cursor.execute(
                "DELETE FROM chunk_keywords WHERE collection = ? AND document_id = ?", (collection, document_id)
            )

    def drop_collection(self, collection: str) -> None:
        with self._db.transaction() as cursor:
            cursor.execute("DELETE FROM chunk_keywords WHERE collection = ?", (collection,))

    def count(self, collection: str, document_id: str) -> int:
        with self._db.read() as cursor:
            row = cursor.execute(
                "SELECT COUNT(*) AS n FROM chunk_keywords WHERE collection = ? AND document_id = ?",
                (collection, document_id),
            ).fetchone()
        return int(row["n"])

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
        with self._db.read() as cursor:
            frequency = self._frequencies(cursor, collection, words)
            total = cursor.execute(
                "SELECT COUNT(*) AS n FROM chunk_keywords WHERE collection = ?", (collection,)
            ).fetchone()["n"]
            common = max(MIN_COMMON, COMMON_SHARE * total)
            present = sorted((w for w in words if frequency[w]), key=lambda w: frequency[w])
            selective = ([w for w in present if frequency[w] <= common] or present[:2])[:MAX_TERMS]
            if not selective:
                return []
            sql = (
                f"SELECT chunk_id, document_id, ts_rank_cd(words, q) AS rank FROM chunk_keywords,"
                f" to_tsquery('{CONFIG}', ?) AS q WHERE collection = ? AND words @@ q"
            )
            params: list[object] = [_tsquery(selective), collection]
            if exclude_documents:
                sql += f" AND document_id NOT IN ({','.join('?' * len(exclude_documents))})"
                params.extend(exclude_documents)
            if only_documents is not None:
                sql += (
                    f" AND document_id IN ({','.join('?' * len(only_documents))})" if only_documents else " AND 1 = 0"
                )
                params.extend(only_documents)
            sql += " ORDER BY rank DESC, chunk_id LIMIT ?"
            params.append(k)
            rows = cursor.execute(sql, params).fetchall()
        return [KeywordHit(row["chunk_id"], row["document_id"], float(row["rank"])) for row in rows]
