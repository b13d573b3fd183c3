"""Document vectors: one per short document (its whole text's where that fits the model's window, else the mean
of its chunks'), kept and removed with its chunks, and ranked by hybrid retrieval as a third list, each document
placed at its best chunk."""

from __future__ import annotations

import io

import numpy as np
import pytest

from ingest.chunk_ids import chunk_id
from ingest.pipeline import mean_direction
from rag.runtime import Runtime
from rag.services.retrieval import FusionWeights, Retriever
from tests import documents as docs
from tests.conftest import STORE_MODES
from tests.helpers import RealTokenCounts


def paragraphs(topic: str, count: int) -> bytes:
    return "\n\n".join(
        f"Note {i} on {topic}: the {topic} crew checks the {topic} log, the rota and the spare parts every morning."
        for i in range(count)
    ).encode()


@pytest.fixture(params=STORE_MODES)
def runtime(request, make_settings, embedder):
    # Batches of 2: a short document must still be written whole (its vector needs all its chunks at once).
    settings = make_settings(
        request.param, chunk_tokens=32, chunk_overlap_tokens=0, write_batch_size=2, document_vector_max_chunks=4
    )
    runtime = Runtime(settings, embedder=embedder)
    runtime.start(run_worker=False, wait=True)
    yield runtime
    runtime.stop()
    if request.param == "server":
        from tests.conftest import _clear_chroma

        _clear_chroma(request.getfixturevalue("chroma_server"))


def ingest(runtime: Runtime, name: str, content: bytes, collection: str = "default") -> str:
    record = runtime.ingest.submit(io.BytesIO(content), name, collection, {}).record
    while runtime.worker.run_once():
        pass
    assert runtime.records.get(record.id).status.value == "ready"
    return record.id


def stored_vectors(runtime: Runtime, ids: list[str], *, documents: bool = False) -> np.ndarray:
    target = runtime.store._documents("default") if documents else runtime.store._collection("default", create=False)
    found = target.get(ids=ids, include=["embeddings"])
    by_id = dict(zip(found["ids"], found["embeddings"], strict=True))
    return np.asarray([by_id[i] for i in ids], dtype=np.float32)


def test_a_short_document_gets_its_whole_texts_vector_and_loses_it_with_them(runtime, embedder):
    short = ingest(runtime, "short.txt", paragraphs("ferry", 3))
    long = ingest(runtime, "long.txt", paragraphs("lighthouse", 12))
    short_chunks = runtime.records.get(short).chunks
    assert 2 <= short_chunks <= 4 < runtime.records.get(long).chunks

    query = embedder.embed(["ferry crew"])[0]
    found = runtime.store.search_documents("default", query, 10)
    assert [(hit.document_id, hit.chunks) for hit in found] == [(short, short_chunks)]  # none for the long one
    # Its text fits the model's window: one vector of all of it (line breaks are no tokens), not the chunks' mean.
    whole = embedder.embed([paragraphs("ferry", 3).decode()])[0]
    vector = stored_vectors(runtime, [short], documents=True)[0]
    np.testing.assert_allclose(vector, whole, atol=1e-4)
    chunks = stored_vectors(runtime, [chunk_id(short, i) for i in range(short_chunks)])
    assert not np.allclose(vector, mean_direction(chunks), atol=1e-3)
    assert found[0].score == pytest.approx(float(whole @ query), abs=1e-4)

    assert runtime.ingest.delete(short)
    assert runtime.store.search_documents("default", query, 10) == []

    again = ingest(runtime, "short.txt", paragraphs("ferry", 3))
    assert [hit.document_id for hit in runtime.store.search_documents("default", query, 10)] == [again]
    runtime.store.drop_collection("default")  # what `rag reindex` starts with
    assert runtime.store.search_documents("default", query, 10) == []


def test_a_short_document_past_the_window_or_with_whole_vectors_off_gets_the_mean(make_settings, embedder):
    settings = make_settings(chunk_tokens=64, chunk_overlap_tokens=0, document_vector_max_chunks=16)
    runtime = Runtime(settings, embedder=embedder)
    runtime.start(run_worker=False, wait=True)
    try:
        text = paragraphs("ferry", 20)
        assert embedder.count_tokens(text.decode()) > embedder.max_tokens
        past = ingest(runtime, "past.txt", text)
        chunks = stored_vectors(runtime, [chunk_id(past, i) for i in range(runtime.records.get(past).chunks)])
        vector = stored_vectors(runtime, [past], documents=True)[0]
        np.testing.assert_allclose(vector, mean_direction(chunks), atol=1e-5)
    finally:
        runtime.stop()
    runtime = Runtime(settings.replace(whole_document_vectors=False), embedder=embedder)
    runtime.start(run_worker=False, wait=True)
    try:
        short = ingest(runtime, "short.txt", paragraphs("harbour", 3))
        chunks = stored_vectors(runtime, [chunk_id(short, i) for i in range(runtime.records.get(short).chunks)])
        vector = stored_vectors(runtime, [short], documents=True)[0]
        np.testing.assert_allclose(vector, mean_direction(chunks), atol=1e-5)
    finally:
        runtime.stop()


