"""Finding the chunks nearest to a query: dense (embeddings), BM25 (keywords), or both fused.

Hybrid and adaptive fuse a third ranking when the collection has document vectors: documents, each placed at its
best chunk, a short one ranked by its own vector (its whole text's), a long one by its best chunk. A document
answers as a whole, and a question can match the whole better than any one piece of it; ranking every document,
not the short ones alone, keeps long pages from losing to short ones for want of a vote (docs/retrieval.md).

Only documents whose every chunk is written are visible. Whatever ranked a hit, its ``score`` is the
cosine similarity of its embedding to the query's, so one abstention threshold serves every mode.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field
from typing import Literal

from ingest.chunk_ids import chunk_id
from ingest.ports import Embedder, MetadataValue
from ingest.storage.records import DocumentRecords
from rag.ports import ChunkHit, DocumentHit, KeywordSearch, VectorStore, WordFrequencies
from rag.services.documents import public_hits
from rag.words import identifiers

# Searches of one question, at most, while new versions are swapped into its collection (each swap is rare
# and instant: a second search all but always sees none).
SWAP_RETRIES = 3

# The document ranking holds every document among the candidates (bench/retrieval_choices.py turns it off to
# measure the previous default, where short documents were ranked alone).
EVERY_DOCUMENT_RANKED = True

RetrievalMode = Literal["dense", "bm25", "hybrid", "adaptive"]
# A second stage that reorders hits (a cross-encoder, say): none ships by default, see docs/retrieval.md.
Reranker = Callable[[str, list[ChunkHit]], list[ChunkHit]]


class CollectionNotFound(LookupError):
    pass


@dataclass(frozen=True, slots=True)
class Filters:
    document_ids: list[str] | None = None  # only these documents
    metadata: dict[str, MetadataValue] = field(default_factory=dict)  # chunk metadata equal to these values


@dataclass(frozen=True, slots=True)
class FusionWeights:
    """The rankings' weights in the fusion: dense chunks, keywords, documents.

    ``hybrid`` weighs the keyword ranking ``keywords`` always; ``adaptive`` by what the question holds: a
    question that names a code identifier (``$?``, ``sqlite3_open_v2``, ``--dry-run``) is found by its exact
    spelling, which embeddings blur (``identifier_keywords``); one in plain words is matched by meaning first
    (``keywords``). The weights were chosen on the dev sets: docs/evaluation.md, "Retrieval that transfers".
    """

    dense: float = 1.0
    keywords: float = 1.0
    identifier_keywords: float = 1.0
    documents: float = 1.0

    def keyword_weight(self, query: str) -> float:
        return self.identifier_keywords if identifiers(query) else self.keywords


def reciprocal_rank_fusion(rankings: list[list[str]], k: int, weights: list[float] | None = None) -> list[str]:
    """Ids ordered by the sum over rankings of weight / (k + rank); ties keep first-seen order."""
    scores: dict[str, float] = {}
    for ranking, weight in zip(rankings, weights or [1.0] * len(rankings), strict=True):
        for rank, item in enumerate(ranking, start=1):
            scores[item] = scores.get(item, 0.0) + weight / (k + rank)
    return sorted(scores, key=lambda item: -scores[item])


class Retriever:
    def __init__(
        self,
        records: DocumentRecords,
        store: VectorStore,
        embedder: Embedder,
        keywords: KeywordSearch | None = None,
        *,
        mode: RetrievalMode = "dense",
        candidates: int = 30,
        rrf_k: int = 60,
        weights: FusionWeights | None = None,
        score_margin: float | None = 0.3,
        reranker: Reranker | None = None,
        keyword_pool: Executor | None = None,
    ):
        """``keyword_pool``: where the keyword search runs while the query embeds (the runtime's, shared by all
        requests); without one it runs first, in the calling thread."""
        if mode != "dense" and keywords is None:
            raise ValueError(f"retrieval mode {mode!r} needs a keyword index")
        self._records = records
        self._store = store
        self._embedder = embedder
        self._keywords = keywords
        self._mode = mode
        self._candidates = candidates
        self._rrf_k = rrf_k
        self._weights = weights or FusionWeights()
        self._score_margin = score_margin
        self._reranker = reranker
        self._keyword_pool = keyword_pool

    def unknown_words(self, collection: str, query: str) -> list[str]:
        """Words of the query that no chunk of the collection holds (none known without a keyword index)."""
        return self._keywords.unknown_words(collection, query) if self._keywords is not None else []

    def word_frequencies(self, collection: str, query: str) -> WordFrequencies | None:
        """How rare each of the query's words is in the collection (None without a keyword index)."""
        return self._keywords.word_frequencies(collection, query) if self._keywords is not None else None

    def _submit(self, function: Callable[..., list], *args, **kwargs) -> Future:
        if self._keyword_pool is not None:
            return self._keyword_pool.submit(function, *args, **kwargs)
        done: Future = Future()
        done.set_result(function(*args, **kwargs))
        return done

    def search(self, collection: str, query: str, k: int = 5, filters: Filters | None = None) -> list[ChunkHit]:
        """Blocking (embedding, SQLite, Chroma): call it from a worker thread in async code."""
        if not self._records.collection_exists(collection):
            raise CollectionNotFound(collection)
        filters = filters or Filters()
        only = None if filters.document_ids is None else self._records.current_storage_keys(filters.document_ids)
        # A new version is swapped in by one transaction that also moves the collection's generation on. A
        # search that read which versions are hidden before the swap may reach the store after the old
        # version's chunks went: it would find neither version. Seeing the generation move, it searches again.
        for _ in range(SWAP_RETRIES):
            generation = self._records.generation(collection)
            hits = self._search(collection, query, k, filters, only)
            if self._records.generation(collection) == generation:
                break
        return public_hits(hits)

    def _search(self, collection: str, query: str, k: int, filters: Filters, only: list[str] | None) -> list[ChunkHit]:
        """One search, ``only`` the storage keys of the documents the filters name (None: all)."""
        if only is not None and not only:  # the filters name no document there is
            return []
        hidden = self._records.hidden_document_ids(collection)
        depth = k if self._mode == "dense" and self._reranker is None else max(k, self._candidates)
        keyword_search = None
        if self._mode != "dense":
            # SQLite releases the GIL while it searches: the keyword search runs while the query embeds.
            keyword_search = self._submit(
                self._keywords.search,
                collection,
                query,
                depth,
                exclude_documents=hidden,
                only_documents=only,
            )
        embedding = self._embedder.embed([query])[0]

        dense: list[ChunkHit] = []
        if self._mode != "bm25":
            dense = self._store.search(
                collection,
                embedding,
                depth,
                exclude_documents=hidden,
                only_documents=only,
                metadata_equals=filters.metadata,
            )
        documents: list[DocumentHit] = []
        fused = self._mode in ("hybrid", "adaptive")
        if fused and self._weights.documents > 0:
            documents = self._store.search_documents(
                collection, embedding, depth, exclude_documents=hidden, only_documents=only
            )
        keyword_ids = [hit.chunk_id for hit in keyword_search.result()] if keyword_search else []

        if self._mode == "dense":
            hits = dense
        else:
            known = {hit.id: hit for hit in dense}
            if self._mode == "bm25":
                order = keyword_ids
            else:
                adaptive = self._mode == "adaptive"
                keyword_weight = self._weights.keyword_weight(query) if adaptive else self._weights.keywords
                rankings, weights = [[hit.id for hit in dense], keyword_ids], [self._weights.dense, keyword_weight]
                if documents:
                    document_ranking, fetched = self._at_best_chunks(
                        collection, documents, dense, embedding, filters.metadata
                    )
                    known.update((hit.id, hit) for hit in fetched)
                    rankings.append(document_ranking)
                    weights.append(self._weights.documents)
                order = reciprocal_rank_fusion(rankings, self._rrf_k, weights)
            # Keyword-only hits need their embeddings fetched to be scored: only those in the head of the
            # fused order are worth it (dense hits further down keep their place; they have scores).
            head = order[: max(3 * k, k + 10)]
            missing = [hit_id for hit_id in head if hit_id not in known]
            # Keyword-only hits: fetched with their embeddings (and the metadata filter BM25 cannot apply).
            for hit in self._store.get_scored(collection, missing, embedding, metadata_equals=filters.metadata):
                known[hit.id] = hit
            hits = [known[hit_id] for hit_id in order if hit_id in known]
            if self._score_margin is not None and hits:
                # BM25 can rank a chunk first on filler words alone ("start" in "started"); one far less
                # similar in meaning than the best candidate is dropped. Measured on data/eval: no
                # recall lost at margins 0.2-0.3 (docs/retrieval.md, "Retrieval quality").
                best = max(hit.score for hit in hits)
                hits = [hit for hit in hits if hit.score >= best - self._score_margin]
        if self._reranker is not None:
            hits = self._reranker(query, hits)
        return hits[:k]

    def _at_best_chunks(
        self,
        collection: str,
        documents: list[DocumentHit],
        dense: list[ChunkHit],
        embedding,
        metadata_equals: dict[str, MetadataValue],
    ) -> tuple[list[str], list[ChunkHit]]:
        """The documents' ranking as chunk ids, each document at its best chunk, and the chunks that had to
        be fetched for it. A document's first dense hit is its best chunk (the dense hits are the best of
        all); the chunks of one with none among them are fetched and scored (a short document has few).
        Ranked: the documents found by their vectors and every document of the dense hits, a short one by
        its vector's score, a long one (no vector) by its best chunk's."""
        best: dict[str, ChunkHit] = {}
        for hit in dense:
            best.setdefault(str(hit.metadata.get("document_id")), hit)
        unplaced = [document for document in documents if document.document_id not in best]
        fetched = self._store.get_scored(
            collection,
            [chunk_id(document.document_id, index) for document in unplaced for index in range(document.chunks)],
            embedding,
            metadata_equals=metadata_equals,
        )
        for hit in fetched:
            document_id = str(hit.metadata.get("document_id"))
            if document_id not in best or hit.score > best[document_id].score:
                best[document_id] = hit
        if not EVERY_DOCUMENT_RANKED:
            ranking = [best[document.document_id].id for document in documents if document.document_id in best]
            return ranking, fetched
        # Every document the candidates hold, ranked by its own vector where it has one, else by its best chunk:
        # ranking short documents alone gave them a vote the long ones never get.
        scores = {document.document_id: document.score for document in documents if document.document_id in best}
        others = [document_id for document_id in best if document_id not in scores]
        if others:  # short ones among them have vectors the first search left out: their own scores
            for document in self._store.search_documents(collection, embedding, len(others), only_documents=others):
                scores[document.document_id] = document.score
        for document_id, hit in best.items():
            scores.setdefault(document_id, hit.score)
        ranking = [best[document_id].id for document_id in sorted(scores, key=lambda d: -scores[d])]
        return ranking, fetched
