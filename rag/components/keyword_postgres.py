"""Keyword search over chunks in PostgreSQL: the KeywordIndex of RAG_DATABASE_URL.

One table for every collection (``chunk_keywords``, migration 3): a ``tsvector`` per chunk (stemmed by the
``english`` configuration) under a GIN index, and the chunk's length in words. Matching uses the index
(an OR of the query's selective words); ranking is BM25, computed here from the term counts the tsvector
keeps, as SQLite's FTS5 does: PostgreSQL's own ``ts_rank_cd`` has no inverse document frequency, and on the
FAQ eval it lost 0.20 recall@5 in keyword mode (docs/many-hosts.md, "Many hosts"). The interface and the word selection
are KeywordIndex's (rag/components/keyword_sqlite.py), so hybrid retrieval reads either the same way.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

from ingest.storage.db import Database
from rag.ports import KeywordHit, WordFrequencies
from rag.words import INDEX_WORD, keyword_text, query_words, search_words, selective_words

CONFIG = "english"
# PostgreSQL's parser reads "os.path.join" or "usr/lib" as one host or file token and indexes no part of it;
# FTS5 indexes the parts. Parted here, both engines index the parts as words, and the whole as its
# identifier token (rag.words.keyword_text).
JOINED_PARTS = re.compile(r"(?<=\w)[./](?=\w)")
# BM25's parameters, FTS5's defaults.
K1 = 1.2
B = 0.75


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

    def word_frequencies(self, collection: str, query: str) -> WordFrequencies:
        words = query_words(query)
        if not words:
            return WordFrequencies({}, 0)
        with self._db.read() as cursor:
            frequency = self._frequencies(cursor, collection, words)
            total = cursor.execute("SELECT COUNT(*) AS n FROM chunk_keywords WHERE collection = ?", (collection,))
            return WordFrequencies(frequency, int(total.fetchone()["n"]))

    def upsert(self, collection: str, ids: Sequence[str], texts: Sequence[str], document_ids: Sequence[str]) -> None:
        with self._db.transaction() as cursor:
            for chunk_id, text, document_id in zip(ids, texts, document_ids, strict=True):
                indexed = JOINED_PARTS.sub(" ", keyword_text(text))
                cursor.execute(
                    "INSERT INTO chunk_keywords (collection, chunk_id, document_id, words, length)"
                    f" VALUES (?, ?, ?, to_tsvector('{CONFIG}', ?), ?)"
                    " ON CONFLICT (collection, chunk_id) DO UPDATE SET document_id = EXCLUDED.document_id,"
                    " words = EXCLUDED.words, length = EXCLUDED.length",
                    (collection, chunk_id, document_id, indexed, len(INDEX_WORD.findall(indexed))),
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
        words = search_words(query)
        if not words or k <= 0:
            return []
        with self._db.read() as cursor:
            frequency = self._frequencies(cursor, collection, words)
            stats = cursor.execute(
                "SELECT COUNT(*) AS n, AVG(length) AS average FROM chunk_keywords WHERE collection = ?", (collection,)
            ).fetchone()
            total, average = int(stats["n"]), float(stats["average"] or 1.0)
            selective = selective_words(words, frequency, total)
            if not selective:
                return []
            # Each word's lexeme (as the index stemmed it) and its inverse document frequency, as FTS5 has it.
            lexemes, weights = [], []
            for word in selective:
                lexeme = cursor.execute(f"SELECT (ts_lexize('{CONFIG}_stem', ?))[1] AS lexeme", (word,)).fetchone()
                if lexeme and lexeme["lexeme"]:
                    lexemes.append(lexeme["lexeme"])
                    df = frequency[word]
                    weights.append(math.log(1 + (total - df + 0.5) / (df + 0.5)))
            if not lexemes:
                return []
            filters, params = "", []
            if exclude_documents:
                filters += f" AND document_id NOT IN ({','.join('?' * len(exclude_documents))})"
                params.extend(exclude_documents)
            if only_documents is not None:
                listed = ",".join("?" * len(only_documents))
                filters += f" AND document_id IN ({listed})" if only_documents else " AND 1 = 0"
                params.extend(only_documents)
            rows = cursor.execute(
                "WITH query AS (SELECT * FROM unnest(?::text[], ?::float8[]) AS q(lexeme, idf)),"
                " matched AS (SELECT chunk_id, document_id, words, length FROM chunk_keywords"
                f" WHERE collection = ? AND words @@ to_tsquery('{CONFIG}', ?){filters})"
                " SELECT m.chunk_id, m.document_id, SUM(query.idf * t.tf * ? / (t.tf + ? * (1 - ? + ? * m.length / ?)))"
                " AS score FROM matched m"
                " CROSS JOIN LATERAL (SELECT u.lexeme, array_length(u.positions, 1) AS tf FROM unnest(m.words) u) t"
                " JOIN query ON query.lexeme = t.lexeme"
                " GROUP BY m.chunk_id, m.document_id ORDER BY score DESC, m.chunk_id LIMIT ?",
                [lexemes, weights, collection, _tsquery(selective), *params, K1 + 1, K1, B, B, average, k],
            ).fetchall()
        return [KeywordHit(row["chunk_id"], row["document_id"], float(row["score"])) for row in rows]
