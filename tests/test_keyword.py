"""The BM25 keyword index (SQLite FTS5) and its fusion with dense retrieval."""

from __future__ import annotations

import io

import pytest

from ingest.storage.db import open_database
from ingest.storage.records import DocumentRecords
from rag.components.keyword_postgres import PostgresKeywordIndex
from rag.components.keyword_sqlite import KeywordIndex, match_expression
from rag.runtime import Runtime
from rag.services.retrieval import Filters, Retriever, reciprocal_rank_fusion
from tests import documents as docs


@pytest.fixture(params=["fts5", "postgresql"])
def open_index(request, tmp_path):
    """Opens the keyword index (again): SQLite's FTS5 (the default) or PostgreSQL's full text search."""
    if request.param == "fts5":
        return lambda: KeywordIndex(tmp_path / "keywords.sqlite3")
    records = DocumentRecords(open_database(request.getfixturevalue("postgres").new_database(), tmp_path / "x"))
    request.addfinalizer(records.close)
    return lambda: PostgresKeywordIndex(records.database)


@pytest.fixture
def index(open_index):
    keywords = open_index()
    yield keywords
    keywords.close()


def test_user_text_is_never_fts_syntax():
    assert match_expression('What does "NEAR(a b)" AND x* OR -y mean?') == '"near" OR "b" OR "x" OR "y" OR "mean"'
    assert match_expression("the of and ?!") is None


def test_upsert_replaces_delete_removes_and_collections_stay_apart(index, open_index):
    index.upsert("alpha", ["d1-0", "d1-1"], ["anemometer readings", "barometer calibration"], ["d1", "d1"])
    index.upsert("alpha", ["d1-1"], ["hygrometer calibration"], ["d1"])  # same id: replaced, not doubled
    index.upsert("beta", ["d2-0"], ["anemometer in beta"], ["d2"])
    assert index.count("alpha", "d1") == 2
    assert [h.chunk_id for h in index.search("alpha", "barometer", 5)] == []
    assert [h.chunk_id for h in index.search("alpha", "hygrometer", 5)] == ["d1-1"]
    assert [h.chunk_id for h in index.search("alpha", "anemometer", 5)] == ["d1-0"]
    assert index.search("alpha", "anemometers", 5)[0].chunk_id == "d1-0"  # porter stemming
    assert index.search("alpha", "anemometer", 5, exclude_documents=["d1"]) == []
    assert index.search("nowhere", "anemometer", 5) == []

    index.delete_document("alpha", "d1")
    assert index.count("alpha", "d1") == 0 and index.search("alpha", "anemometer", 5) == []
    assert index.count("beta", "d2") == 1

    index.close()
    reopened = open_index()  # persisted
    assert [h.chunk_id for h in reopened.search("beta", "anemometer", 5)] == ["d2-0"]
    reopened.close()


def test_document_filters_apply_before_the_cut_to_k(index):
    index.upsert("c", ["a-0", "a-1", "a-2"], ["pump pump pump", "pump pump", "pump pump seal"], ["a", "a", "a"])
    index.upsert("c", ["b-0", "b-1"], ["pump and a long tail of other words", "pump gasket"], ["b", "b"])
    assert [h.document_id for h in index.search("c", "pump", 2)] == ["a", "a"]
    assert {h.chunk_id for h in index.search("c", "pump", 2, exclude_documents=["a"])} == {"b-0", "b-1"}
    assert [h.chunk_id for h in index.search("c", "pump", 1, only_documents=["b"])] == ["b-1"]
    assert index.search("c", "pump", 3, only_documents=[]) == []


def test_word_statistics_follow_writes_at_once(index, open_index):
    """Word counts are cached between searches (FTS5): a write here, or a new word written anywhere, must still
    show in the next question."""
    index.upsert("alpha", ["d1-0"], ["anemometer readings"], ["d1"])
    assert index.unknown_words("alpha", "anemometer zeppelin") == ["zeppelin"]
    index.search("alpha", "anemometer zeppelin", 5)
    index.upsert("alpha", ["d2-0"], ["zeppelin hangar"], ["d2"])
    assert index.unknown_words("alpha", "anemometer zeppelin") == []
    index.delete_document("alpha", "d2")
    assert index.unknown_words("alpha", "anemometer zeppelin") == ["zeppelin"]

    other = open_index()  # another process on the same index
    other.upsert("alpha", ["d3-0"], ["blimp mooring"], ["d3"])
    other.close()
    assert index.unknown_words("alpha", "blimp") == []
    assert [h.chunk_id for h in index.search("alpha", "blimp", 5)] == ["d3-0"]


def test_word_frequencies_count_the_chunks_holding_each_word(index):
    """How rare each word of a question is in the collection (evidence weighs the question's words by it): a word's
    chunks are counted once however often it repeats, under the index's own stemming, and follow writes."""
    index.upsert("c", ["a-0", "a-1"], ["Gaskets seal the pump. Gasket gasket.", "The pump hums"], ["a", "a"])
    index.upsert("c", ["b-0"], ["A valve and a pump"], ["b"])
    index.upsert("other", ["x-0"], ["gasket"], ["x"])
    counted = index.word_frequencies("c", "Which gasket seals the pump valve, or the zeppelin?")
    assert counted.chunks == 3
    assert counted.counts == {"gasket": 1, "seals": 1, "pump": 3, "valve": 1, "zeppelin": 0}
    index.delete_document("c", "b")
    assert index.word_frequencies("c", "pump valve").counts == {"pump": 2, "valve": 0}
    assert index.word_frequencies("c", "pump").chunks == 2
    assert index.word_frequencies("absent", "pump").chunks == 0


