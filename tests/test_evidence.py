"""Evidence for answers (rag/services/evidence.py) with the real embedding model: quotes, markers, grounding."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from rag.components.keyword_sqlite import KeywordIndex
from rag.ports import WordFrequencies
from rag.services.evidence import (
    EvidenceFinder,
    RecentVectors,
    cited_numbers,
    claims_of,
    lexical_agreement,
    rarity_weights,
    sentences,
    stems,
)
from rag.settings import Settings

LIGHTHOUSE_CHUNK = (
    "Quillhaven harbour\n"
    "The harbour wall was rebuilt after the storm of 1862. The Quillhaven lighthouse was first lit on\n"
    "14 March 1887 by keeper Odalys Brennick. Its lamp burned colza oil until 1921.\n\n"
    "Tides. The spring tide rises 5.2 metres."
)
FERRY_CHUNK = "The Marlow Point ferry crosses the estuary in 12 minutes and carries at most 40 cars."
QUESTION = "In what year was the Quillhaven lighthouse first lit?"


def test_sentences_are_verbatim_spans_and_a_line_break_does_not_end_one():
    spans = sentences(LIGHTHOUSE_CHUNK)
    assert all(LIGHTHOUSE_CHUNK[s.start : s.end] == s.text for s in spans)
    lit = next(s for s in spans if "first lit" in s.text)
    assert "Odalys Brennick." in lit.text  # the PDF's line break inside the sentence is read through
    assert not any("1921" in s.text and "Tides" in s.text for s in spans)  # a blank line ends a sentence


def test_markers_are_read_in_every_form_and_belong_to_their_sentence():
    assert cited_numbers("Lit in 1887 [2]. See [1, 3][2] and [4;5].") == [2, 1, 3, 4, 5]
    claims, markers = claims_of("It was lit in 1887. [2] The lamp burned colza oil [1].")
    assert [c.text for c in claims] == ["It was lit in 1887.", "[2] The lamp burned colza oil [1]."]
    assert markers == [[2], [1]]


@pytest.mark.parametrize("method", ["lexical", "embedding", "both"])
def test_the_quote_is_the_sentence_that_answers_verbatim(embedder, method):
    finder = EvidenceFinder(embedder.embed, method=method)
    shipped = Settings(_env_file=None)
    wide = EvidenceFinder(embedder.embed, method=shipped.evidence.quote_method, neighbours=(2, 2))
    quote = wide.find(QUESTION, "", {1: LIGHTHOUSE_CHUNK}).sources[1].quote
    assert "14 March 1887" in quote.text and LIGHTHOUSE_CHUNK[quote.start : quote.end] == quote.text
    evidence = finder.find(QUESTION, "", {1: FERRY_CHUNK, 2: LIGHTHOUSE_CHUNK}, {1: 0.5, 2: 0.45})
    quote = evidence.sources[2].quote
    assert quote is not None and "14 March 1887" in quote.text
    assert LIGHTHOUSE_CHUNK[quote.start : quote.end] == quote.text
    assert evidence.order == [2, 1]  # the source that answers first, though retrieval put it second
    assert all(not source.cited for source in evidence.sources.values())  # no answer, no markers


def test_grounding_flags_the_sentence_no_source_supports(embedder):
    finder = EvidenceFinder(embedder.embed, method="both")
    answer = "The Quillhaven lighthouse was first lit in 1887 [2]. Bananas are a rich source of potassium."
    evidence = finder.find(QUESTION, answer, {1: FERRY_CHUNK, 2: LIGHTHOUSE_CHUNK})
    first, second = evidence.grounding
    assert first.supported and first.citations[0] == 2 and answer[first.start : first.end] == first.text
    assert not second.supported and second.citations == []
    assert evidence.sources[2].cited and not evidence.sources[1].cited
    assert evidence.order[0] == 2 and evidence.sources[2].support > evidence.sources[1].support


def test_a_wrong_answer_moves_neither_the_quote_nor_the_order(embedder):
    """A small model's answer is often wrong. The quote still answers the question, and a source that agrees only
    with the wrong answer does not lead the citations (before, the answer's words chose the quote too, and its
    support alone ordered them)."""
    shipped = Settings(_env_file=None)
    finder = EvidenceFinder(
        embedder.embed, method=shipped.evidence.quote_method, grounding_method=shipped.evidence.grounding_method
    )
    sources, scores = {1: FERRY_CHUNK, 2: LIGHTHOUSE_CHUNK}, {1: 0.5, 2: 0.45}
    wrong_sentence = finder.find(QUESTION, "The harbour wall was rebuilt after the storm of 1862.", sources, scores)
    assert "14 March 1887" in wrong_sentence.sources[2].quote.text
    wrong_source = finder.find(QUESTION, "The Marlow Point ferry carries at most 40 cars.", sources, scores)
    assert wrong_source.order == [2, 1]
    assert wrong_source.sources[1].support > wrong_source.sources[2].support  # `support` still reads the answer


def test_a_right_answer_lifts_the_source_it_rests_on(embedder):
    """A passage that only restates the question matches it best; the answer's support puts the source that holds
    the answer first."""
    restated = "Visitors often ask when the Quillhaven lighthouse was first lit. The tower is open on Sundays."
    answer = "The Quillhaven lighthouse was first lit on 14 March 1887 by keeper Odalys Brennick."
    sources, scores = {1: restated, 2: LIGHTHOUSE_CHUNK}, {1: 0.6, 2: 0.6}
    shipped = Settings(_env_file=None)
    finder = EvidenceFinder(embedder.embed, method=shipped.evidence.quote_method, neighbours=(2, 2))
    assert finder.find(QUESTION, "", sources, scores).order == [1, 2]  # by the question alone
    assert finder.find(QUESTION, answer, sources, scores).order == [2, 1]
    deaf = EvidenceFinder(embedder.embed, method=shipped.evidence.quote_method, neighbours=(2, 2), answer_weight=0)
    assert deaf.find(QUESTION, answer, sources, scores).order == [1, 2]


# Every chunk of its collection speaks of argtable's argument types; one sentence here answers the question.
ARGTABLE_CHUNK = (
    "Argtable argument types. Each argtable argument type is a struct made by its constructor, such as arg_int0 or "
    "arg_lit1. The argument types parse integers, doubles, strings, literal flags, files and regular expressions. "
    "Every argument type keeps a count of the values it parsed. The constructors take short options, long options, "
    "a data type name and a glossary string. Error messages are printed by arg_print_errors. The glossary is "
    "printed by arg_print_glossary. Regular expressions need the POSIX regex library. Dates are read with "
    "strptime, which Microsoft Windows does not provide, so arg_date is missing there."
)


def test_rare_words_of_the_question_choose_the_quote(embedder, tmp_path):
    """The question's words weigh by their rarity in the collection (counted by the real keyword index): words every
    chunk holds ("argtable argument types") drew the quote to the chunk's opening, away from the sentence that
    answers, both by the embedding alone and with every word weighing the same."""
    keywords = KeywordIndex(tmp_path / "keywords.sqlite3")
    others = [f"Argtable argument types, part {i}: the parser reads each argument type in turn." for i in range(30)]
    ids = [f"part-{i}" for i in range(30)] + ["types"]
    keywords.upsert("argtable", ids, [*others, ARGTABLE_CHUNK], ids)
    question = "Which argtable argument types are unavailable on Microsoft Windows?"
    counted = keywords.word_frequencies("argtable", question)
    keywords.close()
    assert counted.chunks == 31 and counted.counts["windows"] == 1 and counted.counts["argtable"] == 31

    shipped = Settings(_env_file=None)
    around = (shipped.evidence.quote_context_sentences, shipped.evidence.quote_context_sentences)
    finder = EvidenceFinder(embedder.embed, method=shipped.evidence.quote_method, neighbours=around)
    quote = finder.find(question, "", {1: ARGTABLE_CHUNK}, word_frequencies=counted).sources[1].quote
    assert "Microsoft Windows does not provide" in quote.text
    assert ARGTABLE_CHUNK[quote.start : quote.end] == quote.text
    alike = finder.find(question, "", {1: ARGTABLE_CHUNK}).sources[1].quote
    by_meaning = EvidenceFinder(embedder.embed, method="embedding", neighbours=around)
    assert "Windows" not in alike.text
    assert "Windows" not in by_meaning.find(question, "", {1: ARGTABLE_CHUNK}).sources[1].quote.text


def test_word_weights_are_the_collections_inverse_document_frequencies():
    weights = rarity_weights(WordFrequencies({"windows": 1, "types": 99, "unavailable": 0}, 100))
    assert weights["window"] > weights["type"] > 0 and weights["unavail"] > weights["window"]
    asked, sentence = stems("Which types are unavailable on Windows?"), stems("No date type on Windows.")
    assert lexical_agreement(asked, sentence) == pytest.approx(2 / 3)  # every word alike
    assert lexical_agreement(asked, sentence, weights) == pytest.approx(
        (weights["type"] + weights["window"]) / sum(weights.values())
    )
    assert rarity_weights(None) is None and rarity_weights(WordFrequencies({}, 0)) is None


def test_recent_vectors_embed_each_sentence_once_and_change_nothing(embedder):
    """The service keeps the vectors of the sentences it embedded lately (a cited chunk's sentences come back with
    the next question about it): the same evidence as embedding afresh, without embedding them again."""
    embedded: list[str] = []

    def counting(texts):
        embedded.extend(texts)
        return embedder.embed(texts)

    kept = RecentVectors(counting, max_texts=1000)
    sources, scores = {1: FERRY_CHUNK, 2: LIGHTHOUSE_CHUNK}, {1: 0.5, 2: 0.45}
    answer = "The Quillhaven lighthouse was first lit in 1887 [2]."
    afresh = EvidenceFinder(embedder.embed, neighbours=(2, 2)).find(QUESTION, answer, sources, scores)
    finder = EvidenceFinder(kept, neighbours=(2, 2))
    first = finder.find(QUESTION, answer, sources, scores)
    assert len(embedded) == len(set(embedded)) > 4
    embedded.clear()
    follow_up = "Who was its keeper?"
    again = finder.find(follow_up, "Odalys Brennick kept it [2].", sources, scores)
    assert embedded == [follow_up, "Odalys Brennick kept it ."]  # only the new question and answer
    assert first == afresh
    fresh_again = EvidenceFinder(embedder.embed, neighbours=(2, 2)).find(
        follow_up, "Odalys Brennick kept it [2].", sources, scores
    )
    # Padded in other batches, the vectors may differ in the last float bits: compare what a person reads.
    assert again.order == fresh_again.order

    def spans(evidence):
        return [(q.start, q.end) if (q := evidence.sources[n].quote) else None for n in evidence.order]

    assert spans(again) == spans(fresh_again) and spans(again)[0] is not None
    small = RecentVectors(counting, max_texts=2)
    small(["a", "b", "c"])
    embedded.clear()
    assert small(["c", "a"]).shape[0] == 2 and embedded == ["a"]  # bounded: the oldest went first


def test_lexical_quotes_need_no_embedding_model():
    with pytest.raises(ValueError, match="needs the embedding model"):
        EvidenceFinder(None, method="both")
    lexical = EvidenceFinder(None, method="lexical", grounding_method="lexical")
    evidence = lexical.find(QUESTION, "", {1: LIGHTHOUSE_CHUNK})
    assert "1887" in evidence.sources[1].quote.text


def test_sentences_and_stems_agree_when_many_threads_ask_at_once():
    """Concurrent questions split and stem side by side; a shared segmenter or stemmer garbles (or raises)."""
    texts = [
        f"Operational rationalisation number {n} requires recalibrating the conditional hopefulness. "
        f"Dr. Smith's generalizations, e.g. the {n}th, were irrationally nationalistic. Next line.\n"
        "Another paragraph follows here."
        for n in range(200)
    ]
    expected = [(sentences(text), stems(text)) for text in texts]
    with ThreadPoolExecutor(max_workers=8) as pool:
        for _ in range(3):
            got = list(pool.map(lambda text: (sentences(text), stems(text)), texts))
            assert got == expected
