"""The pure rules, without a model, a store or a server: word rules, chunk ids, Chroma's filters, rank fusion,
abstention, citation markers and the lexical measures of the evidence, API keys, sampling fields."""

from __future__ import annotations

from pathlib import Path

import pytest

from ingest.chunk_ids import chunk_id
from rag.components.chroma_store import chroma_where
from rag.components.llm.openai_client import server_root
from rag.ports import ChunkHit, SamplingGuard, WordFrequencies, page_etag
from rag.server.auth import AuthError, KeyRing, Role, load_key_file
from rag.services.abstention import AbstentionPolicy
from rag.services.evidence import (
    cited_numbers,
    claims_of,
    lexical_agreement,
    quote_windows,
    rarity_weights,
    sentences,
    stems,
    strip_markers,
)
from rag.services.followups import fuse
from rag.services.retrieval import FusionWeights, reciprocal_rank_fusion
from rag.sync import LocalFile, make_plan
from rag.words import (
    INDEX_WORD,
    MAX_TERMS,
    MIN_COMMON,
    PROSE_WORD,
    identifier_token,
    identifiers,
    keyword_text,
    query_words,
    search_words,
    selective_words,
)

# --- word rules ------------------------------------------------------------------------------------------


def test_query_words_are_lower_case_without_stopwords_or_repeats_in_order():
    assert query_words("What is the Lighthouse of the LIGHTHOUSE keeper?") == ["lighthouse", "keeper"]


def test_the_index_keeps_underscores_and_prose_keeps_apostrophes():
    assert INDEX_WORD.findall("sqlite3_open_v2 don't") == ["sqlite3_open_v2", "don", "t"]
    assert PROSE_WORD.findall("sqlite3_open_v2 don't") == ["sqlite3", "open", "v2", "don't"]


def test_selective_words_drop_the_common_and_put_the_rarest_first():
    total = 100_000  # common above max(1000, 5%) = 5,000 chunks
    frequency = {"lighthouse": 40, "harbour": 900, "the": 90_000, "ship": 6_000, "absent": 0}
    assert selective_words(list(frequency), frequency, total) == ["lighthouse", "harbour"]


def test_when_every_word_is_common_the_two_rarest_still_rank():
    frequency = {"a1": 9_000, "a2": 8_000, "a3": 7_000}
    assert selective_words(list(frequency), frequency, 100_000) == ["a3", "a2"]


def test_a_small_collection_counts_nothing_as_common():
    frequency = {"everywhere": MIN_COMMON, "rare": 1}
    assert selective_words(list(frequency), frequency, MIN_COMMON) == ["rare", "everywhere"]


def test_selective_words_are_capped():
    frequency = {f"w{n}": n + 1 for n in range(40)}
    assert len(selective_words(list(frequency), frequency, 10**6)) == MAX_TERMS


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("What does $? hold after a pipeline?", ["$?"]),
        ("Call sqlite3_open_v2() with SQLITE_OPEN_READONLY.", ["sqlite3_open_v2", "sqlite_open_readonly"]),
        ("export LD_LIBRARY_PATH=/opt/lib", ["ld_library_path"]),
        ("git clean --dry-run, or -n for short", ["--dry-run", "-n"]),
        ("std::vector and os.path.join(a, b), then ptr->next.", ["std::vector", "os.path.join", "ptr->next"]),
        ("${HOME} and $HOME and $#", ["${home}", "$home", "$#"]),
        ("A well-known, non-zero value at the end of a sentence.", []),
    ],
)
def test_identifiers_are_taken_whole_and_case_folded(text, found):
    assert identifiers(text) == found


def test_identifiers_are_indexed_and_searched_as_one_token_each_beside_the_words():
    token = identifier_token("os.path.join")
    assert token.isalnum() and token == identifier_token("os.path.join") != identifier_token("os.path")
    assert keyword_text("Use os.path.join here") == f"Use os.path.join here\n{token}"
    assert keyword_text("No identifier here") == "No identifier here"
    assert search_words("what does os.path.join return") == ["os", "path", "join", "return", token]
    assert search_words("$?") == [identifier_token("$?")]  # no word at all, yet something to search


def test_adaptive_fusion_weighs_keywords_by_what_the_question_holds():
    weights = FusionWeights(keywords=0.25, identifier_keywords=2.0)
    assert weights.keyword_weight("how do I keep timestamps when copying") == 0.25
    assert weights.keyword_weight("what does --preserve=timestamps do") == 2.0


# --- ids and filters -------------------------------------------------------------------------------------


def test_chunk_ids_are_deterministic_and_sort_in_reading_order():
    assert chunk_id("doc", 7) == "doc-000007" == chunk_id("doc", 7)
    ids = [chunk_id("doc", n) for n in (10, 9, 100, 1)]
    assert sorted(ids) == [chunk_id("doc", n) for n in (1, 9, 10, 100)]


def test_page_etags_change_with_the_file_the_page_and_the_width():
    tags = {page_etag("sha", 1, 800), page_etag("sha", 2, 800), page_etag("sha", 1, 400), page_etag("sh2", 1, 800)}
    assert len(tags) == 4 and page_etag("sha", 1, 800) == page_etag("sha", 1, 800)