def test_ranking_prefers_rarer_and_more_frequent_terms(index):
    index.upsert(
        "c",
        ["a", "b", "c"],
        ["pump pump pump bearing", "pump valve", "valve gasket seal"],
        ["d", "d", "d"],
    )
    hits = index.search("c", "pump bearing", 3)
    assert [h.chunk_id for h in hits] == ["a", "b"]
    assert hits[0].score > hits[1].score


def test_reciprocal_rank_fusion():
    fused = reciprocal_rank_fusion([["x", "y", "z"], ["y", "w"]], k=60)
    assert fused[0] == "y"  # in both lists
    assert set(fused) == {"x", "y", "z", "w"}
    assert fused.index("x") < fused.index("w")  # rank 1 in one list beats rank 2 in one list


def test_every_mode_finds_what_it_should_and_scores_by_cosine(make_settings, embedder):
    runtime = Runtime(make_settings(), embedder=embedder)
    runtime.start(run_worker=False, wait=True)
    try:
        for name, content in (("manual.pdf", docs.MANUAL_PDF), ("almanac.pdf", docs.ALMANAC_PDF)):
            runtime.ingest.submit(io.BytesIO(content), name, "default", {"kind": name.split(".")[0]})
        while runtime.worker.run_once():
            pass
        modes = {
            m: Retriever(runtime.records, runtime.store, embedder, runtime.keywords, mode=m)
            for m in ("dense", "bm25", "hybrid")
        }
        # An exact identifier: keywords find it.
        for mode in ("bm25", "hybrid"):
            top = modes[mode].search("default", "P-104", k=3)[0]
            assert "P-104" in top.text and top.metadata["page"] == 4, mode
        # A paraphrase with no shared rare word: meaning finds it.
        for mode in ("dense", "hybrid"):
            top = modes[mode].search("default", "When did the beacon on the coast start shining?", k=3)[0]
            assert "1887" in top.text, mode
        # Scores are cosine similarities whichever retriever ranked the hit, and filters hold in every mode.
        for mode, retriever in modes.items():
            hits = retriever.search("default", "lighthouse keeper", k=5, filters=Filters(metadata={"kind": "almanac"}))
            assert hits and all(h.metadata["filename"] == "almanac.pdf" for h in hits), mode
            assert all(-1.0 <= h.score <= 1.0 for h in hits), mode
    finally:
        runtime.stop()


def test_unknown_mode_needs_a_keyword_index(make_settings, embedder):
    runtime = Runtime(make_settings(), embedder=embedder)
    try:
        with pytest.raises(ValueError, match="needs a keyword index"):
            Retriever(runtime.records, runtime.store, embedder, None, mode="hybrid")
    finally:
        runtime.stop()


def test_a_reranker_reorders_the_fused_candidates_before_the_cut(make_settings, embedder):
    runtime = Runtime(make_settings(), embedder=embedder)
    runtime.start(run_worker=False, wait=True)
    try:
        runtime.ingest.submit(io.BytesIO(docs.MANUAL_PDF), "manual.pdf", "default", {})
        while runtime.worker.run_once():
            pass
        seen: list[int] = []

        def last_page_first(query: str, hits):
            seen.append(len(hits))
            return sorted(hits, key=lambda h: -h.metadata["page"])

        retriever = Retriever(
            runtime.records, runtime.store, embedder, runtime.keywords, mode="hybrid", reranker=last_page_first
        )
        hits = retriever.search("default", "bearing temperature of pump P-101", k=2)
        assert seen and seen[0] > 2  # it saw all the candidates, not only the top 2
        assert [h.metadata["page"] for h in hits] == [5, 5]
    finally:
        runtime.stop()


def test_identifiers_are_found_whole_beside_their_parts(index):
    # "b" holds every part of os.path.join many times, "a" the identifier itself: the identifier's own token
    # ranks "a" first. "$?" has no word in it at all: only its token finds it.
    index.upsert(
        "ids",
        ["a", "b", "c", "d", "e"],
        [
            "os.path.join() joins one or more path components.",
            "The os module: join a path to a path, path by path, with os separators; join again.",
            "$? expands to the exit status of the most recent pipeline.",
            "Pipelines run their commands at once.",
            "Separators differ between systems.",
        ],
        ["d1", "d2", "d3", "d4", "d5"],
    )
    assert index.search("ids", "how do I use os.path.join", 5)[0].chunk_id == "a"
    assert [hit.chunk_id for hit in index.search("ids", "$?", 5)] == ["c"]
    assert {hit.chunk_id for hit in index.search("ids", "join path", 5)} == {"a", "b"}  # the parts, as before
