"""EvidenceFinder by shared word stems alone (no embedding model): quotes, grounding and order, on small texts
whose answers are known. The embedding side is in tests/test_evidence.py, with the real model."""

from __future__ import annotations

import pytest

from rag.ports import WordFrequencies
from rag.services.evidence import EvidenceFinder

LIGHTHOUSE = (
    "The harbour has two stone piers and a slipway for the lifeboat. "
    "The Quillhaven lighthouse was first lit in 1887 by the harbour board. "
    "Its lamp burned whale oil until 1920."
)
ORCHARD = "The orchard cooperative grows forty-two varieties of pear. Members meet every spring."
SOURCES = {1: ORCHARD, 2: LIGHTHOUSE}


def finder(**options) -> EvidenceFinder:
    return EvidenceFinder(None, method="lexical", grounding_method="lexical", **options)


def test_the_quote_is_the_sentence_that_answers_the_question():
    evidence = finder().find("When was the Quillhaven lighthouse first lit?", "", SOURCES)
    quote = evidence.sources[2].quote
    assert quote.text == "The Quillhaven lighthouse was first lit in 1887 by the harbour board."
    assert LIGHTHOUSE[quote.start : quote.end] == quote.text and quote.score > 0
    assert evidence.order == [2, 1]


def test_neighbours_widen_the_quote():
    alone = finder().find("When was the lighthouse first lit?", "", SOURCES).sources[2].quote
    quote = finder(neighbours=(1, 1)).find("When was the lighthouse first lit?", "", SOURCES).sources[2].quote
    assert alone.text in quote.text and len(quote.text) > len(alone.text)
    assert LIGHTHOUSE[quote.start : quote.end] == quote.text


def test_each_sentence_of_the_answer_is_grounded_or_flagged():
    answer = "The lighthouse was first lit in 1887 [2]. The keeper owned three cats."
    evidence = finder().find("When was the lighthouse first lit?", answer, SOURCES)
    first, second = evidence.grounding
    assert first.supported and first.citations[0] == 2
    assert not second.supported and second.citations == []
    assert evidence.sources[2].cited and not evidence.sources[1].cited


def test_a_marker_backs_its_sentence_even_below_the_threshold():
    answer = "Pears are grown here [1]."
    grounding = finder(support_threshold=0.99).find("What grows?", answer, SOURCES).grounding
    assert grounding[0].citations == [1] and not grounding[0].supported


def test_rare_words_decide_between_two_sentences():
    sources = {1: "Windows does not support arg_date.", 2: "The argtable argument types are listed."}
    question = "Which argtable argument types are unsupported on Windows?"
    even = finder().find(question, "", sources)
    rare = WordFrequencies({"argtable": 90, "argument": 95, "types": 80, "unsupported": 1, "windows": 2}, 100)
    weighed = finder().find(question, "", sources, word_frequencies=rare)
    assert even.order == [2, 1] and weighed.order == [1, 2]


def test_no_answer_means_support_is_the_questions_match():
    evidence = finder().find("When was the lighthouse lit?", "", SOURCES)
    assert evidence.grounding == []
    assert evidence.sources[2].support == evidence.sources[2].quote.score


def test_the_embedding_methods_need_the_model():
    with pytest.raises(ValueError, match="needs the embedding model"):
        EvidenceFinder(None, method="both")