def test_a_collection_from_before_document_vectors_gets_them_only_when_reindexed(runtime, embedder):
    old = ingest(runtime, "old.txt", paragraphs("ferry", 2))
    # As a collection written by an earlier release: its chunks, no documents collection beside them.
    runtime.store._client.delete_collection("rag-default.documents")
    runtime.store._collections.clear()
    new = ingest(runtime, "new.txt", paragraphs("harbour", 2))
    query = embedder.embed(["ferry crew"])[0]
    # None for the new upload either: vectors for some documents only would give those an extra vote.
    assert runtime.store.search_documents("default", query, 10) == []
    assert runtime.store.count_document_chunks("default", new) == runtime.records.get(new).chunks

    assert sorted(runtime.ingest.reindex("default")) == sorted([old, new])
    while runtime.worker.run_once():
        pass
    assert {hit.document_id for hit in runtime.store.search_documents("default", query, 10)} == {old, new}


# The two halves of one document (charlie, delta): each weaker than alpha and bravo; their mean, (1, 0, 0),
# the query itself (echo).
MARKER_VECTORS = {
    "alpha": (0.8, 0.6, 0.0),
    "bravo": (0.7, -0.714, 0.0),
    "charlie": (0.6, 0.0, 0.8),
    "delta": (0.6, 0.0, -0.8),
    "echo": (1.0, 0.0, 0.0),
}


class MarkerEmbedder(RealTokenCounts):
    """Real token counts (so real chunking); each text's vector chosen by the first marker word in it.

    The code under test is the fusion and placement of document hits, not the embedding model: hand-placed
    vectors make a document whose every chunk is out of the dense candidates, while its mean is the best."""

    def embed(self, texts) -> np.ndarray:
        def vector(text: str) -> np.ndarray:
            marker = min((text.find(m), m) for m in MARKER_VECTORS if m in text)[1]
            v = np.asarray(MARKER_VECTORS[marker], dtype=np.float32)
            return v / np.linalg.norm(v)

        return np.stack([vector(text) for text in texts])


def test_hybrid_finds_a_document_by_its_vector_at_its_best_chunk(make_settings, embedder):
    marker = MarkerEmbedder(embedder)
    # The mean of the halves' vectors (whole-text vectors would take the first marker's).
    settings = make_settings(
        chunk_tokens=24, chunk_overlap_tokens=0, document_vector_max_chunks=4, whole_document_vectors=False
    )
    runtime = Runtime(settings, embedder=marker)
    runtime.start(run_worker=False, wait=True)
    try:
        ingest(runtime, "alpha.txt", b"alpha " + docs.TEXT[:60])
        ingest(runtime, "bravo.txt", b"bravo " + docs.TEXT[:60])
        halves = ingest(
            runtime,
            "halves.txt",
            b"charlie owns the first half of this short text, which runs on for a few more words.\n\n"
            b"delta owns the second half of it, which also runs on for a few more words.",
        )
        assert runtime.records.get(halves).chunks == 2

        def search(document_weight: float):
            retriever = Retriever(
                runtime.records,
                runtime.store,
                marker,
                runtime.keywords,
                mode="hybrid",
                candidates=3,  # the dense list: alpha, bravo, then charlie's chunk (0.6); delta's is left out
                weights=FusionWeights(documents=document_weight),
            )
            return [hit for hit in retriever.search("default", "echo", k=3)]

        assert [hit.metadata["filename"] for hit in search(0.0)] == ["alpha.txt", "bravo.txt", "halves.txt"]
        # Dense [alpha, bravo, halves] and documents [halves (1.0), alpha, bravo] fused: halves rises to second.
        alpha, placed, bravo = search(1.0)
        assert (alpha.metadata["filename"], bravo.metadata["filename"]) == ("alpha.txt", "bravo.txt")
        assert placed.metadata["filename"] == "halves.txt"
        # At one of its chunks, scored like any hit: that chunk's cosine similarity, not the document's.
        assert placed.id in {chunk_id(halves, 0), chunk_id(halves, 1)}
        assert placed.score == pytest.approx(0.6, abs=1e-4)
    finally:
        runtime.stop()


def test_a_long_document_is_ranked_among_the_documents_by_its_best_chunk(make_settings, embedder):
    """A long document has no vector of its own; ranking the short ones alone gave each of them a second vote
    the long one never got, and a short page beat a long one whose chunk was closer."""
    marker = MarkerEmbedder(embedder)
    settings = make_settings(chunk_tokens=24, chunk_overlap_tokens=0, document_vector_max_chunks=4)
    runtime = Runtime(settings, embedder=marker)
    runtime.start(run_worker=False, wait=True)
    try:
        long = ingest(runtime, "long.txt", "\n\n".join(["alpha " + "word " * 15] * 6).encode())
        assert runtime.records.get(long).chunks > 4
        ingest(runtime, "short.txt", b"bravo " + docs.TEXT[:60])
        retriever = Retriever(runtime.records, runtime.store, marker, runtime.keywords, mode="hybrid")
        # Dense: the long document's chunks (0.8), then the short one (0.7); documents: long (its best chunk,
        # 0.8), then short (its vector, 0.7).
        first = retriever.search("default", "echo", k=2)[0]
        assert first.metadata["filename"] == "long.txt"
    finally:
        runtime.stop()