def test_no_filter_is_no_where():
    assert chroma_where() is None
    assert chroma_where(exclude_documents=[], only_documents=None, metadata_equals={}) is None


def test_one_filter_is_the_condition_itself():
    assert chroma_where(exclude_documents=["a"]) == {"document_id": {"$nin": ["a"]}}
    assert chroma_where(metadata_equals={"team": "ops"}) == {"team": {"$eq": "ops"}}


def test_several_filters_are_and_ed():
    where = chroma_where(["a"], ["b", "c"], {"year": 2024})
    assert where == {
        "$and": [
            {"document_id": {"$nin": ["a"]}},
            {"document_id": {"$in": ["b", "c"]}},
            {"year": {"$eq": 2024}},
        ]
    }


def test_an_empty_allow_list_allows_nothing():
    assert chroma_where(only_documents=[]) == {"document_id": {"$in": []}}


# --- fusion ----------------------------------------------------------------------------------------------


def test_rrf_of_one_ranking_keeps_its_order():
    assert reciprocal_rank_fusion([["a", "b", "c"]], k=60) == ["a", "b", "c"]


def test_rrf_rewards_agreement():
    assert reciprocal_rank_fusion([["a", "b", "c"], ["b", "x", "y"]], k=60)[0] == "b"


def test_rrf_ties_keep_first_seen_order():
    assert reciprocal_rank_fusion([["a", "b"], ["b", "a"]], k=60) == ["a", "b"]


def test_rrf_weights_tip_the_balance():
    rankings = [["dense"], ["keyword"]]
    assert reciprocal_rank_fusion(rankings, k=60, weights=[1.0, 2.0])[0] == "keyword"
    assert reciprocal_rank_fusion(rankings, k=60, weights=[2.0, 1.0])[0] == "dense"


def test_rrf_needs_a_weight_per_ranking():
    with pytest.raises(ValueError):
        reciprocal_rank_fusion([["a"], ["b"]], k=60, weights=[1.0])


def hit(chunk: str, score: float) -> ChunkHit:
    return ChunkHit(chunk, chunk, {}, score)


def test_fusing_searches_keeps_each_hits_best_score():
    fused = fuse([[hit("a", 0.5), hit("b", 0.4)], [hit("b", 0.9), hit("c", 0.3)]], k=3)
    assert [h.id for h in fused] == ["b", "a", "c"] and fused[0].score == 0.9


def test_fusing_one_search_is_its_top_k():
    assert [h.id for h in fuse([[hit("a", 1), hit("b", 1), hit("c", 1)]], k=2)] == ["a", "b"]


# --- abstention ------------------------------------------------------------------------------------------

POLICY = AbstentionPolicy(below_score=0.3, unknown_words_below_score=0.5)


def test_no_passage_or_a_low_score_abstains():
    assert POLICY.abstains(None, False) and POLICY.abstains(0.29, False)
    assert POLICY.reason(None, []) == "no passage matched the question"
    assert "below 0.30" in POLICY.reason(0.2, [])


def test_unknown_words_matter_only_in_the_band():
    assert POLICY.abstains(0.4, True) and not POLICY.abstains(0.4, False)
    assert not POLICY.abstains(0.6, True)
    assert "no document mentions 'zyx'" in POLICY.reason(0.4, ["zyx"])
    assert POLICY.reason(0.6, ["zyx"]) is None


# --- evidence: markers and words -------------------------------------------------------------------------


def test_cited_numbers_in_order_of_first_appearance():
    assert cited_numbers("It was lit in 1871 [2]. The keeper [3, 1] and again [2; 3].") == [2, 3, 1]
    assert cited_numbers("No markers here, nor [a] nor [1234].") == []


def test_markers_are_stripped():
    assert strip_markers("Lit in 1871 [2].") == "Lit in 1871 ."


def test_a_marker_at_a_sentences_start_belongs_to_the_one_before():
    spans, markers = claims_of("The lighthouse was lit in 1871. [2] Its keeper was Ada Finch [1].")
    assert len(spans) == 2 and "Its keeper" in spans[1].text
    assert markers == [[2], [1]]


def test_sentences_carry_their_offsets():
    text = "First one. Second one."
    assert [text[s.start : s.end].strip() for s in sentences(text)] == ["First one.", "Second one."]


def test_stems_drop_stopwords_and_fold_inflections():
    assert stems("The keepers were keeping the lights") == stems("keeper keep light were")


def test_lexical_agreement_counts_shared_stems():
    assert lexical_agreement({"a", "b"}, {"a", "c"}) == 0.5
    assert lexical_agreement(set(), {"a"}) == 0.0


def test_rare_words_weigh_more():
    weights = rarity_weights(WordFrequencies({"lighthouse": 2, "year": 500}, chunks=1000))
    assert weights["lighthous"] > weights["year"]
    assert lexical_agreement({"lighthous", "year"}, {"lighthous"}, weights) > 0.5
    assert rarity_weights(None) is None and rarity_weights(WordFrequencies({}, 10)) is None


def test_a_short_sentence_is_quoted_with_the_next():
    spans = sentences("Yes. The lighthouse was first lit in 1871 by the harbour board. It still stands today.")
    assert quote_windows(spans) == [(0, 1), (1, 1), (2, 2)]


# --- keys and the LLM's fields ---------------------------------------------------------------------------


def test_keys_from_settings_and_file(tmp_path):
    keys_file = tmp_path / "keys.yaml"
    keys_file.write_text('reader: [handbook]\nadmin: "*"\n')
    ring = KeyRing.from_settings("k1, k2", keys_file)
    assert ring.authenticate("Bearer k1").collections is None
    assert ring.authenticate("bearer reader").collections == frozenset({"handbook"})
    for bad in (None, "Bearer", "Basic k1", "Bearer nope"):
        with pytest.raises(AuthError):
            ring.authenticate(bad)


def test_no_keys_is_open():
    assert not KeyRing.from_settings(None, None).enabled
    assert KeyRing.from_settings("", None).authenticate(None).collections is None


def test_roles_per_collection(tmp_path):
    keys_file = tmp_path / "keys.yaml"
    keys_file.write_text(
        'reader: {handbook: read, policies: write}\nauditor: {"*": read, drafts: write}\nold: [team]\nall: "*"\n'
    )
    ring = KeyRing.from_settings(None, keys_file)
    reader = ring.authenticate("Bearer reader")
    assert reader.collections == frozenset({"handbook", "policies"}) and reader.writable == frozenset({"policies"})
    reader.require("handbook")
    reader.require("policies", Role.WRITE)
    with pytest.raises(AuthError, match="read role on collection 'handbook'") as refused:
        reader.require("handbook", Role.WRITE)
    assert refused.value.status_code == 403
    with pytest.raises(AuthError, match="may not use collection 'other'"):
        reader.require("other")
    auditor = ring.authenticate("Bearer auditor")
    assert auditor.collections is None and auditor.writable == frozenset({"drafts"})
    assert auditor.may_use("anything") and not auditor.may_write("anything") and auditor.may_write("drafts")
    # Today's forms keep their meaning: write on what they name.
    assert ring.authenticate("Bearer old").writable == frozenset({"team"})
    assert ring.authenticate("Bearer all").writable is None
    # Keys are named by an id that is not the key, and tells keys apart.
    assert reader.key_id.startswith("key-") and "reader" not in reader.key_id and reader.key_id != auditor.key_id


def test_a_sync_plan_adds_replaces_deletes_and_leaves_alone():
    def remote(source: str, sha: str, pending: dict | None = None) -> dict:
        return {"id": f"id-{source}", "source": source, "sha256": sha, "version": 1, "next_version": pending}

    def local(source: str, sha: str) -> LocalFile:
        return LocalFile(source, Path(source), sha)

    documents = {
        "same.txt": remote("same.txt", "S"),
        "changed.txt": remote("changed.txt", "C1"),
        "under-way.txt": remote("under-way.txt", "U1", {"status": "processing", "sha256": "U2"}),
        "failed.txt": remote("failed.txt", "F1", {"status": "failed", "sha256": "F2"}),
        "gone.txt": remote("gone.txt", "G"),
        "renamed.txt": remote("renamed.txt", "R"),
    }
    files = [
        local("same.txt", "S"),
        local("changed.txt", "C2"),
        local("under-way.txt", "U2"),  # its new version is on its way already
        local("failed.txt", "F2"),  # failed with this content: not again until it changes
        local("new.txt", "N"),
        local("copy-of-same.txt", "S"),  # the collection holds this content already: an upload would do nothing
        local("renamed-to.txt", "R"),  # its content leaves with renamed.txt: uploaded after that delete
    ]
    plan = make_plan(files, documents, delete=True)
    assert list(plan.lines()) == [
        "- gone.txt",
        "- renamed.txt",
        "+ new.txt",
        "+ renamed-to.txt",
        "~ changed.txt (version 1 -> 2)",
    ]
    assert plan.unchanged == 4 and plan.steps == 5
    kept = make_plan(files, documents, delete=False)
    assert not kept.delete and [f.source for f in kept.add] == ["new.txt"] and kept.unchanged == 5


@pytest.mark.parametrize("text", ["[1, 2]", "key: 3", "'': '*'", "k: {a: admin}", "k: {a: [read]}"])
def test_a_malformed_key_file_is_refused(tmp_path, text):
    path = tmp_path / "keys.yaml"
    path.write_text(text)
    with pytest.raises(ValueError):
        load_key_file(path)


def test_sampling_fields_are_sent_only_when_set():
    assert SamplingGuard().request_fields() == {}
    assert SamplingGuard(1.2, 0.5, ("</s>",)).request_fields() == {
        "frequency_penalty": 0.5,
        "stop": ["</s>"],
        "extra_body": {"repetition_penalty": 1.2},
    }


def test_the_server_root_is_beside_v1():
    assert server_root("http://llm:8000/v1/") == "http://llm:8000"
    assert server_root("http://llm:8000") == "http://llm:8000"
